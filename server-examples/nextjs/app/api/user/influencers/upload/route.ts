// The single-request upload of small files (docs/api.md), served by the presigned route's code: add this
// file next to presigned-upload/route.ts and set UPLOAD_API_LEGACY_ENABLED=1 to offer it.
export const dynamic = 'force-dynamic';
export const runtime = 'nodejs';
export { POST } from '../presigned-upload/route';
