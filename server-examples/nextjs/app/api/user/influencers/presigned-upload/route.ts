// The upload API's presigned route for a Next.js App Router backend on AWS SDK for JavaScript v3.
//
// A drop-in for the original route at this path that knew only start/complete/abort: the same path,
// the same field names, and the full contract of docs/api.md on top (sign, status, list, and GET for
// the capabilities). It is one self-contained file: copy it over the old route.ts.
//
// Configuration is read from the environment on every request (hence `dynamic = 'force-dynamic'`):
//   UPLOAD_API_BUCKET                  the bucket (required)
//   UPLOAD_API_TOKENS_FILE             JSON object of bearer token -> user id (required)
//   UPLOAD_API_S3_ENDPOINT             S3 endpoint (unset for AWS)
//   UPLOAD_API_S3_PUBLIC_ENDPOINT      endpoint written into presigned URLs, if clients reach storage elsewhere
//   UPLOAD_API_S3_REGION               region (us-east-1)
//   UPLOAD_API_S3_ACCESS_KEY / UPLOAD_API_S3_SECRET_KEY   keys (else the SDK's default credential chain)
//   UPLOAD_API_URL_EXPIRY_SECONDS      longest life of a presigned URL (3600; at most 7 days)
//   UPLOAD_API_MAX_FILE_SIZE           largest file in bytes (100 GiB)
//   UPLOAD_API_ALLOWED_EXTENSIONS      e.g. ".safetensors .ckpt" (the default list below)
//   UPLOADER_ACTIONS                   `full` (default) or `original`: only start/complete/abort and no GET,
//                                      as the original route had.
//   UPLOADER_CHECKSUMS                 `when-required` (THE FIX below) or `sdk-defaults` (the SDK's default
//                                      checksums, which break every part, as the original route had); default:
//                                      `sdk-defaults` with `original` actions, else `when-required`. So
//                                      `original` + `when-required` is the original route with the one-line fix.
//   UPLOAD_API_CHUNKED_ENABLED         `1` to offer the chunked fallback; needs chunked-upload/route.ts too
//                                      (three lines that serve POST from this file).
//   UPLOAD_API_LEGACY_ENABLED          `1` to offer the single-request upload of small files; needs
//                                      upload/route.ts too (three lines, like chunked-upload/route.ts).

import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';

