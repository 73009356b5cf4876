// Test helper: reads the golden fixtures in fixtures/ (safetensors + JSON) made by fixtures/gen_fixtures.py.
// A tiny local safetensors reader, so tests do not depend on src/io.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export type FixtureDtype = "F32" | "F64" | "I32";

export interface FixtureTensor {
  dtype: FixtureDtype;
  shape: number[];
  data: Float32Array | Float64Array | Int32Array;
}

/** Absolute path of `fixtures/<name>` (resolved from this file, so it works from any cwd). */
export function fixturePath(name: string): string {
  return fileURLToPath(new URL(`../../fixtures/${name}`, import.meta.url));
}

const cache = new Map<string, Map<string, FixtureTensor>>();

/**
 * Loads every tensor of `fixtures/<file>` (a bare name) or of an absolute/relative path.
 * Layout: u64 LE header length N, N bytes of JSON header, then data; offsets are relative to 8+N.
 * Tensors are copied into fresh typed arrays, so alignment never matters. Results are cached per file.
 */
export function loadFixture(file: string): Map<string, FixtureTensor> {
  const path = file.includes("/") ? file : fixturePath(file);
  const hit = cache.get(path);
  if (hit) return hit;
  const bytes = readFileSync(path);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString("utf8")) as Record<string, unknown>;
  const dataStart = 8 + headerLength;
  const tensors = new Map<string, FixtureTensor>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const { dtype, shape, data_offsets } = entry as { dtype: string; shape: number[]; data_offsets: [number, number] };
    const [begin, end] = data_offsets;
    // slice() copies into a fresh, aligned ArrayBuffer.
    const raw = bytes.buffer.slice(bytes.byteOffset + dataStart + begin, bytes.byteOffset + dataStart + end);
    let data: FixtureTensor["data"];
    if (dtype === "F32") data = new Float32Array(raw);
    else if (dtype === "F64") data = new Float64Array(raw);
    else if (dtype === "I32") data = new Int32Array(raw);
    else throw new Error(`${path}: tensor ${name} has unsupported dtype ${dtype}`);
    const count = shape.reduce((a, b) => a * b, 1);
    if (data.length !== count) throw new Error(`${path}: tensor ${name} has ${data.length} elements, shape says ${count}`);
    tensors.set(name, { dtype: dtype as FixtureDtype, shape, data });
  }
  cache.set(path, tensors);
  return tensors;
}

/** One tensor of a fixture file; throws with the file and name when missing. */
export function fixtureTensor(file: string, name: string): FixtureTensor {
  const tensor = loadFixture(file).get(name);
  if (!tensor) throw new Error(`fixture ${file} has no tensor ${name}`);
  return tensor;
}

/** Parsed JSON of `fixtures/<name>` (e.g. case_f4.json). */
export function loadFixtureJson(name: string): any {
  return JSON.parse(readFileSync(name.includes("/") ? name : fixturePath(name), "utf8"));
}
