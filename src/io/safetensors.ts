// safetensors reader/writer on plain typed arrays (no fs: runs in browsers too).
// Format: u64 LE header length N | N bytes UTF-8 JSON header | raw little-endian data.
// Header entries: {"dtype","shape","data_offsets":[begin,end]} relative to the data start.

export type SafetensorsDtype = "F32" | "F64" | "I32";
export type SafetensorsData = Float32Array | Float64Array | Int32Array;

export interface SafetensorsTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: SafetensorsData;
}

export interface DecodedSafetensors {
  tensors: Map<string, SafetensorsTensor>;
  metadata: Record<string, string>;
}

export interface DecodeSafetensorsOptions {
  /** Always copy tensor data out of `bytes`. Default false: aligned tensors are views into `bytes`. */
  copy?: boolean;
}

const ELEMENT_SIZE: Record<SafetensorsDtype, number> = { F64: 8, F32: 4, I32: 4 };
// Dtypes the format defines but this project does not read: reported as "unsupported", not "unknown".
const KNOWN_UNSUPPORTED = new Set([
  "BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2",
  "I16", "U16", "F16", "BF16", "U32", "I64", "U64", "C64",
]);
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function fail(message: string): never {
  throw new Error(`safetensors: ${message}`);
}

function isSupportedDtype(d: unknown): d is SafetensorsDtype {
  return d === "F32" || d === "F64" || d === "I32";
}

function dtypeOfArray(data: unknown): SafetensorsDtype | undefined {
  if (data instanceof Float32Array) return "F32";
  if (data instanceof Float64Array) return "F64";
  if (data instanceof Int32Array) return "I32";
  return undefined;
}

/** Product of a validated shape; refuses sizes beyond what a JS number counts exactly. */
function elementCount(shape: number[], where: string): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) fail(`${where}: shape [${shape.join(",")}] must hold non-negative integers`);
    n *= d;
    if (!Number.isSafeInteger(n)) fail(`${where}: shape [${shape.join(",")}] is too large`);
  }
  return n;
}

function jsonString(s: string): string {
  return JSON.stringify(s);
}

/**
 * Encodes tensors as a safetensors file. Data is laid out like the official writer:
 * 8-byte dtypes first, then 4-byte ones, by name within each group, with no gaps, so every
 * tensor starts at a multiple of its element size (zero-copy views) and the official reader,
 * which rejects gaps between tensors, accepts the file.
 */
export function encodeSafetensors(
  tensors: Record<string, SafetensorsTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const names = Object.keys(tensors).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const entries = names.map((name) => {
    const t = tensors[name]!;
    const where = `tensor '${name}'`;
    if (name === "__metadata__") fail(`'__metadata__' is reserved and cannot be a tensor name`);
    if (!isSupportedDtype(t.dtype)) fail(`${where}: unsupported dtype ${String(t.dtype)}`);
    const actual = dtypeOfArray(t.data);
    if (actual !== t.dtype) fail(`${where}: dtype ${t.dtype} does not match its data (${actual ?? typeof t.data})`);
    if (!Array.isArray(t.shape)) fail(`${where}: shape must be an array`);
    const n = elementCount(t.shape, where);
    if (n !== t.data.length) fail(`${where}: shape [${t.shape.join(",")}] has ${n} elements but data has ${t.data.length}`);
    return { name, t, size: ELEMENT_SIZE[t.dtype] };
  });
  // Stable sort keeps name order within each element-size group.
  const layout = [...entries].sort((a, b) => b.size - a.size);
  const offsets = new Map<string, [number, number]>();
  let offset = 0;
  for (const e of layout) {
    const bytes = e.t.data.length * e.size;
    offsets.set(e.name, [offset, offset + bytes]);
    offset += bytes;
  }
  // Header order follows the data layout, with __metadata__ last (in the caller's key order):
  // the same bytes as fixtures/gen_fixtures.py writes, so a decode/encode round trip is exact.
  const parts = layout.map((e) => {
    const info = { dtype: e.t.dtype, shape: e.t.shape, data_offsets: offsets.get(e.name) };
    return `${jsonString(e.name)}:${JSON.stringify(info)}`;
  });
  if (metadata !== undefined) {
    const fields = Object.entries(metadata).map(([k, v]) => {
      if (typeof v !== "string") fail(`metadata '${k}' must be a string, got ${typeof v}`);
      return `${jsonString(k)}:${jsonString(v)}`;
    });
    parts.push(`"__metadata__":{${fields.join(",")}}`);
  }
  const json = new TextEncoder().encode(`{${parts.join(",")}}`);
  const header = new Uint8Array(Math.ceil(json.length / 8) * 8).fill(0x20); // spaces keep the data start 8-aligned
  header.set(json);

  const out = new Uint8Array(8 + header.length + offset);
  const view = new DataView(out.buffer);
  view.setUint32(0, header.length, true);
  view.setUint32(4, Math.floor(header.length / 2 ** 32), true);
  out.set(header, 8);
  const dataStart = 8 + header.length;
  for (const e of layout) {
    const [begin] = offsets.get(e.name)!;
    writeLittleEndian(out, dataStart + begin, e.t.data);
  }
  return out;
}

function writeLittleEndian(out: Uint8Array, at: number, data: SafetensorsData): void {
  if (LITTLE_ENDIAN) {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
    return;
  }
  const view = new DataView(out.buffer, out.byteOffset);
  for (let i = 0; i < data.length; i++) {
    if (data instanceof Float64Array) view.setFloat64(at + 8 * i, data[i]!, true);
    else if (data instanceof Float32Array) view.setFloat32(at + 4 * i, data[i]!, true);
    else view.setInt32(at + 4 * i, data[i]!, true);
  }
}