import {
  AbortMultipartUploadCommand,
  ChecksumAlgorithm,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
  type MultipartUpload,
  type Part,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';

export const dynamic = 'force-dynamic';
export const runtime = 'nodejs';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const MAX_PARTS = 10_000;
const MIN_PART_SIZE = 5 * MiB;
const MAX_PART_SIZE = 5 * GiB;
const MAX_JSON_BODY = 2 * MiB;
const MAX_EXPIRY = 7 * 24 * 3600;
const KEY_PREFIX = 'loras';
const COMFYUI_ROOT = '/runpod-volume';
const SEED_ACTIONS = ['start', 'complete', 'abort'] as const;
const FULL_ACTIONS = [...SEED_ACTIONS, 'sign', 'status', 'list'] as const;
const DEFAULT_EXTENSIONS = ['.safetensors', '.ckpt', '.pt', '.pth', '.bin', '.gguf', '.onnx'];
const MAX_NAME_BYTES = 150; // UTF-8: SeaweedFS's filer and ext4 take 255 bytes a name, prefix included
const NAMELESS_STEM = 'unnamed';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Body = { [key: string]: Json };

/** Every refusal is `{"error": "a sentence"}` with a 4xx; storage trouble is a 502/503. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly extra: Record<string, Json> = {},
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------------
// Configuration

interface Config {
  bucket: string;
  tokensFile: string;
  endpoint?: string;
  publicEndpoint?: string;
  region: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  urlExpirySeconds: number;
  maxFileSize: number;
  extensions: string[];
  original: boolean;
  sdkChecksums: boolean;
  actions: readonly string[];
  chunked: boolean;
  legacy: boolean;
}

function positiveInt(name: string, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new ApiError(503, `The upload API is misconfigured: ${name} must be a whole number from 1 to ${max}.`);
  }
  return value;
}

function enabled(name: string): boolean {
  return ['1', 'true', 'yes'].includes((process.env[name] ?? '').trim().toLowerCase());
}

function config(): Config {
  const bucket = process.env.UPLOAD_API_BUCKET ?? '';
  const tokensFile = process.env.UPLOAD_API_TOKENS_FILE ?? '';
  if (!bucket || !tokensFile) {
    throw new ApiError(503, 'The upload API is not configured (UPLOAD_API_BUCKET, UPLOAD_API_TOKENS_FILE); tell its operator.');
  }
  const mode = (process.env.UPLOADER_ACTIONS ?? 'full').trim().toLowerCase() || 'full';
  if (mode !== 'full' && mode !== 'original') {
    throw new ApiError(503, "The upload API is misconfigured: UPLOADER_ACTIONS must be 'full' or 'original'.");
  }
  const checksums = (process.env.UPLOADER_CHECKSUMS ?? '').trim().toLowerCase() || (mode === 'original' ? 'sdk-defaults' : 'when-required');
  if (checksums !== 'when-required' && checksums !== 'sdk-defaults') {
    throw new ApiError(503, "The upload API is misconfigured: UPLOADER_CHECKSUMS must be 'when-required' or 'sdk-defaults'.");
  }
  const extensions = (process.env.UPLOAD_API_ALLOWED_EXTENSIONS ?? '')
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((e) => (e.startsWith('.') ? e : `.${e}`).toLowerCase());
  return {
    bucket,
    tokensFile,
    endpoint: process.env.UPLOAD_API_S3_ENDPOINT || undefined,
    publicEndpoint: process.env.UPLOAD_API_S3_PUBLIC_ENDPOINT || undefined,
    region: process.env.UPLOAD_API_S3_REGION || 'us-east-1',
    accessKeyId: process.env.UPLOAD_API_S3_ACCESS_KEY || undefined,
    secretAccessKey: process.env.UPLOAD_API_S3_SECRET_KEY || undefined,
    urlExpirySeconds: positiveInt('UPLOAD_API_URL_EXPIRY_SECONDS', 3600, MAX_EXPIRY),
    maxFileSize: positiveInt('UPLOAD_API_MAX_FILE_SIZE', 100 * GiB),
    extensions: extensions.length ? extensions : DEFAULT_EXTENSIONS,
    original: mode === 'original',
    sdkChecksums: checksums === 'sdk-defaults',
    actions: mode === 'original' ? SEED_ACTIONS : FULL_ACTIONS,
    // Only where chunked-upload/route.ts is installed too (see the README); never in `original` mode.
    chunked: mode !== 'original' && enabled('UPLOAD_API_CHUNKED_ENABLED'),
    legacy: mode !== 'original' && enabled('UPLOAD_API_LEGACY_ENABLED'),
  };
}

const clients = new Map<string, S3Client>();

/** One S3 client per configuration; `endpoint` picks the address presigned URLs are made for. */
function s3(cfg: Config, endpoint = cfg.endpoint): S3Client {
  const cacheKey = JSON.stringify([endpoint, cfg.region, cfg.accessKeyId, cfg.secretAccessKey, cfg.sdkChecksums]);
  let client = clients.get(cacheKey);
  if (!client) {
    const options: S3ClientConfig = {
      region: cfg.region,
      endpoint,
      forcePathStyle: true,
      ...(cfg.accessKeyId && cfg.secretAccessKey
        ? { credentials: { accessKeyId: cfg.accessKeyId, secretAccessKey: cfg.secretAccessKey } }
        : {}),
    };
    if (!cfg.sdkChecksums) {
      // THE FIX for existing backends: without these two lines, SDK v3 (since 3.729) computes a CRC32 of
      // the empty body while presigning and signs `x-amz-checksum-crc32=AAAAAA==` into every UploadPart
      // URL, so storage refuses every real part (or, on stores that ignore it, nothing checks anything).
      options.requestChecksumCalculation = 'WHEN_REQUIRED';
      options.responseChecksumValidation = 'WHEN_REQUIRED';
    }
    client = new S3Client(options);
    clients.set(cacheKey, client);
  }
  return client;
}

// ---------------------------------------------------------------------------------------------------
// Authorization: bearer tokens from a JSON file the operator controls

const USER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
let tokenCache: { path: string; mtimeMs: number; size: number; pairs: [Buffer, string][] } | undefined;

function tokens(path: string): [Buffer, string][] {
  let stat;
  try {
    stat = statSync(path);
  } catch {
    throw new ApiError(503, 'The upload API cannot read its tokens file; tell its operator.');
  }
  if (tokenCache && tokenCache.path === path && tokenCache.mtimeMs === stat.mtimeMs && tokenCache.size === stat.size) {
    return tokenCache.pairs;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    throw new ApiError(503, 'The upload API cannot read its tokens file; tell its operator.');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ApiError(503, 'The tokens file must be a JSON object of token -> user id; tell the operator.');
  }
  const pairs: [Buffer, string][] = [];
  for (const [token, user] of Object.entries(raw)) {
    if (typeof user !== 'string' || !USER_ID.test(user) || token.length < 16) {
      throw new ApiError(503, 'The tokens file has a bad entry (tokens: 16+ characters; user ids: 1-64 letters, digits, _ . -).');
    }
    pairs.push([digest(token), user]);
  }
  tokenCache = { path, mtimeMs: stat.mtimeMs, size: stat.size, pairs };
  return pairs;
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** The user id for an `Authorization: Bearer` header, compared in constant time. */
function userFor(cfg: Config, authorization: string | null): string {
  if (!authorization) {
    throw new ApiError(401, "Missing Authorization header; send 'Authorization: Bearer <token>'.");
  }
  const space = authorization.indexOf(' ');
  const scheme = space < 0 ? authorization : authorization.slice(0, space);
  const token = space < 0 ? '' : authorization.slice(space + 1).trim();
  if (scheme.toLowerCase() !== 'bearer' || !token) {
    throw new ApiError(401, "The Authorization header must be 'Bearer <token>'.");
  }
  const given = digest(token);
  let found: string | undefined;
  for (const [known, user] of tokens(cfg.tokensFile)) {
    if (timingSafeEqual(known, given)) found = user;
  }
  if (found === undefined) throw new ApiError(401, 'The token was not recognised.');
  return found;
}

// ---------------------------------------------------------------------------------------------------
// Names: where an upload lands, and the rule that users only touch keys under their own prefix

const BIDI = new Set(
  [0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069, 0x200e, 0x200f, 0x061c].map((c) =>
    String.fromCodePoint(c),
  ),
);
const INVISIBLE = /^[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}]$/u;
const RESERVED = /[\\/:*?"<>|\s]+/g;

function strip(text: string, chars: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && chars.includes(text[start])) start++;
  while (end > start && chars.includes(text[end - 1])) end--;
  return text.slice(start, end);
}

/** The last path component, NFC, with nothing that could escape or mislead, at most `maxBytes` of UTF-8
 * (a volume's filesystem takes 255 bytes a name, and the unique name adds a prefix), its type kept;
 * "" when nothing is left. A name that is only its type ("_.safetensors") is stored as unnamed.<type>. */
function safeBasename(name: string, maxBytes = MAX_NAME_BYTES): string {
  let text = name.normalize('NFC').replaceAll('\\', '/');
  text = text.slice(text.lastIndexOf('/') + 1);
  text = Array.from(text)
    .filter((ch) => !BIDI.has(ch) && !INVISIBLE.test(ch))
    .join('');
  text = text.replace(RESERVED, '_');
  const dot = text.lastIndexOf('.');
  const ext = dot >= 0 ? strip(text.slice(dot + 1), '._ ') : '';
  if (dot < 0 || !ext || Array.from(ext).length >= 20) return cut(strip(text, '._ '), maxBytes);
  const stem = text.slice(0, dot).replace(/^[._ ]+/, '');
  const room = maxBytes - byteLength(ext) - 1;
  return `${cut(stem || NAMELESS_STEM, room) || NAMELESS_STEM}.${ext}`;
}

function byteLength(text: string): number {
  return new TextEncoder().encode(text).length;
}

/** `text` cut to `maxBytes` of UTF-8 at a character's edge, without a dot or space left at its end. */
function cut(text: string, maxBytes: number): string {
  if (byteLength(text) <= maxBytes) return text;
  let kept = '';
  for (const ch of text) {
    if (byteLength(kept + ch) > maxBytes) break;
    kept += ch;
  }
  return kept.replace(/[._ ]+$/, '');
}

function extensionOf(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot > 0 && dot < name.length - 1 ? name.slice(dot).toLowerCase() : '';
}

interface Destination {
  uniqueFileName: string;
  s3Key: string;
  comfyUIPath: string;
}

function checkedName(cfg: Config, fileName: string): string {
  const name = safeBasename(fileName);
  if (!name) {
    throw new ApiError(400, 'fileName has no usable characters once path parts and control characters are removed.');
  }
  const ext = extensionOf(name);
  if (!cfg.extensions.includes(ext)) {
    const kind = ext ? `of type '${ext}'` : 'without a type at the end of the name';
    throw new ApiError(400, `Files ${kind} are not accepted. Allowed types: ${cfg.extensions.join(', ')}.`);
  }
  return name;
}

function destination(userId: string, uniqueFileName: string): Destination {
  return {
    uniqueFileName,
    s3Key: `${KEY_PREFIX}/${userId}/${uniqueFileName}`,
    comfyUIPath: `${COMFYUI_ROOT}/${KEY_PREFIX}/${userId}/${uniqueFileName}`,
  };
}

/** The destination behind `s3Key` if it is one of `userId`'s, else 403. */
function owned(userId: string, s3Key: string): Destination {
  const prefix = `${KEY_PREFIX}/${userId}/`;
  const name = s3Key.startsWith(prefix) ? s3Key.slice(prefix.length) : '';
  if (!name || name !== safeBasename(name, byteLength(name)) || !name.startsWith(`${userId}_`)) {
    throw new ApiError(403, 'That upload belongs to someone else, or the key is not one this API hands out.');
  }
  return destination(userId, name);
}

function headerSafe(value: string, limit = 700): string {
  // S3 user metadata travels as HTTP headers (2 KB in all), so names are percent-encoded and capped.
  let chars = Array.from(value);
  let encoded = encodeURIComponent(chars.join(''));
  while (encoded.length > limit) {
    chars = chars.slice(0, -Math.max(1, Math.floor((encoded.length - limit) / 9)));
    encoded = encodeURIComponent(chars.join(''));
  }
  return encoded;
}

// ---------------------------------------------------------------------------------------------------
// Strict request bodies: a wrong JSON type is named as such, never guessed at

function jsonName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  switch (typeof value) {
    case 'string':
      return 'a string';
    case 'boolean':
      return 'a boolean';
    case 'number':
      return Number.isInteger(value) ? 'an integer' : 'a fractional number';
    default:
      return 'an object';
  }
}

