// The compiled kernels: kernels.wasm, embedded as base64 (kernels-wasm.ts) so that loading needs no file
// system or fetch. Rebuild both with `npm run build:wasm`.
import { KERNELS_WASM_BASE64 } from "./kernels-wasm.ts";

/** The Wasm exports the backend calls. Pointers are byte offsets into the shared memory. */
export interface KernelExports {
  run(job: number, tid: number): void;
  sumPartials(partial: number, splits: number, count: number, out: number): void;
  binaryRange(op: number, a: number, b: number, out: number, inner: number, aos: number, ais: number, bos: number, bis: number, e0: number, e1: number): void;
  unaryRange(op: number, x: number, out: number, e0: number, e1: number, constants: number): void;
  initConstants(at: number): void;
  layerNormRows(x: number, r0: number, r1: number, cols: number, scale: number, bias: number, eps: number, out: number): void;
  layerNormGradRows(x: number, g: number, r0: number, r1: number, cols: number, scale: number, eps: number, out: number): void;
  layerNormGradGradRows(x: number, g: number, h: number, r0: number, r1: number, cols: number, scale: number, eps: number, out: number): void;
  reduceRows(op: number, x: number, r0: number, r1: number, cols: number, out: number): void;
  reduceCols(op: number, x: number, rows: number, cols: number, out: number, acc: number): void;
  reduceColsAcc(op: number, x: number, r0: number, r1: number, cols: number, acc: number, init: number): void;
  reduceColsFinish(op: number, acc: number, cols: number, out: number): void;
  gather32(x: number, index: number, n: number, out: number): void;
  scatterAdd32(g: number, index: number, n: number, out: number, outN: number): void;
  transpose3(x: number, rows: number, cols: number, inner: number, out: number): void;
  copy3d(src: number, dst: number, n0: number, n1: number, n2: number, ss0: number, ss1: number, ds0: number, ds1: number): void;
  maxPool2x2(x: number, b: number, h: number, w: number, c: number, out: number, argmax: number): void;
}

export function kernelBytes(): Uint8Array<ArrayBuffer> {
  const text = atob(KERNELS_WASM_BASE64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

let compiled: WebAssembly.Module | null = null;

/** Compiles once per process (synchronously: fine in Node and in workers; browsers should use compileKernels). */
export function kernelModule(): WebAssembly.Module {
  compiled ??= new WebAssembly.Module(kernelBytes());
  return compiled;
}

/** Asynchronous compile, for browser main threads (which refuse synchronous compiles of large modules). */
export async function compileKernels(): Promise<WebAssembly.Module> {
  compiled ??= await WebAssembly.compile(kernelBytes());
  return compiled;
}

export function instantiate(module: WebAssembly.Module, memory: WebAssembly.Memory): KernelExports {
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  return instance.exports as unknown as KernelExports;
}
