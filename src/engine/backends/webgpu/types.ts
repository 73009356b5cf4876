// The data types of the WebGPU kernels' interface: arrays in GPU buffers, kernel options, statistics.
import type { FusedProgram } from "./shaders/fused.ts";
import type { GemmRows } from "./shaders/gemm.ts";

export type GpuDType = "float32" | "int32";

/** A fused expression to run in a producer kernel after it stores `out`: its leaf `leaf` is that output. */
export interface GemmEpilogue {
  readonly program: FusedProgram<GpuArray>;
  readonly leaf: number;
  readonly out2: GpuArray;
}

/** A typed array living in a GPU buffer (the buffer may be larger: pool size classes). */
export interface GpuArray {
  readonly buffer: GPUBuffer;
  readonly length: number;
  readonly dtype: GpuDType;
}

/** An inverse index for scatterAdd built on the CPU: perm[offsets[j] .. offsets[j+1]) are the inputs of output j, in increasing order. */
export interface ScatterPlan {
  readonly offsets: GpuArray;
  readonly perm: GpuArray;
  readonly inputs: number;
  readonly outputs: number;
}

export interface WebGpuKernelsOptions {
  /**
   * Matmuls and convolutions with fewer output tiles than this split K across workgroups (partial
   * products summed afterwards). Default: 256 on a GPU, 4 on a software adapter.
   */
  splitKMinWorkgroups?: number;
  /** The least K each split gets (default 128). */
  splitKMinLength?: number;
  /** Rows of a product's output per invocation: 4 (64x64 tiles, the default) or 8 (128x64 tiles). */
  gemmRows?: GemmRows;
  /**
   * A matmul or forward convolution with fewer 64-wide output tiles than splitKMinWorkgroups takes 32x32
   * tiles (64 invocations each) first, and splits K only if those are still too few (default false).
   */
  smallTiles?: boolean;
  /**
   * Storage buffers one kernel may bind (default: the device's limit). Kernels pick smaller forms under 8
   * (AdamW in three dispatches; fused expressions with fewer leaves); 4 is WebGPU's compatibility mode.
   */
  maxStorageBuffers?: number;
}

export interface KernelStats {
  dispatches: number;
  submits: number;
  /** Compute passes begun (a copy or clear between dispatches ends one; the profiler's own are not counted). */
  passes: number;
  /** Bind groups created; the other dispatches found theirs in the cache. */
  bindGroupsCreated: number;
  pipelines: number;
  /** Bytes of storage buffers the pool has created, and how many of them are free. */
  allocatedBytes: number;
  freeBytes: number;
}