function isObject(value: unknown): value is Body {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function present(body: Body, field: string): boolean {
  return body[field] !== undefined && body[field] !== null;
}

function need(body: Body, field: string, path: string): Json {
  if (!present(body, field)) throw new ApiError(400, `Missing field '${path}'.`);
  return body[field];
}

function int(value: Json, path: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new ApiError(400, `Invalid '${path}': must be an integer (a JSON number), not ${jsonName(value)}.`);
  }
  if (value < min) throw new ApiError(400, `Invalid '${path}': Input should be greater than or equal to ${min}.`);
  if (value > max) throw new ApiError(400, `Invalid '${path}': Input should be less than or equal to ${max}.`);
  return value;
}

function str(value: Json, path: string, min: number, max: number): string {
  if (typeof value !== 'string') {
    throw new ApiError(400, `Invalid '${path}': must be a string, not ${jsonName(value)}.`);
  }
  const length = Array.from(value).length;
  if (length < min) throw new ApiError(400, `Invalid '${path}': String should have at least ${min} character${min === 1 ? '' : 's'}.`);
  if (length > max) throw new ApiError(400, `Invalid '${path}': String should have at most ${max} characters.`);
  return value;
}

function list(value: Json, path: string, min: number, max: number): Json[] {
  if (!Array.isArray(value)) throw new ApiError(400, `Invalid '${path}': must be a list, not ${jsonName(value)}.`);
  if (value.length < min) throw new ApiError(400, `Invalid '${path}': List should have at least ${min} item.`);
  if (value.length > max) throw new ApiError(400, `Invalid '${path}': List should have at most ${max} items.`);
  return value;
}

function object(value: Json, path: string): Body {
  if (!isObject(value)) throw new ApiError(400, `Invalid '${path}': must be an object, not ${jsonName(value)}.`);
  return value;
}

/** Ids and ETags are printable ASCII in every store; anything else is refused here, not by storage. */
function printable(value: string, path: string, what: string): string {
  for (const ch of value) {
    if (ch < '!' || ch > '~') {
      throw new ApiError(400, `Invalid '${path}': ${what} may only hold printable ASCII characters, without spaces.`);
    }
  }
  return value;
}

function uploadRef(body: Body): { uploadId: string; s3Key: string } {
  const uploadId = printable(str(need(body, 'uploadId', 'uploadId'), 'uploadId', 1, 1024), 'uploadId', 'an upload id');
  const s3Key = str(need(body, 's3Key', 's3Key'), 's3Key', 1, 1024);
  return { uploadId, s3Key };
}

function optional<T>(body: Body, field: string, read: (value: Json, path: string) => T): T | undefined {
  return present(body, field) ? read(body[field], field) : undefined;
}

function base64Of(value: string, size: number): boolean {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(value) || value.length % 4 !== 0) return false;
  return Buffer.from(value, 'base64').length === size;
}

/** `{"<part number>": base64}` maps of `sign`; keys are ASCII part numbers. */
function digests(value: Json, name: string, size: number, what: string): Map<number, string> {
  const found = new Map<number, string>();
  for (const [key, given] of Object.entries(object(value, name))) {
    if (!/^[0-9]{1,5}$/.test(key)) {
      throw new ApiError(400, `Invalid '${name}': ${name} keys are part numbers, got '${key.slice(0, 20)}'.`);
    }
    if (typeof given !== 'string') {
      throw new ApiError(400, `Invalid '${name}.${key}': must be a string, not ${jsonName(given)}.`);
    }
    if (!base64Of(given, size)) {
      throw new ApiError(400, `Invalid '${name}': ${name} for part ${key} must be a base64 ${what} (${size} bytes).`);
    }
    found.set(Number(key), given);
  }
  return found;
}

function tooLarge(limit: number): ApiError {
  return new ApiError(413, `The request body is larger than the ${limit.toLocaleString('en-US')} bytes this endpoint accepts.`);
}

/** The whole body, refused with 413 as soon as it passes `limit` bytes. */
async function readBytes(request: Request, limit: number): Promise<Buffer> {
  if (Number(request.headers.get('content-length') ?? '') > limit) throw tooLarge(limit);
  const chunks: Uint8Array[] = [];
  let seen = 0;
  if (request.body) {
    const reader = request.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      seen += value.length;
      if (seen > limit) {
        await reader.cancel();
        throw tooLarge(limit);
      }
      chunks.push(value);
    }
  }
  return Buffer.concat(chunks);
}

async function readBody(request: Request): Promise<Body> {
  const raw = await readBytes(request, MAX_JSON_BODY);
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new ApiError(400, 'The request body is not valid JSON.');
  }
  if (!isObject(parsed)) throw new ApiError(400, 'The request body must be a JSON object.');
  return parsed;
}

// ---------------------------------------------------------------------------------------------------
// Storage: S3's errors turned into answers a client can act on

const PER_UPLOAD = new Set(['ListParts', 'UploadPart', 'CompleteMultipartUpload', 'AbortMultipartUpload']);

async function call<T>(action: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw translated(action, error);
  }
}

function translated(action: string, error: unknown): ApiError {
  const failure = error as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
  if (failure?.$metadata?.httpStatusCode === undefined) {
    console.warn(`S3 ${action} failed: storage unreachable (${failure?.name ?? typeof error})`);
    return new ApiError(503, 'Storage is unreachable; try again shortly.');
  }
  const code = failure.Code ?? failure.name ?? '';
  console.warn(`S3 ${action} failed: ${code}`);
  if (code === 'NoSuchUpload' || code === 'NoSuchKey' || (code === 'InvalidRequest' && PER_UPLOAD.has(action))) {
    // An upload id storage can't even parse ("a/b" on SeaweedFS) is one that does not exist.
    return new ApiError(404, 'No such upload for this key: it was completed, aborted, or never started.');
  }
  if (code === 'EntityTooSmall') {
    return new ApiError(
      400,
      'Storage refused the parts: every part except the last must be at least 5.0 MiB. Upload again with a chunk size of at least 5.0 MiB.',
    );
  }
  if (code === 'InvalidPart' || code === 'InvalidPartOrder') {
    return new ApiError(400, 'Storage refused the part list: a part is missing, or an ETag does not match what was stored.');
  }
  if (['EntityTooLarge', 'InvalidArgument', 'InvalidRequest', 'MalformedXML'].includes(code)) {
    return new ApiError(400, `Storage refused the request (${code}).`);
  }
  if (['XMinioStorageFull', 'QuotaExceeded', 'InsufficientStorage'].includes(code) || failure.$metadata.httpStatusCode === 507) {
    // Said as it is, never "busy": trying again can't help until someone frees space there (MinIO's 507).
    return new ApiError(507, 'Storage is full: it has no room for more data. Free some space there, then retry.');
  }
  if (['SlowDown', 'ServiceUnavailable', 'RequestTimeout', 'InternalError'].includes(code)) {
    return new ApiError(503, 'Storage is busy; try again shortly.');
  }
  return new ApiError(502, `Storage answered with an error (${code || 'unknown'}).`);
}

function notFound(error: unknown): boolean {
  const failure = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return failure?.$metadata?.httpStatusCode === 404 || failure?.name === 'NotFound' || failure?.name === 'NoSuchKey';
}

/** 404 unless `uploadId` is an unfinished multipart upload of exactly `key`. */
async function verifyUpload(cfg: Config, key: string, uploadId: string): Promise<void> {
  await call('ListParts', () => s3(cfg).send(new ListPartsCommand({ Bucket: cfg.bucket, Key: key, UploadId: uploadId, MaxParts: 1 })));
}

