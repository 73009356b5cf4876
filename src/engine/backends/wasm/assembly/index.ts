// @ts-nocheck  (AssemblyScript, compiled by scripts/build-wasm.mjs; not part of the TypeScript program)
// Entry point of the WasmBackend's kernels. Memory is imported (shared by the main thread and the workers);
// nothing here allocates: every buffer is passed in by the JavaScript side. `run` executes a job block on
// one thread; threads share the job's work through its atomic task counter.
import { gemmRun, J_KIND } from "./gemm";
import { binaryJob, layerNormGradGradJob, layerNormGradJob, layerNormJob, unaryJob } from "./elementwise";
import { adamwJob } from "./optim";
export { gemmRun, sumPartials } from "./gemm";
export { initConstants, CONSTANTS_BYTES } from "./math";
export { binaryRange, unaryRange, layerNormRows, layerNormGradRows, layerNormGradGradRows, reduceRows, reduceCols, reduceColsAcc, reduceColsFinish, gather32, scatterAdd32, transpose3, copy3d, maxPool2x2 } from "./elementwise";

const KIND_GEMM = 1;
const KIND_BINARY = 2;
const KIND_UNARY = 3;
const KIND_LAYERNORM = 4;
const KIND_LAYERNORM_GRAD = 5;
const KIND_ADAMW = 6;
const KIND_LAYERNORM_GRAD_GRAD = 7;

export function run(job: usize, tid: i32): void {
  const kind = load<i32>(job + (<usize>J_KIND << 2));
  if (kind == KIND_GEMM) gemmRun(job, tid);
  else if (kind == KIND_BINARY) binaryJob(job);
  else if (kind == KIND_UNARY) unaryJob(job);
  else if (kind == KIND_LAYERNORM) layerNormJob(job);
  else if (kind == KIND_LAYERNORM_GRAD) layerNormGradJob(job);
  else if (kind == KIND_ADAMW) adamwJob(job);
  else if (kind == KIND_LAYERNORM_GRAD_GRAD) layerNormGradGradJob(job);
}
