// The chunked fallback of the upload API (docs/api.md), served by the presigned route's code: add this
// file next to presigned-upload/route.ts and set UPLOAD_API_CHUNKED_ENABLED=1 to offer it.
export const dynamic = 'force-dynamic';
export const runtime = 'nodejs';
export { POST } from '../presigned-upload/route';