type Digest = ['ContentMD5' | 'ChecksumCRC32' | 'ChecksumCRC32C', string];
const DIGEST_HEADERS = { ContentMD5: 'content-md5', ChecksumCRC32: 'x-amz-checksum-crc32', ChecksumCRC32C: 'x-amz-checksum-crc32c' };

/** UploadPart URLs by part number; a part's digest is signed in as a header the client must send. */
async function presignParts(
  cfg: Config,
  key: string,
  uploadId: string,
  numbers: number[],
  expiresIn: number,
  partDigests: Map<number, Digest> = new Map(),
): Promise<Map<number, string>> {
  const client = s3(cfg, cfg.publicEndpoint ?? cfg.endpoint);
  const urls = new Map<number, string>();
  for (let i = 0; i < numbers.length; i += 200) {
    const batch = numbers.slice(i, i + 200);
    const signed = await Promise.all(
      batch.map((number) => {
        const partDigest = partDigests.get(number);
        const command = new UploadPartCommand({
          Bucket: cfg.bucket,
          Key: key,
          UploadId: uploadId,
          PartNumber: number,
          ...(partDigest ? { [partDigest[0]]: partDigest[1] } : {}),
        });
        // Kept as signed headers, not hoisted into the query: storage then checks the bytes against them.
        const unhoistableHeaders = new Set(partDigest ? [DIGEST_HEADERS[partDigest[0]]] : []);
        return call('presign', () => getSignedUrl(client, command, { expiresIn, unhoistableHeaders }));
      }),
    );
    batch.forEach((number, index) => urls.set(number, signed[index]));
  }
  return urls;
}

async function listParts(cfg: Config, key: string, uploadId: string): Promise<Part[]> {
  const parts: Part[] = [];
  let marker: string | undefined;
  for (;;) {
    const page = await call('ListParts', () =>
      s3(cfg).send(new ListPartsCommand({ Bucket: cfg.bucket, Key: key, UploadId: uploadId, PartNumberMarker: marker, MaxParts: 1000 })),
    );
    parts.push(...(page.Parts ?? []));
    const next = page.NextPartNumberMarker;
    // A store that paginates wrongly must not loop us forever.
    if (!page.IsTruncated || !next || Number(next) <= Number(marker ?? 0)) return parts;
    marker = next;
  }
}

async function existing(cfg: Config, key: string): Promise<{ size: number; etag: string } | undefined> {
  try {
    const head = await s3(cfg).send(new HeadObjectCommand({ Bucket: cfg.bucket, Key: key }));
    return { size: Number(head.ContentLength ?? 0), etag: head.ETag ?? '' };
  } catch (error) {
    if (notFound(error)) return undefined;
    throw translated('HeadObject', error);
  }
}

// ---------------------------------------------------------------------------------------------------
// The actions

function expiry(cfg: Config, wish: number | undefined): number {
  // A client may ask for shorter-lived URLs, never longer than this server allows.
  return Math.min(cfg.urlExpirySeconds, wish ?? cfg.urlExpirySeconds);
}