function readTensorData(
  bytes: Uint8Array, start: number, dtype: SafetensorsDtype, count: number, copy: boolean,
): SafetensorsData {
  const size = ELEMENT_SIZE[dtype];
  const Ctor = dtype === "F64" ? Float64Array : dtype === "F32" ? Float32Array : Int32Array;
  const abs = bytes.byteOffset + start;
  if (LITTLE_ENDIAN) {
    if (!copy && abs % size === 0) return new Ctor(bytes.buffer as ArrayBuffer, abs, count); // zero-copy view
    // Misaligned (or copy requested): copy the bytes into a fresh, aligned buffer.
    const buf = new ArrayBuffer(count * size);
    new Uint8Array(buf).set(bytes.subarray(start, start + count * size));
    return new Ctor(buf);
  }
  const out = new Ctor(count);
  const view = new DataView(bytes.buffer, bytes.byteOffset + start, count * size);
  for (let i = 0; i < count; i++) {
    out[i] = dtype === "F64" ? view.getFloat64(8 * i, true)
      : dtype === "F32" ? view.getFloat32(4 * i, true) : view.getInt32(4 * i, true);
  }
  return out;
}

function describe(v: unknown): string {
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
  } catch {
    return String(v);
  }
}

/**
 * Decodes a safetensors file. Refuses (with an Error whose message starts with "safetensors:")
 * anything malformed: short or truncated files, bad JSON, unknown dtypes, offsets that do not
 * match shape and dtype, overlapping or out-of-range offsets, trailing bytes.
 */
export function decodeSafetensors(bytes: Uint8Array, options: DecodeSafetensorsOptions = {}): DecodedSafetensors {
  if (!(bytes instanceof Uint8Array)) fail("input must be a Uint8Array");
  if (bytes.length < 8) fail(`file too short: ${bytes.length} bytes, need at least 8 for the header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, 8);
  const lo = view.getUint32(0, true);
  const hi = view.getUint32(4, true);
  const headerLen = hi * 2 ** 32 + lo;
  if (headerLen > bytes.length - 8) {
    fail(`header length ${headerLen} exceeds file size (${bytes.length - 8} bytes after the length field)`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerLen));
  } catch {
    fail("header is not valid UTF-8");
  }
  if (!text.startsWith("{")) fail(`invalid JSON header: must start with '{', found ${describe(text.slice(0, 20))}`);
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    fail(`invalid JSON header: ${(e as Error).message}`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) fail("invalid JSON header: not an object");

  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const infos: { name: string; dtype: SafetensorsDtype; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail("__metadata__ must be an object of strings");
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== "string") fail(`__metadata__ value '${k}' must be a string, got ${describe(v)}`);
        metadata[k] = v;
      }
      continue;
    }
    const where = `tensor '${name}'`;
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail(`${where}: entry must be an object`);
    const { dtype, shape, data_offsets: offs } = raw as Record<string, unknown>;
    if (typeof dtype !== "string") fail(`${where}: missing or non-string dtype`);
    if (!isSupportedDtype(dtype)) {
      fail(KNOWN_UNSUPPORTED.has(dtype) ? `${where}: unsupported dtype ${dtype} (supported: F32, F64, I32)` : `${where}: unknown dtype ${describe(dtype)}`);
    }
    if (!Array.isArray(shape)) fail(`${where}: shape must be an array, got ${describe(shape)}`);
    const count = elementCount(shape as number[], where);
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      fail(`${where}: data_offsets must be [begin, end] non-negative integers, got ${describe(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    if (end < begin) fail(`${where}: offsets [${begin},${end}] are reversed`);
    if (end - begin !== count * ELEMENT_SIZE[dtype]) {
      fail(`${where} offsets [${begin},${end}] do not match shape [${(shape as number[]).join(",")}] and dtype ${dtype}` +
        ` (expected ${count * ELEMENT_SIZE[dtype]} bytes, got ${end - begin})`);
    }
    infos.push({ name, dtype, shape: (shape as number[]).slice(), begin, end });
  }

  // Gaps are tolerated (tensors stay readable); overlaps, out-of-range and trailing bytes are not.
  const byOffset = [...infos].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let prev: (typeof infos)[number] | undefined; // the tensor reaching furthest so far
  let maxEnd = 0;
  for (const t of byOffset) {
    if (prev !== undefined && t.begin < prev.end) {
      fail(`overlapping offsets: tensor '${t.name}' [${t.begin},${t.end}] overlaps '${prev.name}' [${prev.begin},${prev.end}]`);
    }
    if (t.end > dataLen) {
      fail(`file truncated: header says ${maxOf(infos)} bytes of data, found ${dataLen} (tensor '${t.name}' offsets [${t.begin},${t.end}] out of range)`);
    }
    if (prev === undefined || t.end > prev.end) prev = t;
    maxEnd = Math.max(maxEnd, t.end);
  }
  if (maxEnd < dataLen) fail(`${dataLen - maxEnd} unexpected bytes after the last tensor (header covers ${maxEnd} of ${dataLen} data bytes)`);

  const tensors = new Map<string, SafetensorsTensor>();
  for (const t of infos) {
    const count = (t.end - t.begin) / ELEMENT_SIZE[t.dtype];
    tensors.set(t.name, { dtype: t.dtype, shape: t.shape, data: readTensorData(bytes, dataStart + t.begin, t.dtype, count, options.copy ?? false) });
  }
  return { tensors, metadata };
}

function maxOf(infos: { end: number }[]): number {
  return infos.reduce((m, t) => Math.max(m, t.end), 0);
}
