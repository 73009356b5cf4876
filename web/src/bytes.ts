// Byte utilities for the page: CRC-32 and a store-only ZIP writer/reader (the "Download checkpoint"
// button), and gzip decompression with the platform's DecompressionStream. Pure TypeScript, no DOM.

export { sha256Hex } from "../../src/io/sha256.ts";

let crcTable: Uint32Array | null = null;

/** CRC-32 (IEEE, as zip and gzip use). */
export function crc32(bytes: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = crcTable[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

export interface NamedFile {
  /** Path inside the archive, with "/" separators. */
  name: string;
  bytes: Uint8Array;
}

/** A ZIP archive with every file stored (no compression): small, and readable by any unzip tool. */
export function zipStore(files: readonly NamedFile[], date: Date = new Date()): Uint8Array {
  const encoder = new TextEncoder();
  const dosTime = (date.getHours() << 11) | (date.getMinutes() << 5) | Math.floor(date.getSeconds() / 2);
  const dosDate = (Math.max(0, date.getFullYear() - 1980) << 9) | ((date.getMonth() + 1) << 5) | date.getDate();
  const entries = files.map((f) => ({ name: encoder.encode(f.name), bytes: f.bytes, crc: crc32(f.bytes), offset: 0 }));
  const localSize = entries.reduce((s, e) => s + 30 + e.name.length + e.bytes.length, 0);
  const centralSize = entries.reduce((s, e) => s + 46 + e.name.length, 0);
  if (localSize + centralSize + 22 > 0xffffffff || entries.length > 0xffff) throw new Error("zip: archive too large for ZIP32");
  const out = new Uint8Array(localSize + centralSize + 22);
  const v = new DataView(out.buffer);
  let p = 0;
  for (const e of entries) {
    e.offset = p;
    v.setUint32(p, 0x04034b50, true);
    v.setUint16(p + 4, 20, true); // version needed
    v.setUint16(p + 6, 0x0800, true); // UTF-8 names
    v.setUint16(p + 8, 0, true); // stored
    v.setUint16(p + 10, dosTime, true);
    v.setUint16(p + 12, dosDate, true);
    v.setUint32(p + 14, e.crc, true);
    v.setUint32(p + 18, e.bytes.length, true);
    v.setUint32(p + 22, e.bytes.length, true);
    v.setUint16(p + 26, e.name.length, true);
    v.setUint16(p + 28, 0, true);
    out.set(e.name, p + 30);
    out.set(e.bytes, p + 30 + e.name.length);
    p += 30 + e.name.length + e.bytes.length;
  }
  const centralStart = p;
  for (const e of entries) {
    v.setUint32(p, 0x02014b50, true);
    v.setUint16(p + 4, 20, true); // made by
    v.setUint16(p + 6, 20, true);
    v.setUint16(p + 8, 0x0800, true);
    v.setUint16(p + 10, 0, true);
    v.setUint16(p + 12, dosTime, true);
    v.setUint16(p + 14, dosDate, true);
    v.setUint32(p + 16, e.crc, true);
    v.setUint32(p + 20, e.bytes.length, true);
    v.setUint32(p + 24, e.bytes.length, true);
    v.setUint16(p + 28, e.name.length, true);
    // extra, comment, disk, internal attributes, external attributes: 0
    v.setUint32(p + 42, e.offset, true);
    out.set(e.name, p + 46);
    p += 46 + e.name.length;
  }
  v.setUint32(p, 0x06054b50, true);
  v.setUint16(p + 8, entries.length, true);
  v.setUint16(p + 10, entries.length, true);
  v.setUint32(p + 12, p - centralStart, true);
  v.setUint32(p + 16, centralStart, true);
  return out;
}

/** Reads a store-only ZIP (what zipStore writes), checking every CRC. */
export function unzipStore(zip: Uint8Array): NamedFile[] {
  const v = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  let end = zip.length - 22;
  while (end >= 0 && v.getUint32(end, true) !== 0x06054b50) end--;
  if (end < 0) throw new Error("zip: no end-of-central-directory record");
  const count = v.getUint16(end + 10, true);
  let p = v.getUint32(end + 16, true);
  const decoder = new TextDecoder();
  const files: NamedFile[] = [];
  for (let i = 0; i < count; i++) {
    if (v.getUint32(p, true) !== 0x02014b50) throw new Error(`zip: bad central directory entry ${i}`);
    if (v.getUint16(p + 10, true) !== 0) throw new Error("zip: only stored (uncompressed) entries are supported");
    const crc = v.getUint32(p + 16, true);
    const size = v.getUint32(p + 20, true);
    const nameLength = v.getUint16(p + 28, true);
    const skip = v.getUint16(p + 30, true) + v.getUint16(p + 32, true);
    const name = decoder.decode(zip.subarray(p + 46, p + 46 + nameLength));
    const local = v.getUint32(p + 42, true);
    const dataStart = local + 30 + v.getUint16(local + 26, true) + v.getUint16(local + 28, true);
    const bytes = zip.slice(dataStart, dataStart + size);
    if (crc32(bytes) !== crc) throw new Error(`zip: CRC mismatch in ${name}`);
    files.push({ name, bytes });
    p += 46 + nameLength + skip;
  }
  return files;
}

/**
 * Gunzips with the platform's DecompressionStream. Bytes that do not start with the gzip magic are
 * returned as they are (a server may already have decoded a .gz it sent with Content-Encoding: gzip).
 */
export async function gunzip(bytes: Uint8Array): Promise<Uint8Array> {
  if (bytes.length < 2 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes;
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