function expiresAt(seconds: number): string {
  return new Date(Date.now() + seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function human(bytes: number): string {
  let value = bytes;
  for (const unit of ['B', 'KiB', 'MiB', 'GiB', 'TiB']) {
    if (value < 1024 || unit === 'TiB') return `${value.toFixed(1)} ${unit}`;
    value /= 1024;
  }
  return `${bytes} B`;
}

/** Why `fileSize` bytes can't be sent as `totalParts` equal parts, or undefined if they can. */
function layoutProblem(cfg: Config, fileSize: number, totalParts: number): string | undefined {
  const limit = Math.min(cfg.maxFileSize, 5 * 1024 * GiB);
  if (fileSize > limit) return `The file is ${human(fileSize)}; this server accepts files of at most ${human(limit)}.`;
  if (fileSize > totalParts * MAX_PART_SIZE) {
    const fewest = Math.ceil(fileSize / MAX_PART_SIZE);
    return `${totalParts.toLocaleString('en-US')} parts for ${human(fileSize)} would make parts larger than ${human(MAX_PART_SIZE)}; use at least ${fewest.toLocaleString('en-US')} parts.`;
  }
  if (totalParts > 1 && fileSize <= (totalParts - 1) * MIN_PART_SIZE) {
    const most = Math.max(1, Math.ceil(fileSize / MIN_PART_SIZE));
    return (
      `${totalParts.toLocaleString('en-US')} parts for ${human(fileSize)} would make parts smaller than ${human(MIN_PART_SIZE)}, ` +
      `which S3 refuses (every part but the last must be at least ${human(MIN_PART_SIZE)}); use at most ${most.toLocaleString('en-US')} parts.`
    );
  }
  return undefined;
}

const MIME = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

async function start(cfg: Config, userId: string, body: Body) {
  const fileName = str(need(body, 'fileName', 'fileName'), 'fileName', 1, 4096);
  const totalParts = int(need(body, 'totalParts', 'totalParts'), 'totalParts', 1, MAX_PARTS);
  const fileSize = optional(body, 'fileSize', (v, p) => int(v, p, 0, Number.MAX_SAFE_INTEGER));
  const displayName = optional(body, 'displayName', (v, p) => str(v, p, 0, 1024));
  const contentType = optional(body, 'contentType', (v, p) => str(v, p, 0, 255));
  const urlBatch = optional(body, 'urlBatch', (v, p) => int(v, p, 1, MAX_PARTS));
  const expiresIn = optional(body, 'expiresIn', (v, p) => int(v, p, 1, MAX_EXPIRY));
  const wanted = optional(body, 'checksumAlgorithm', (v, p) => {
    if (v !== 'crc32' && v !== 'crc32c') throw new ApiError(400, `Invalid '${p}': Input should be 'crc32' or 'crc32c'.`);
    return v;
  });
  const name = checkedName(cfg, fileName);
  if (fileSize !== undefined) {
    const problem = layoutProblem(cfg, fileSize, totalParts);
    if (problem) throw new ApiError(400, problem);
  }
  if (contentType && !MIME.test(contentType)) {
    throw new ApiError(400, "contentType must be a MIME type such as 'application/octet-stream'.");
  }
  const signs = cfg.actions.includes('sign');
  const target = destination(userId, `${userId}_${Date.now()}_${name}`);
  // Only a client that can sign checksums may ask for one: storage then refuses parts without it.
  const algorithm = signs ? (wanted ?? null) : null;
  const created = await call('CreateMultipartUpload', () =>
    s3(cfg).send(
      new CreateMultipartUploadCommand({
        Bucket: cfg.bucket,
        Key: target.s3Key,
        ContentType: contentType || 'application/octet-stream',
        Metadata: { 'display-name': headerSafe(displayName || fileName), 'original-name': headerSafe(fileName) },
        ...(algorithm ? { ChecksumAlgorithm: algorithm === 'crc32c' ? ChecksumAlgorithm.CRC32C : ChecksumAlgorithm.CRC32 } : {}),
      }),
    ),
  );
  const uploadId = created.UploadId ?? '';
  const count = signs && urlBatch !== undefined ? Math.min(totalParts, urlBatch) : totalParts;
  const seconds = expiry(cfg, expiresIn);
  let urls: Map<number, string>;
  try {
    urls = await presignParts(cfg, target.s3Key, uploadId, Array.from({ length: count }, (_, i) => i + 1), seconds);
  } catch (error) {
    await s3(cfg).send(new AbortMultipartUploadCommand({ Bucket: cfg.bucket, Key: target.s3Key, UploadId: uploadId })).catch(() => undefined);
    throw error;
  }
  console.info(`start ${target.s3Key} for ${userId}: ${totalParts} parts, ${fileSize ?? 'unknown'} bytes`);
  const answer: Record<string, Json> = {
    uploadId,
    s3Key: target.s3Key,
    uniqueFileName: target.uniqueFileName,
    presignedUrls: [...urls.values()],
    comfyUIPath: target.comfyUIPath,
    expiresAt: expiresAt(seconds),
    checksumAlgorithm: algorithm,
  };
  return answer;
}

async function completion(cfg: Config, target: Destination, etag: string) {
  const answer = {
    success: true,
    uniqueFileName: target.uniqueFileName,
    comfyUIPath: target.comfyUIPath,
    networkVolumePath: `s3://${cfg.bucket}/${target.s3Key}`,
  };
  // `size` and `etag` are extensions (docs/api.md): the original route answered neither, and a route
  // playing it that still said them would hide what clients meet on the real one (a self-test that
  // compares against an `etag` nobody sends).
  if (cfg.original) return answer;
  const head = await call('HeadObject', () => s3(cfg).send(new HeadObjectCommand({ Bucket: cfg.bucket, Key: target.s3Key })));
  return { ...answer, size: Number(head.ContentLength ?? 0), etag };
}

async function complete(cfg: Config, userId: string, body: Body) {
  const { uploadId, s3Key } = uploadRef(body);
  const rawParts = list(need(body, 'parts', 'parts'), 'parts', 0, MAX_PARTS);
  const parts: CompletedPart[] = rawParts.map((raw, index) => {
    const path = `parts.${index}`;
    const part = object(raw, path);
    const checksum = (field: string) =>
      optional(part, field, (v, p) => {
        const value = str(v, `${path}.${p}`, 0, 64);
        if (!base64Of(value, 4)) throw new ApiError(400, `Invalid '${path}.${p}': a part's checksum must be a base64 big-endian CRC (4 bytes).`);
        return value;
      });
    const crc32c = checksum('ChecksumCRC32C');
    const crc32 = checksum('ChecksumCRC32');
    return {
      PartNumber: int(need(part, 'PartNumber', `${path}.PartNumber`), `${path}.PartNumber`, 1, MAX_PARTS),
      ETag: printable(str(need(part, 'ETag', `${path}.ETag`), `${path}.ETag`, 1, 256), `${path}.ETag`, 'an ETag'),
      ...(crc32c ? { ChecksumCRC32C: crc32c } : crc32 ? { ChecksumCRC32: crc32 } : {}),
    };
  });
  const target = owned(userId, s3Key);
  if (!parts.length) throw new ApiError(400, 'parts must list at least one uploaded part.');
  const numbers = parts.map((p) => p.PartNumber);
  if (new Set(numbers).size !== numbers.length) throw new ApiError(400, 'parts lists the same PartNumber more than once.');
  parts.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
  const done = await call('CompleteMultipartUpload', () =>
    s3(cfg).send(
      new CompleteMultipartUploadCommand({ Bucket: cfg.bucket, Key: target.s3Key, UploadId: uploadId, MultipartUpload: { Parts: parts } }),
    ),
  );
  console.info(`complete ${target.s3Key}: ${parts.length} parts`);
  return completion(cfg, target, done.ETag ?? '');
}

async function abort(cfg: Config, userId: string, body: Body) {
  const { uploadId, s3Key } = uploadRef(body);
  const target = owned(userId, s3Key);
  // Stores differ on aborting an already-aborted upload (SeaweedFS says 204, S3 NoSuchUpload); the
  // API promises a 404 for any upload id that does not exist, so it checks first.
  await verifyUpload(cfg, target.s3Key, uploadId);
  await call('AbortMultipartUpload', () =>
    s3(cfg).send(new AbortMultipartUploadCommand({ Bucket: cfg.bucket, Key: target.s3Key, UploadId: uploadId })),
  );
  console.info(`abort ${target.s3Key}`);
  return { success: true, message: 'Upload aborted' };
}

async function sign(cfg: Config, userId: string, body: Body) {
  const { uploadId, s3Key } = uploadRef(body);
  const numbers = list(need(body, 'partNumbers', 'partNumbers'), 'partNumbers', 1, MAX_PARTS).map((n, i) =>
    int(n, `partNumbers.${i}`, 1, MAX_PARTS),
  );
  const given: [Digest[0], string, Map<number, string> | undefined][] = [
    ['ContentMD5', 'contentMd5', optional(body, 'contentMd5', (v, p) => digests(v, p, 16, 'MD5 digest'))],
    ['ChecksumCRC32', 'checksumCrc32', optional(body, 'checksumCrc32', (v, p) => digests(v, p, 4, 'CRC32, big-endian'))],
    ['ChecksumCRC32C', 'checksumCrc32c', optional(body, 'checksumCrc32c', (v, p) => digests(v, p, 4, 'CRC32C, big-endian'))],
  ];
  const seconds = expiry(cfg, optional(body, 'expiresIn', (v, p) => int(v, p, 1, MAX_EXPIRY)));
  const target = owned(userId, s3Key);
  const wanted = new Set(numbers);
  const partDigests = new Map<number, Digest>();
  for (const [, name, values] of given) {
    const stray = [...(values?.keys() ?? [])].filter((n) => !wanted.has(n));
    if (stray.length) {
      throw new ApiError(400, `${name} names parts that partNumbers does not list: ${stray.slice(0, 5).join(', ')}.`);
    }
  }
  for (const [param, , values] of given) {
    for (const [number, value] of values ?? []) {
      if (partDigests.has(number)) throw new ApiError(400, `Part ${number} has more than one digest; send one.`);
      partDigests.set(number, [param, value]);
    }
  }
  await verifyUpload(cfg, target.s3Key, uploadId);
  const urls = await presignParts(cfg, target.s3Key, uploadId, [...wanted].sort((a, b) => a - b), seconds, partDigests);
  console.info(`sign ${target.s3Key}: ${urls.size} parts (${partDigests.size} with a digest)`);
  return { presignedUrls: Object.fromEntries([...urls].map(([n, url]) => [String(n), url])), expiresAt: expiresAt(seconds) };
}

async function status(cfg: Config, userId: string, body: Body) {
  const { uploadId, s3Key } = uploadRef(body);
  const target = owned(userId, s3Key);
  try {
    const parts = await listParts(cfg, target.s3Key, uploadId);
    return { parts: parts.map((p) => ({ PartNumber: p.PartNumber, ETag: p.ETag, Size: p.Size })) };
  } catch (error) {
    // An upload that is gone because it was completed (its client lost the answer) has its object at
    // its key, which no other upload shares: say so, so the client does not send the file again.
    if (!(error instanceof ApiError) || error.status !== 404) throw error;
    const found = await existing(cfg, target.s3Key);
    if (!found) throw error;
    return { parts: [], completed: true, ...(await completion(cfg, target, found.etag)) };
  }
}

async function listUploads(cfg: Config, userId: string) {
  const prefix = `${KEY_PREFIX}/${userId}/`;
  const uploads: MultipartUpload[] = [];
  let keyMarker: string | undefined;
  let idMarker: string | undefined;
  for (;;) {
    const page = await call('ListMultipartUploads', () =>
      s3(cfg).send(
        new ListMultipartUploadsCommand({ Bucket: cfg.bucket, Prefix: prefix, MaxUploads: 1000, KeyMarker: keyMarker, UploadIdMarker: idMarker }),
      ),
    );
    uploads.push(...(page.Uploads ?? []));
    const nextKey = page.NextKeyMarker;
    const nextId = page.NextUploadIdMarker;
    if (!page.IsTruncated || !nextKey || (nextKey === keyMarker && nextId === idMarker)) break;
    keyMarker = nextKey;
    idMarker = nextId;
  }
  return {
    uploads: uploads
      .filter((u) => u.Key?.startsWith(prefix))
      .map((u) => ({
        uploadId: u.UploadId,
        s3Key: u.Key,
        uniqueFileName: (u.Key ?? '').slice(prefix.length),
        initiated: u.Initiated ? u.Initiated.toISOString() : null,
      })),
  };
}

function capabilities(cfg: Config) {
  return {
    actions: [...cfg.actions],
    minPartSize: MIN_PART_SIZE,
    maxPartSize: MAX_PART_SIZE,
    maxParts: MAX_PARTS,
    maxFileSize: Math.min(cfg.maxFileSize, 5 * 1024 * GiB),
    urlExpirySeconds: cfg.urlExpirySeconds,
    urlBatch: true,
    contentMd5: true,
    checksums: ['crc32c', 'crc32'],
    presignedUpload: true,
    chunkedUpload: cfg.chunked ? { path: '/api/user/influencers/chunked-upload', maxChunkBytes: CHUNK_MAX_BYTES } : null,
    legacyUpload: cfg.legacy ? { path: '/api/user/influencers/upload', maxBytes: LEGACY_MAX_BYTES } : null,
  };
}

// ---------------------------------------------------------------------------------------------------
// The chunked fallback (POST /api/user/influencers/chunked-upload, served by this same code through
// chunked-upload/route.ts): bytes come in small chunks and leave as legal S3 parts.
//
// Chunks are at most 4 MiB (serverless body limits), parts at least 5 MiB, so chunks are staged until a
// part's worth has arrived, and ALL of that state is in the bucket, as the reference server keeps it
// (docs/api.md): under `loras/.chunked/{hash of the upload id}/`, an empty marker
// `size-{fileSize}-part-{partSize}` (the layout) and staged chunks `chunk-{offset:020}`; the parts
// already assembled are the multipart upload's own (ListParts). Part n covers [(n-1)·partSize, n·partSize).
// `received` is the parts' total plus the staged chunks that continue it without a gap. A flush stores
// the part, stages the tail of the last chunk, then deletes the chunks it used: a crash between any two
// steps leaves `received` at most smaller than what was sent, never larger. No local disk: a request
// holds at most one chunk, or one part being assembled, in memory.

const CHUNK_MAX_BYTES = 4 * MiB;
const CHUNKED_PART_WISH = 8 * MiB;
const MAX_OPEN_CHUNKED_PER_USER = 1000;
const MARKER = /size-(\d+)-part-(\d+)$/;
const CHUNK = /chunk-(\d{20})$/;
const GONE = 'No such chunked upload (it was completed, aborted, or never started).';

function stagingOf(uploadId: string): string {
  // User ids can't start with '.', so this is no user's folder.
  return `${KEY_PREFIX}/.chunked/${createHash('sha256').update(uploadId, 'utf8').digest('hex').slice(0, 40)}/`;
}

function chunkKey(stage: string, offset: number): string {
  return `${stage}chunk-${String(offset).padStart(20, '0')}`;
}

/** Equal parts of at least 8 MiB, larger when a file would need more than 10,000 of them. */
function chunkedPartSize(fileSize: number): number {
  let size = CHUNKED_PART_WISH;
  if (Math.ceil(fileSize / size) > MAX_PARTS) {
    size = Math.ceil(Math.ceil(fileSize / MAX_PARTS) / MiB) * MiB;
  }
  return Math.min(Math.max(size, MIN_PART_SIZE), MAX_PART_SIZE);
}

const uploadLocks = new Map<string, Promise<unknown>>();

/** Requests for one upload, one at a time in this instance (a client's retry racing its original). */
async function locked<T>(uploadId: string, run: () => Promise<T>): Promise<T> {
  const before = uploadLocks.get(uploadId) ?? Promise.resolve();
  const mine = before.catch(() => undefined).then(run);
  uploadLocks.set(uploadId, mine);
  try {
    return await mine;
  } finally {
    if (uploadLocks.get(uploadId) === mine) uploadLocks.delete(uploadId);
  }
}

class Overtaken extends Error {}

interface Staged {
  stage: string;
  fileSize: number;
  partSize: number;
  parts: number;
  stored: number;
  chunks: { offset: number; size: number; key: string }[];
  stale: string[];
}

const receivedOf = (state: Staged) => state.stored + state.chunks.reduce((sum, c) => sum + c.size, 0);

async function listObjects(cfg: Config, prefix: string): Promise<{ key: string; size: number }[]> {
  const found: { key: string; size: number }[] = [];
  let token: string | undefined;
  for (;;) {
    const page = await call('ListObjectsV2', () =>
      s3(cfg).send(new ListObjectsV2Command({ Bucket: cfg.bucket, Prefix: prefix, ContinuationToken: token })),
    );
    for (const o of page.Contents ?? []) found.push({ key: o.Key ?? '', size: Number(o.Size ?? 0) });
    if (!page.IsTruncated || !page.NextContinuationToken || page.NextContinuationToken === token) return found;
    token = page.NextContinuationToken;
  }
}

async function putBytes(cfg: Config, key: string, bytes: Uint8Array): Promise<void> {
  await call('PutObject', () =>
    s3(cfg).send(
      new PutObjectCommand({ Bucket: cfg.bucket, Key: key, Body: bytes, ContentLength: bytes.length, ContentType: 'application/octet-stream' }),
    ),
  );
}

async function discardStaging(cfg: Config, uploadId: string): Promise<void> {
  for (const { key } of await listObjects(cfg, stagingOf(uploadId))) {
    await call('DeleteObject', () => s3(cfg).send(new DeleteObjectCommand({ Bucket: cfg.bucket, Key: key })));
  }
}

async function stagedState(cfg: Config, userId: string, uploadId: string, s3Key: string): Promise<Staged> {
  owned(userId, s3Key);
  const stage = stagingOf(uploadId);
  const objects = await listObjects(cfg, stage);
  const layout = objects.map((o) => MARKER.exec(o.key)).find(Boolean);
  if (!layout) throw new ApiError(404, GONE);
  const parts = await listParts(cfg, s3Key, uploadId); // 404 unless this upload id is this key's
  const state: Staged = {
    stage,
    fileSize: Number(layout[1]),
    partSize: Number(layout[2]),
    parts: parts.length,
    stored: parts.reduce((sum, p) => sum + Number(p.Size ?? 0), 0),
    chunks: [],
    stale: [],
  };
  const staged = objects
    .map((o) => ({ match: CHUNK.exec(o.key), ...o }))
    .filter((o) => o.match)
    .map((o) => ({ offset: Number(o.match![1]), size: o.size, key: o.key }))
    .sort((a, b) => a.offset - b.offset);
  let cursor = state.stored;
  for (const chunk of staged) {
    if (chunk.offset === cursor && chunk.size) {
      state.chunks.push(chunk);
      cursor += chunk.size;
    } else if (chunk.offset < state.stored) {
      state.stale.push(chunk.key);
    }
  }
  return state;
}

/** Upload the next part (`size` bytes) from the staged chunks; stage the last one's tail. */
async function flush(cfg: Config, s3Key: string, uploadId: string, state: Staged, size: number): Promise<void> {
  const pieces: Uint8Array[] = [];
  const consumed: string[] = [];
  let gathered = 0;
  while (gathered < size) {
    const chunk = state.chunks.shift();
    if (!chunk) throw new Overtaken();
    let bytes: Uint8Array;
    try {
      const got = await s3(cfg).send(new GetObjectCommand({ Bucket: cfg.bucket, Key: chunk.key }));
      bytes = await got.Body!.transformToByteArray();
    } catch (error) {
      if (notFound(error)) throw new Overtaken(); // consumed by another instance's flush of this part
      throw translated('GetObject', error);
    }
    pieces.push(bytes);
    gathered += bytes.length;
    consumed.push(chunk.key);
  }
  const assembled = Buffer.concat(pieces);
  const part = assembled.subarray(0, size);
  await call('UploadPart', () =>
    s3(cfg).send(
      new UploadPartCommand({ Bucket: cfg.bucket, Key: s3Key, UploadId: uploadId, PartNumber: state.parts + 1, Body: part, ContentLength: size }),
    ),
  );
  state.parts += 1;
  state.stored += size;
  if (gathered > size) {
    // The last chunk reached past the part: its tail is the next part's start.
    const tailKey = chunkKey(state.stage, state.stored);
    await putBytes(cfg, tailKey, assembled.subarray(size));
    state.chunks.unshift({ offset: state.stored, size: gathered - size, key: tailKey });
  }
  for (const key of [...consumed, ...state.stale]) {
    await call('DeleteObject', () => s3(cfg).send(new DeleteObjectCommand({ Bucket: cfg.bucket, Key: key })));
  }
  state.stale = [];
}

/** Size and ETag of the object an upload whose staging is gone already completed, else `missing`. */
async function completedInstead(cfg: Config, missing: unknown, userId: string, s3Key: string) {
  owned(userId, s3Key);
  const found = missing instanceof ApiError && missing.status === 404 ? await existing(cfg, s3Key) : undefined;
  if (!found) throw missing;
  return found;
}

async function chunkedStart(cfg: Config, userId: string, body: Body) {
  const fileName = str(need(body, 'fileName', 'fileName'), 'fileName', 1, 4096);
  const fileSize = int(need(body, 'fileSize', 'fileSize'), 'fileSize', 0, Number.MAX_SAFE_INTEGER);
  const displayName = optional(body, 'displayName', (v, p) => str(v, p, 0, 1024));
  const contentType = optional(body, 'contentType', (v, p) => str(v, p, 0, 255));
  const name = checkedName(cfg, fileName);
  if (fileSize > cfg.maxFileSize) {
    throw new ApiError(400, `The file is ${human(fileSize)}; this server accepts at most ${human(cfg.maxFileSize)}.`);
  }
  if (contentType && !MIME.test(contentType)) {
    throw new ApiError(400, "contentType must be a MIME type such as 'application/octet-stream'.");
  }
  // Each unfinished chunked upload may hold up to a part's worth of staged chunks in the bucket.
  const held = (await listUploads(cfg, userId)).uploads.length;
  if (held >= MAX_OPEN_CHUNKED_PER_USER) {
    throw new ApiError(
      429,
      `You have ${held} unfinished uploads on this server, the most it keeps for one person. Finish or cancel some of them, then start this one again.`,
    );
  }
  const target = destination(userId, `${userId}_${Date.now()}_${name}`);
  const created = await call('CreateMultipartUpload', () =>
    s3(cfg).send(
      new CreateMultipartUploadCommand({
        Bucket: cfg.bucket,
        Key: target.s3Key,
        ContentType: contentType || 'application/octet-stream',
        Metadata: { 'display-name': headerSafe(displayName || fileName), 'original-name': headerSafe(fileName) },
      }),
    ),
  );
  const uploadId = created.UploadId ?? '';
  await putBytes(cfg, `${stagingOf(uploadId)}size-${fileSize}-part-${chunkedPartSize(fileSize)}`, new Uint8Array());
  console.info(`chunked start ${target.s3Key} for ${userId}: ${fileSize} bytes`);
  return {
    uploadId,
    s3Key: target.s3Key,
    uniqueFileName: target.uniqueFileName,
    comfyUIPath: target.comfyUIPath,
    maxChunkBytes: CHUNK_MAX_BYTES,
  };
}

async function chunkedChunk(cfg: Config, userId: string, request: Request) {
  const params = new URL(request.url).searchParams;
  const uploadId = params.get('uploadId') ?? '';
  const s3Key = params.get('s3Key') ?? '';
  const offsetText = params.get('offset') ?? '';
  if (!uploadId || !s3Key || !/^[0-9]{1,15}$/.test(offsetText)) {
    throw new ApiError(400, 'A chunk needs the query parameters uploadId, s3Key and a numeric offset.');
  }
  printable(uploadId, 'uploadId', 'an upload id');
  const offset = Number(offsetText);
  const bytes = await readBytes(request, CHUNK_MAX_BYTES);
  return locked(uploadId, async () => {
    let state = await stagedState(cfg, userId, uploadId, s3Key);
    const received = receivedOf(state);
    if (offset !== received) {
      throw new ApiError(409, `Expected the chunk at offset ${received}, got ${offset}.`, { expectedOffset: received });
    }
    if (offset + bytes.length > state.fileSize) {
      throw new ApiError(400, `This chunk would go past the declared file size of ${state.fileSize} bytes.`);
    }
    if (bytes.length) {
      const key = chunkKey(state.stage, offset);
      await putBytes(cfg, key, bytes);
      state.chunks.push({ offset, size: bytes.length, key });
    }
    try {
      while (receivedOf(state) - state.stored >= state.partSize && state.stored + state.partSize < state.fileSize) {
        await flush(cfg, s3Key, uploadId, state, state.partSize);
      }
    } catch (error) {
      if (!(error instanceof Overtaken)) throw error;
      // Another instance flushed these chunks first: what storage holds now is the answer.
      state = await stagedState(cfg, userId, uploadId, s3Key);
    }
    return { received: receivedOf(state) };
  });
}

async function chunkedStatus(cfg: Config, userId: string, body: Body) {
  const { uploadId, s3Key } = uploadRef(body);
  return locked(uploadId, async () => {
    try {
      const state = await stagedState(cfg, userId, uploadId, s3Key);
      return { received: receivedOf(state), fileSize: state.fileSize };
    } catch (missing) {
      const { size } = await completedInstead(cfg, missing, userId, s3Key);
      return { received: size, fileSize: size };
    }
  });
}

async function chunkedComplete(cfg: Config, userId: string, body: Body) {
  const { uploadId, s3Key } = uploadRef(body);
  return locked(uploadId, async () => {
    let state: Staged;
    try {
      state = await stagedState(cfg, userId, uploadId, s3Key);
    } catch (missing) {
      const { etag } = await completedInstead(cfg, missing, userId, s3Key);
      return completion(cfg, owned(userId, s3Key), etag);
    }
    const received = receivedOf(state);
    if (received !== state.fileSize) {
      throw new ApiError(400, `Only ${received} of ${state.fileSize} bytes have arrived; send the rest before completing.`, {
        expectedOffset: received,
      });
    }
    let etag: string;
    try {
      const staged = received - state.stored;
      if (staged || !state.parts) await flush(cfg, s3Key, uploadId, state, staged);
      const parts = (await listParts(cfg, s3Key, uploadId)).map((p) => ({ PartNumber: p.PartNumber, ETag: p.ETag }));
      const done = await call('CompleteMultipartUpload', () =>
        s3(cfg).send(new CompleteMultipartUploadCommand({ Bucket: cfg.bucket, Key: s3Key, UploadId: uploadId, MultipartUpload: { Parts: parts } })),
      );
      etag = done.ETag ?? '';
    } catch (error) {
      if (!(error instanceof Overtaken) && !(error instanceof ApiError && error.status === 404)) throw error;
      // Another instance completed it meanwhile (a retried complete racing its original there).
      ({ etag } = await completedInstead(cfg, new ApiError(404, GONE), userId, s3Key));
      return completion(cfg, owned(userId, s3Key), etag);
    }
    await discardStaging(cfg, uploadId);
    console.info(`chunked complete ${s3Key}: ${state.parts} parts`);
    return completion(cfg, owned(userId, s3Key), etag);
  });
}

async function chunkedAbort(cfg: Config, userId: string, body: Body) {
  const { uploadId, s3Key } = uploadRef(body);
  const target = owned(userId, s3Key);
  return locked(uploadId, async () => {
    await verifyUpload(cfg, target.s3Key, uploadId);
    await call('AbortMultipartUpload', () =>
      s3(cfg).send(new AbortMultipartUploadCommand({ Bucket: cfg.bucket, Key: target.s3Key, UploadId: uploadId })),
    );
    await discardStaging(cfg, uploadId).catch(() => undefined);
    return { success: true, message: 'Upload aborted' };
  });
}

async function chunkedUpload(cfg: Config, request: Request): Promise<Response> {
  if (!cfg.chunked) throw new ApiError(404, 'Chunked uploads are not offered by this server.');
  const userId = userFor(cfg, request.headers.get('authorization'));
  const contentType = (request.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
  if (contentType === 'application/octet-stream') return answer(await chunkedChunk(cfg, userId, request));
  const body = await readBody(request);
  if (!present(body, 'action')) throw new ApiError(400, "The body needs an 'action' field.");
  switch (body.action) {
    case 'start':
      return answer(await chunkedStart(cfg, userId, body));
    case 'status':
      return answer(await chunkedStatus(cfg, userId, body));
    case 'complete':
      return answer(await chunkedComplete(cfg, userId, body));
    case 'abort':
      return answer(await chunkedAbort(cfg, userId, body));
    default:
      throw new ApiError(400, `Unknown action '${String(body.action)}'. Supported: start, status, complete, abort.`);
  }
}

// ---------------------------------------------------------------------------------------------------
// The single-request upload (POST /api/user/influencers/upload, served by this same code through
// upload/route.ts): one multipart/form-data request with `file` and `displayName`, for files small
// enough for a serverless body. The bytes are held in memory (at most LEGACY_MAX_BYTES plus the form)
// and stored with one PutObject: no local disk. The answer is the one `complete` gives.

const LEGACY_MAX_BYTES = 6 * MiB;
const FORM_OVERHEAD = 64 * KiB;

async function legacyUpload(cfg: Config, request: Request): Promise<Response> {
  if (!cfg.legacy) throw new ApiError(404, 'Single-request uploads are not offered by this server.');
  const userId = userFor(cfg, request.headers.get('authorization'));
  const contentType = request.headers.get('content-type') ?? '';
  if (!contentType.toLowerCase().startsWith('multipart/form-data')) {
    throw new ApiError(400, 'A single-request upload is a multipart/form-data body with a file field.');
  }
  const raw = await readBytes(request, LEGACY_MAX_BYTES + FORM_OVERHEAD);
  let form: FormData;
  try {
    form = await new Response(new Uint8Array(raw), { headers: { 'content-type': contentType } }).formData();
  } catch {
    throw new ApiError(400, 'The request body is not a readable multipart/form-data form.');
  }
  const file = form.get('file');
  if (!(file instanceof File)) throw new ApiError(400, "The form needs a 'file' field holding the file.");
  if (file.size > LEGACY_MAX_BYTES) {
    throw new ApiError(
      413,
      `Single-request uploads are limited to ${human(LEGACY_MAX_BYTES)}; this file is ${human(file.size)}. Use the presigned or chunked upload.`,
    );
  }
  const given = form.get('displayName');
  const displayName = typeof given === 'string' ? given : '';
  const name = checkedName(cfg, file.name);
  const target = destination(userId, `${userId}_${Date.now()}_${name}`);
  const bytes = new Uint8Array(await file.arrayBuffer());
  const put = await call('PutObject', () =>
    s3(cfg).send(
      new PutObjectCommand({
        Bucket: cfg.bucket,
        Key: target.s3Key,
        Body: bytes,
        ContentLength: bytes.length,
        ContentType: 'application/octet-stream',
        Metadata: { 'display-name': headerSafe(displayName || file.name), 'original-name': headerSafe(file.name) },
      }),
    ),
  );
  console.info(`single-request upload ${target.s3Key} for ${userId}: ${bytes.length} bytes`);
  return answer(await completion(cfg, target, put.ETag ?? ''));
}

// ---------------------------------------------------------------------------------------------------
// The handlers

function answer(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return Response.json(body, { status, headers: { 'Cache-Control': 'no-store', ...headers } });
}

function refusal(error: unknown): Response {
  if (error instanceof ApiError) return answer({ error: error.message, ...error.extra }, error.status);
  console.error('Unhandled error in the upload route:', error instanceof Error ? error.name : typeof error);
  return answer({ error: 'The server hit an internal error; please try again.' }, 500);
}

export async function POST(request: Request): Promise<Response> {
  try {
    const cfg = config();
    const path = new URL(request.url).pathname;
    if (path.endsWith('/chunked-upload')) return await chunkedUpload(cfg, request);
    if (path.endsWith('/influencers/upload')) return await legacyUpload(cfg, request);
    if (Number(request.headers.get('content-length') ?? '') > MAX_JSON_BODY) throw tooLarge(MAX_JSON_BODY);
    const userId = userFor(cfg, request.headers.get('authorization'));
    const body = await readBody(request);
    if (!present(body, 'action')) throw new ApiError(400, "The body needs an 'action' field.");
    const action = body.action;
    if (typeof action !== 'string' || !cfg.actions.includes(action)) {
      const named = typeof action === 'string' ? action : JSON.stringify(action);
      throw new ApiError(400, `Unknown action '${named}'. Supported: ${cfg.actions.join(', ')}.`);
    }
    switch (action) {
      case 'start':
        return answer(await start(cfg, userId, body));
      case 'complete':
        return answer(await complete(cfg, userId, body));
      case 'abort': {
        const aborted = await abort(cfg, userId, body);
        // A chunked upload aborted this way leaves nothing staged either.
        if (cfg.chunked) await discardStaging(cfg, String(body.uploadId)).catch(() => undefined);
        return answer(aborted);
      }
      case 'sign':
        return answer(await sign(cfg, userId, body));
      case 'status':
        return answer(await status(cfg, userId, body));
      default:
        return answer(await listUploads(cfg, userId));
    }
  } catch (error) {
    return refusal(error);
  }
}

export async function GET(request: Request): Promise<Response> {
  try {
    const cfg = config();
    if (cfg.original) {
      // The original route had no GET, and Next answered 405: a client then uses only start/complete/abort.
      return answer({ error: 'That method is not allowed on this endpoint.' }, 405, { Allow: 'POST' });
    }
    userFor(cfg, request.headers.get('authorization'));
    return answer(capabilities(cfg));
  } catch (error) {
    return refusal(error);
  }
}
