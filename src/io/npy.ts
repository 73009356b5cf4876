// NumPy .npy reader/writer on plain typed arrays (no fs: runs in browsers too).
// Layout: "\x93NUMPY" | major | minor | header length (u16 LE in v1, u32 LE in v2/v3) |
// header (a Python dict literal, padded with spaces and '\n') | raw data, C order.

export type NpyDtype = "<f4" | "<f8" | "<i4";
export type NpyData = Float32Array | Float64Array | Int32Array;

export interface DecodedNpy {
  data: NpyData;
  shape: number[];
  dtype: NpyDtype;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"
const ALIGN = 64; // numpy >= 1.16 aligns the data start to 64 bytes
const GROWTH_AXIS_MAX_DIGITS = 21; // numpy leaves room for the first axis to grow in place
const ELEMENT_SIZE: Record<NpyDtype, number> = { "<f4": 4, "<f8": 8, "<i4": 4 };
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function fail(message: string): never {
  throw new Error(`npy: ${message}`);
}

function dtypeOf(data: unknown): NpyDtype | undefined {
  if (data instanceof Float32Array) return "<f4";
  if (data instanceof Float64Array) return "<f8";
  if (data instanceof Int32Array) return "<i4";
  return undefined;
}

function countOf(shape: readonly unknown[], what: string): number {
  let n = 1;
  for (const d of shape) {
    if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) fail(`${what}: shape (${shape.join(", ")}) must hold non-negative integers`);
    n *= d;
    if (!Number.isSafeInteger(n)) fail(`${what}: shape (${shape.join(", ")}) is too large`);
  }
  return n;
}

/** Python's repr of a tuple of ints: (), (3,), (2, 8, 8). */
function shapeRepr(shape: number[]): string {
  return shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
}

/** Encodes a C-order array as .npy version 1.0, byte-identical to numpy.save. */
export function encodeNpy(data: NpyData, shape: number[]): Uint8Array {
  const dtype = dtypeOf(data);
  if (dtype === undefined) fail("data must be a Float32Array, Float64Array or Int32Array");
  const n = countOf(shape, "encode");
  if (n !== data.length) fail(`shape ${shapeRepr(shape)} has ${n} elements but data has ${data.length}`);
  let dict = `{'descr': '${dtype}', 'fortran_order': False, 'shape': ${shapeRepr(shape)}, }`;
  if (shape.length > 0) dict += " ".repeat(Math.max(0, GROWTH_AXIS_MAX_DIGITS - String(shape[0]).length));
  // numpy's rule: always at least one pad space (a full ALIGN when already aligned), then '\n'.
  const pad = ALIGN - ((MAGIC.length + 2 + 2 + dict.length + 1) % ALIGN);
  const header = dict + " ".repeat(pad) + "\n";
  if (header.length > 0xffff) fail(`header of ${header.length} bytes does not fit format version 1.0`);
  const start = 10 + header.length;
  const out = new Uint8Array(start + data.byteLength);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  if (LITTLE_ENDIAN) {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), start);
  } else {
    const view = new DataView(out.buffer, start);
    for (let i = 0; i < data.length; i++) {
      if (dtype === "<f8") view.setFloat64(8 * i, data[i]!, true);
      else if (dtype === "<f4") view.setFloat32(4 * i, data[i]!, true);
      else view.setInt32(4 * i, data[i]!, true);
    }
  }
  return out;
}

type PyValue = string | number | boolean | null | PyValue[] | { [k: string]: PyValue };

/** Parses the Python literal subset numpy writes: dict, str, int, tuple/list, True/False/None. */
function parsePyLiteral(text: string): PyValue {
  let i = 0;
  const bad = (what: string): never => fail(`invalid header: ${what} at position ${i} in ${JSON.stringify(text.trim().slice(0, 120))}`);
  const ws = () => { while (i < text.length && /\s/.test(text[i]!)) i++; };
  const value = (): PyValue => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const obj: Record<string, PyValue> = Object.create(null); // no prototype: a "__proto__" key stays data
      for (;;) {
        ws();
        if (text[i] === "}") { i++; return obj; }
        const key = value();
        if (typeof key !== "string") bad("dict key is not a string");
        ws();
        if (text[i] !== ":") bad("expected ':'");
        i++;
        if (Object.hasOwn(obj, key as string)) bad(`duplicate key '${key as string}'`);
        obj[key as string] = value();
        ws();
        if (text[i] === ",") i++;
        else if (text[i] !== "}") bad("expected ',' or '}'");
      }
    }
    if (c === "(" || c === "[") {
      const close = c === "(" ? ")" : "]";
      i++;
      const items: PyValue[] = [];
      for (;;) {
        ws();
        if (text[i] === close) { i++; return items; }
        items.push(value());
        ws();
        if (text[i] === ",") i++;
        else if (text[i] !== close) bad(`expected ',' or '${close}'`);
      }
    }
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      if (end < 0) bad("unterminated string");
      const s = text.slice(i + 1, end);
      if (s.includes("\\")) bad("escapes in strings are not supported");
      i = end + 1;
      return s;
    }
    const m = /^(True|False|None|-?\d+L?)/.exec(text.slice(i, i + 40));
    if (m === null) return bad("unexpected character");
    i += m[0].length;
    if (m[0] === "True") return true;
    if (m[0] === "False") return false;
    if (m[0] === "None") return null;
    return Number(m[0].replace("L", "")); // "L": Python 2 long literal in old files
  };
  const v = value();
  ws();
  if (i !== text.length) bad("trailing characters");
  return v;
}

