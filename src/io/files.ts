// Node-only file helpers around the pure encoders (which stay fs-free for browsers).
// Writes go through writeFileAtomic so an interrupted save never leaves a half-written file.
import { readFile } from "node:fs/promises";
import { writeFileAtomic } from "./atomic-file.ts";
import { decodeNpy, encodeNpy, type DecodedNpy, type NpyData } from "./npy.ts";
import {
  decodeSafetensors, encodeSafetensors, type DecodedSafetensors, type SafetensorsTensor,
} from "./safetensors.ts";

async function readBytes(path: string): Promise<Uint8Array> {
  const buf = await readFile(path);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Adds the path to decoding errors, which otherwise do not know which file was bad. */
function withPath<T>(path: string, decode: () => T): T {
  try {
    return decode();
  } catch (e) {
    if (e instanceof Error) e.message = `${e.message} (in ${path})`;
    throw e;
  }
}

export async function readSafetensorsFile(path: string): Promise<DecodedSafetensors> {
  const bytes = await readBytes(path);
  return withPath(path, () => decodeSafetensors(bytes));
}

export async function writeSafetensorsFile(
  path: string, tensors: Record<string, SafetensorsTensor>, metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

export async function readNpyFile(path: string): Promise<DecodedNpy> {
  const bytes = await readBytes(path);
  return withPath(path, () => decodeNpy(bytes));
}

export async function writeNpyFile(path: string, data: NpyData, shape: number[]): Promise<void> {
  await writeFileAtomic(path, encodeNpy(data, shape));
}