/** Decodes a .npy file (versions 1.0-3.0) holding little-endian float32, float64 or int32 in C order. */
export function decodeNpy(bytes: Uint8Array): DecodedNpy {
  if (!(bytes instanceof Uint8Array)) fail("input must be a Uint8Array");
  if (bytes.length < 10) fail(`file too short: ${bytes.length} bytes`);
  if (!MAGIC.every((b, k) => bytes[k] === b)) fail("not an .npy file (bad magic string)");
  const major = bytes[6]!;
  const minor = bytes[7]!;
  if (major < 1 || major > 3 || minor !== 0) fail(`unsupported format version ${major}.${minor}`);
  const lenSize = major === 1 ? 2 : 4;
  if (bytes.length < 8 + lenSize) fail(`file too short: ${bytes.length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const headerLen = lenSize === 2 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = 8 + lenSize;
  if (headerStart + headerLen > bytes.length) {
    fail(`header length ${headerLen} exceeds file size (${bytes.length - headerStart} bytes after the length field)`);
  }
  const raw = bytes.subarray(headerStart, headerStart + headerLen);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(raw);
  } catch {
    fail("header is not valid UTF-8");
  }
  if (major < 3 && raw.some((b) => b > 0x7f)) fail("header is not ASCII");
  const header = parsePyLiteral(text);
  if (typeof header !== "object" || header === null || Array.isArray(header)) fail("invalid header: not a dict");
  const keys = Object.keys(header).sort().join(",");
  if (keys !== "descr,fortran_order,shape") fail(`invalid header: keys must be descr, fortran_order, shape; found ${keys || "none"}`);
  const { descr, fortran_order: fortran, shape } = header as Record<string, PyValue>;
  if (typeof descr !== "string") fail(`unsupported dtype ${JSON.stringify(descr)} (structured arrays are not supported)`);
  if (descr !== "<f4" && descr !== "<f8" && descr !== "<i4") fail(`unsupported dtype '${descr}' (supported: <f4, <f8, <i4)`);
  if (typeof fortran !== "boolean") fail("invalid header: fortran_order must be True or False");
  if (!Array.isArray(shape)) fail("invalid header: shape must be a tuple");
  const count = countOf(shape, "invalid header");
  const dims = shape as number[];
  // A Fortran-ordered array with at most one axis longer than 1 has the same bytes as C order.
  if (fortran && dims.filter((d) => d > 1).length > 1) fail("fortran_order True is not supported for this shape; save a C-ordered array");
  const size = ELEMENT_SIZE[descr];
  const start = headerStart + headerLen;
  const available = bytes.length - start;
  if (available < count * size) fail(`file truncated: shape ${shapeRepr(dims)} of ${descr} needs ${count * size} bytes of data, found ${available}`);
  if (available > count * size) fail(`${available - count * size} unexpected bytes after the data`);
  const Ctor = descr === "<f8" ? Float64Array : descr === "<f4" ? Float32Array : Int32Array;
  let data: NpyData;
  if (LITTLE_ENDIAN) {
    // Always copy: the result owns aligned memory and does not alias the input.
    const buf = new ArrayBuffer(count * size);
    new Uint8Array(buf).set(bytes.subarray(start, start + count * size));
    data = new Ctor(buf);
  } else {
    data = new Ctor(count);
    for (let k = 0; k < count; k++) {
      data[k] = descr === "<f8" ? view.getFloat64(start + 8 * k, true)
        : descr === "<f4" ? view.getFloat32(start + 4 * k, true) : view.getInt32(start + 4 * k, true);
    }
  }
  return { data, shape: dims.slice(), dtype: descr };
}
