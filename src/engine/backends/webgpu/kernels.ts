/// <reference types="@webgpu/types" />
// WebGpuKernels: the engine's kernels (backend.ts) on GPU buffers; WebGpuBackend (index.ts) puts them
// behind the Backend interface. These methods take GpuArrays and only *encode* work, each through the
// runtime's run() (runtime.ts: memory, encoding, submission, recording and replay).
import { stridesOf } from "../cpu/elementwise.ts";
import type { AdamWArgs, AdamWItem, BinaryOp, ConvArgs, MatmulArgs, ReduceOp, Shape, UnaryOp } from "../../backend.ts";
import { createGpuDevice, type GpuContext, type GpuDeviceOptions } from "./device.ts";
import { GpuRuntime, type Encoder } from "./runtime.ts";
import { f32Bits } from "./shaders/common.ts";
import { binarySource, selectSource, unarySource } from "./shaders/elementwise.ts";
import { GEMM_EPILOGUE_PARAM_BASE, SMALL_TILING, type GemmRows, type GemmTiling, conv2dKernelGradSource, conv2dSource, gemmWithEpilogue, matmulSource, splitKSumWithEpilogue, tileSize } from "./shaders/gemm.ts";
import { COPY_BOX, FILL, FLIP_KERNEL, GATHER, MAX_POOL_2X2, PAD_INTO, TRANSPOSE, UPSAMPLE_NEAREST, UPSAMPLE_NEAREST_GRAD, castSource } from "./shaders/layout.ts";
import { layerNormGradXGradXSource, layerNormGradXSource, layerNormLanes, layerNormSource, layerNormWorkgroups } from "./shaders/norm.ts";
import { ADAMW_DIRECTION, ADAMW_M, ADAMW_P, ADAMW_V, adamwSource, sumSquaresSource } from "./shaders/optim.ts";
import { REDUCE_PARAM_BASE, cumulativeSource, reduceSource } from "./shaders/reduce.ts";
import { checkRank, coalesce, padTo, product } from "./shapes.ts";
import { FUSED_ELEMENTWISE_PARAM_BASE, fusedElementwiseSource, fusedEpilogueDeclarations, readsLeafAtI, type FusedProgram } from "./shaders/fused.ts";
import { NORMAL_FROM_KEY } from "./shaders/random.ts";
import { SCAN, SCATTER_COUNT, SCATTER_FILL, SCATTER_UNIQUE, scatterSumSource } from "./shaders/scatter.ts";

export type { GemmEpilogue, GpuArray, GpuDType, KernelStats, ScatterPlan, WebGpuKernelsOptions } from "./types.ts";
import type { GemmEpilogue, GpuArray, ScatterPlan, WebGpuKernelsOptions } from "./types.ts";

/** The GEMM family's kernels, by name. */
const GEMM_SOURCES = { matmul: matmulSource, conv2d: conv2dSource, conv2dKernelGrad: conv2dKernelGradSource };
type GemmKernel = keyof typeof GEMM_SOURCES;

export class WebGpuKernels extends GpuRuntime {
  private readonly splitKMinWorkgroups: number;
  private readonly splitKMinLength: number;
  private readonly gemmRows: GemmRows;
  private readonly smallTiles: boolean;
  /** Fused programs' bodies -> short ids, so that pipeline and bind-group keys do not embed (and rehash) WGSL text. */
  private readonly programIds = new Map<string, number>();

  constructor(device: GPUDevice, options: WebGpuKernelsOptions = {}, context: GpuContext | null = null) {
    super(device, options, context);
    this.splitKMinWorkgroups = options.splitKMinWorkgroups ?? (this.info?.software ? 4 : 256);
    this.splitKMinLength = Math.max(16, options.splitKMinLength ?? 128);
    this.gemmRows = options.gemmRows ?? 4;
    if (this.gemmRows !== 4 && this.gemmRows !== 8) throw new Error(`webgpu: gemmRows must be 4 or 8, got ${String(this.gemmRows)}`);
    this.smallTiles = options.smallTiles ?? false;
  }

  /** A device on the best adapter (see device.ts) with kernels on it; destroy() releases both. */
  static async create(options: GpuDeviceOptions & WebGpuKernelsOptions = {}): Promise<WebGpuKernels> {
    const context = await createGpuDevice(options);
    return new WebGpuKernels(context.device, options, context);
  }

  // ---- elementwise ------------------------------------------------------------------------------

  unary(op: UnaryOp, x: GpuArray, out: GpuArray, enc: Encoder = this.encoder()): void {
    if (x.dtype !== "float32" || out.dtype !== "float32") throw new Error(`webgpu unary ${op}: float32 only`);
    const n = out.length;
    this.run(enc, `unary:${op}`, () => unarySource(op), "main", [n], [x.buffer, out.buffer], this.grid(n));
  }

  /** NumPy broadcasting; aShape, bShape and outShape have equal rank (as Backend.binary). */
  binary(op: BinaryOp, a: GpuArray, aShape: Shape, b: GpuArray, bShape: Shape, out: GpuArray, outShape: Shape, enc: Encoder = this.encoder()): void {
    if (a.dtype !== out.dtype || b.dtype !== out.dtype) throw new Error(`webgpu binary ${op}: dtypes ${a.dtype}, ${b.dtype} -> ${out.dtype}`);
    const n = out.length;
    if (n === 0) return;
    const key = `binary:${op}:${out.dtype}`;
    const source = (): string => binarySource(op, out.dtype);
    const fullOrOne = (t: GpuArray): boolean => t.length === n || t.length === 1;
    if (fullOrOne(a) && fullOrOne(b)) {
      const aStep = a.length === n ? 1 : 0;
      const bStep = b.length === n ? 1 : 0;
      this.run(enc, key, source, "flat", [n, 1, aStep, bStep], [a.buffer, b.buffer, out.buffer], this.grid(n));
      return;
    }
    const broadcast = (shape: Shape): number[] => {
      const s = stridesOf(shape);
      return outShape.map((d, i) => (shape[i] === d ? s[i]! : 0));
    };
    const c = coalesce(outShape, [broadcast(aShape), broadcast(bShape)]);
    checkRank("binary", c.sizes.length);
    const params = [n, c.sizes.length, 0, 0, ...padTo(c.sizes, 8), ...padTo(c.strides[0]!, 8), ...padTo(c.strides[1]!, 8)];
    this.run(enc, key, source, "strided", params, [a.buffer, b.buffer, out.buffer], this.grid(n));
  }

  /** out = cond != 0 ? a : b, all the same size. */
  select(cond: GpuArray, a: GpuArray, b: GpuArray, out: GpuArray, enc: Encoder = this.encoder()): void {
    const n = out.length;
    this.run(enc, `select:${cond.dtype}`, () => selectSource(cond.dtype), "main", [n], [cond.buffer, a.buffer, b.buffer, out.buffer], this.grid(n));
  }

  /** out = the standard normals random.normalArray draws from the key (2 int32 words), to float32 rounding. */
  randomNormal(key: GpuArray, out: GpuArray, enc: Encoder = this.encoder()): void {
    if (key.dtype !== "int32" || key.length !== 2 || out.dtype !== "float32") throw new Error("webgpu randomNormal: an int32 key of 2 words into float32");
    const n = out.length;
    this.run(enc, "randomNormal", () => NORMAL_FROM_KEY, "main", [n], [key.buffer, out.buffer], this.grid(Math.ceil(n / 2)));
  }

  /** Casts float32 <-> int32 (float -> int truncates toward zero); same dtype copies. */
  cast(x: GpuArray, out: GpuArray, enc: Encoder = this.encoder()): void {
    const n = out.length;
    if (x.dtype === out.dtype) {
      this.copyElements(enc, x, 0, out, 0, n);
      return;
    }
    this.run(enc, `cast:${x.dtype}`, () => castSource(x.dtype), "main", [n], [x.buffer, out.buffer], this.grid(n));
  }

  /** out = value; zero by clearBuffer between passes, by a dispatch inside one (a clear would end the pass). */
  fill(out: GpuArray, value: number, enc: Encoder = this.encoder()): void {
    const n = out.length;
    const bits = out.dtype === "float32" ? f32Bits(value) : new Int32Array([value])[0]! >>> 0;
    if (bits === 0 && !this.passOpen(enc)) {
      this.clear(enc, out.buffer, n * 4);
      return;
    }
    this.run(enc, "fill", () => FILL, "main", [n, bits], [out.buffer], this.grid(n));
  }

  // ---- reductions -------------------------------------------------------------------------------

  /** Reduces the given axes (sorted) of x; out has x's shape with those axes set to 1. */
  reduce(op: ReduceOp, x: GpuArray, shape: Shape, axes: readonly number[], out: GpuArray, enc: Encoder = this.encoder()): void {
    if (x.dtype !== out.dtype) throw new Error(`webgpu reduce: dtypes ${x.dtype} -> ${out.dtype}`);
    this.reduceInput(op, x, shape, axes, out, enc);
  }

  /** reduce() of values that a fused float32 expression computes (shape: its shape), without storing them. */
  reduceFused(op: ReduceOp, input: FusedProgram<GpuArray>, shape: Shape, axes: readonly number[], out: GpuArray, enc: Encoder = this.encoder()): void {
    if (out.dtype !== "float32") throw new Error(`webgpu reduce: fused input is float32, output ${out.dtype}`);
    this.reduceInput(op, input, shape, axes, out, enc);
  }

  /** out[i] = the fused float32 expression at i, for i < out.length; `paramBase` is where compileExpr put its parameters. */
  fusedElementwise(program: FusedProgram<GpuArray>, out: GpuArray, enc: Encoder = this.encoder(), paramBase = FUSED_ELEMENTWISE_PARAM_BASE): void {
    if (out.dtype !== "float32") throw new Error(`webgpu fusedElementwise: float32 output only, got ${out.dtype}`);
    const n = out.length;
    const params = [n, ...new Array<number>(paramBase - 1).fill(0), ...program.params];
    const buffers = [...program.leaves.map((l) => l.buffer), out.buffer];
    this.run(enc, `fused#${this.programId(program)}`, () => fusedElementwiseSource(program), "main", params, buffers, this.grid(n));
  }

  /**
   * The fused float32 expression's n values written into a box of `out`: value i at element
   * base + floor(i / cols) * rowStride + i % cols (a concat part computed in place).
   */
  fusedElementwiseInto(program: FusedProgram<GpuArray>, n: number, out: GpuArray, box: { base: number; cols: number; rowStride: number }, enc: Encoder = this.encoder()): void {
    if (out.dtype !== "float32") throw new Error(`webgpu fusedElementwiseInto: float32 output only, got ${out.dtype}`);
    const params = [n, box.base, box.cols, box.rowStride, ...program.params];
    const buffers = [...program.leaves.map((l) => l.buffer), out.buffer];
    this.run(enc, `fused#${this.programId(program)}:box`, () => fusedElementwiseSource(program, true), "main", params, buffers, this.grid(n));
  }

  private programId(program: FusedProgram<GpuArray>): number {
    let id = this.programIds.get(program.body);
    if (id === undefined) this.programIds.set(program.body, (id = this.programIds.size));
    return id;
  }

  private reduceInput(op: ReduceOp, x: GpuArray | FusedProgram<GpuArray>, shape: Shape, axes: readonly number[], out: GpuArray, enc: Encoder): void {
    const fused = "body" in x ? x : null;
    const dtype = out.dtype;
    const length = product(shape);
    if (out.length === 0) return;
    if (length === 0) {
      // Empty reductions: 0 for sum, -Infinity for max (0 in int32, as the reference's Int32Array store).
      this.fill(out, op === "sum" || dtype === "int32" ? 0 : -Infinity, enc);
      return;
    }
    const reduced = new Set(axes);
    const strides = stridesOf(shape);
    const kept: [number, number][] = [];
    const red: [number, number][] = [];
    let lastKind: boolean | null = null;
    for (let d = 0; d < shape.length; d++) {
      const size = shape[d]!;
      if (size === 1) continue;
      const isRed = reduced.has(d);
      const list = isRed ? red : kept;
      if (lastKind === isRed) list[list.length - 1] = [list[list.length - 1]![0] * size, strides[d]!];
      else list.push([size, strides[d]!]);
      lastKind = isRed;
    }
    if (red.length === 0) {
      // (A reduction's program has its parameters at REDUCE_PARAM_BASE.)
      if (fused) this.fusedElementwise(fused, out, enc, REDUCE_PARAM_BASE);
      else this.copyElements(enc, x as GpuArray, 0, out, 0, out.length);
      return;
    }
    if (kept.length > 4 || red.length > 4) throw new Error(`webgpu reduce: too many alternating axis groups in ${JSON.stringify(shape)} over ${JSON.stringify(axes)}`);
    const outputs = product(kept.map((k) => k[0]));
    const R = product(red.map((r) => r[0]));
    const key = fused ? `reduce:${op}:fused#${this.programId(fused)}` : `reduce:${op}:${dtype}`;
    const source = (): string => reduceSource(op, dtype, fused ?? undefined);
    const inputs = fused ? fused.leaves.map((l) => l.buffer) : [(x as GpuArray).buffer];
    const extra = fused ? [0, 0, ...fused.params] : [];
    const base = [
      outputs, R, kept.length, red.length,
      ...padTo(kept.map((k) => k[0]), 4), ...padTo(kept.map((k) => k[1]), 4),
      ...padTo(red.map((r) => r[0]), 4), ...padTo(red.map((r) => r[1]), 4),
    ];
    if (outputs >= 2048 || R <= 64) {
      this.run(enc, key, source, "rows", [...base, 0, 1, ...extra], [...inputs, out.buffer], this.grid(outputs));
      return;
    }
    // Up to 16,384 values per output (64 loads per invocation) one dispatch: a second one, to sum the chunks,
    // costs a GPU more than idle lanes do (the U-Net's per-channel sums over 172 x 8 x 8 are 11,008).
    const chunks = R <= 16384 ? 1 : Math.min(this.maxGroups, Math.ceil(R / 4096));
    const chunkLen = Math.ceil(R / chunks);
    if (chunks === 1) {
      this.run(enc, key, source, "tree", [...base, chunkLen, 1, ...extra], [...inputs, out.buffer], [outputs, 1, 1]);
      return;
    }
    const partial = this.temp(dtype, outputs * chunks);
    this.run(enc, key, source, "tree", [...base, chunkLen, chunks, ...extra], [...inputs, partial.buffer], [outputs, chunks, 1]);
    this.reduce(op, partial, [outputs, chunks], [1], out, enc);
    this.release(partial);
  }

  /** Cumulative sum/product along an axis, optionally from the end (sequential per line, in float32). */
  cumulative(op: "sum" | "prod", x: GpuArray, shape: Shape, axis: number, reverse: boolean, out: GpuArray, enc: Encoder = this.encoder()): void {
    const len = shape[axis]!;
    const inner = product(shape.slice(axis + 1));
    const lines = len === 0 ? 0 : x.length / len;
    this.run(enc, `cumulative:${op}:${x.dtype}`, () => cumulativeSource(op, x.dtype), "main", [lines, len, inner, reverse ? 1 : 0], [x.buffer, out.buffer], this.grid(lines));
  }

  // ---- layer normalization ---------------------------------------------------------------------

  /** Layer normalization of `rows` rows of `cols` values (Backend.layerNorm); layerNormLanes(cols) invocations per row. */
  layerNorm(x: GpuArray, rows: number, cols: number, scale: GpuArray, bias: GpuArray, eps: number, out: GpuArray, enc: Encoder = this.encoder()): void {
    if (rows * cols === 0) return;
    const lanes = layerNormLanes(cols);
    this.run(enc, `layerNorm:${lanes}`, () => layerNormSource(lanes), "main", [rows, cols, f32Bits(eps)], [x.buffer, scale.buffer, bias.buffer, out.buffer],
      this.groups(layerNormWorkgroups(rows, lanes)));
  }

  /**
   * layerNorm into `out`, and in the same kernel out2[i] = the fused expression (compiled at
   * FUSED_ELEMENTWISE_PARAM_BASE) whose leaf `leaf` is `out`, read at element i (readsLeafAtI); its other
   * leaves are bound after the norm's buffers. Returns false, doing nothing, when it does not fit (epilogueFits).
   */
  layerNormFused(x: GpuArray, rows: number, cols: number, scale: GpuArray, bias: GpuArray, eps: number, out: GpuArray,
    program: FusedProgram<GpuArray>, leaf: number, out2: GpuArray, enc: Encoder = this.encoder()): boolean {
    const others = program.leaves.filter((_, k) => k !== leaf);
    if (rows * cols === 0 || !this.epilogueFits(program, leaf, out, out2, 5 + others.length, 64 - FUSED_ELEMENTWISE_PARAM_BASE)) return false;
    const params = [rows, cols, f32Bits(eps), 0, ...program.params];
    const lanes = layerNormLanes(cols);
    const source = () => layerNormSource(lanes, { declarations: fusedEpilogueDeclarations(program, leaf, "Out", 5), out2Binding: 5 + others.length });
    this.run(enc, `layerNorm:${lanes}+fused#${this.programId(program)}@${leaf}`, source, "main", params,
      [x.buffer, scale.buffer, bias.buffer, out.buffer, ...others.map((o) => o.buffer), out2.buffer], this.groups(layerNormWorkgroups(rows, lanes)));
    return true;
  }

  /**
   * The input gradient of layerNorm for the output cotangent g (Backend.layerNormGradX); g may be a fused
   * program (parameters from FUSED_ELEMENTWISE_PARAM_BASE) evaluated where the kernel loads it.
   */
  layerNormGradX(x: GpuArray, g: GpuArray | FusedProgram<GpuArray>, rows: number, cols: number, scale: GpuArray, eps: number, out: GpuArray, enc: Encoder = this.encoder()): void {
    this.normGradient(enc, "layerNormGradX", layerNormGradXSource, x, g, [scale], rows, cols, eps, out);
  }

  /** The x-gradient of layerNormGradX for its cotangent h (Backend.layerNormGradXGradX); g as layerNormGradX's. */
  layerNormGradXGradX(x: GpuArray, g: GpuArray | FusedProgram<GpuArray>, h: GpuArray, rows: number, cols: number, scale: GpuArray, eps: number, out: GpuArray, enc: Encoder = this.encoder()): void {
    this.normGradient(enc, "layerNormGradXGradX", layerNormGradXGradXSource, x, g, [h, scale], rows, cols, eps, out);
  }

  /**
   * A layer-norm gradient kernel (shaders/norm.ts, gradientKernelBindings): x, then g (a buffer, or a fused
   * program whose leaves are bound first), `others`, the output.
   */
  private normGradient(enc: Encoder, kernel: string, source: (lanes: number, gradient: FusedProgram<GpuArray> | null) => string, x: GpuArray,
    g: GpuArray | FusedProgram<GpuArray>, others: readonly GpuArray[], rows: number, cols: number, eps: number, out: GpuArray): void {
    if (rows * cols === 0) return;
    const lanes = layerNormLanes(cols);
    const groups = this.groups(layerNormWorkgroups(rows, lanes));
    const params = [rows, cols, f32Bits(eps)];
    const rest = [...others.map((o) => o.buffer), out.buffer];
    if (!("body" in g)) {
      this.run(enc, `${kernel}:${lanes}`, () => source(lanes, null), "main", params, [x.buffer, g.buffer, ...rest], groups);
      return;
    }
    if (g.leaves.length + 1 + rest.length > this.maxStorageBuffers) throw new Error(`webgpu ${kernel}: a gradient program of ${g.leaves.length} leaves does not fit`);
    this.run(enc, `${kernel}:${lanes}:fused#${this.programId(g)}`, () => source(lanes, g), "main", [...params, 0, ...g.params],
      [...g.leaves.map((l) => l.buffer), x.buffer, ...rest], groups);
  }

  // ---- products -----------------------------------------------------------------------------------

  /**
   * The fused AdamW update (Backend.adamw, adamwMany) of each item: as many items per dispatch as the storage
   * buffers allow (seven each and the step's values: one with 8, two with 16), items of similar size together;
   * under 8 buffers (compatibility mode) four dispatches of at most four per item (m, v, the update direction
   * into outP, then p from it in place). The step's [norm, lr, bc1, bc2] are read from `scalars` on the device.
   */
  adamw(items: readonly AdamWItem<GpuArray>[], scalars: GpuArray, a: AdamWArgs, enc: Encoder = this.encoder()): void {
    if (items.some((it) => it.p.dtype !== "float32")) throw new Error("webgpu adamw: float32 parameters only");
    const clip = a.elementClip ?? 0;
    const params = [
      0, a.elementClip === null ? 0 : 1, f32Bits(-clip), f32Bits(clip), a.maxNorm === null ? 0 : 1, f32Bits(a.maxNorm ?? 0),
      f32Bits(1 - a.b1), f32Bits(a.b1), f32Bits(1 - a.b2), f32Bits(a.b2), f32Bits(a.eps), a.weightDecay === 0 ? 0 : 1, f32Bits(a.weightDecay),
    ];
    const live = items.filter((it) => it.p.length > 0).sort((x, y) => y.p.length - x.p.length);
    const perKernel = Math.min(8, Math.floor((this.maxStorageBuffers - 1) / 7));
    for (let i = 0; perKernel >= 1 && i < live.length; i += perKernel) {
      const group = live.slice(i, i + perKernel);
      const [x, z] = this.groups(Math.ceil(group[0]!.p.length / 256)); // the longest first: it sizes the grid
      const buffers = group.flatMap((it) => [it.g, it.m, it.v, it.p, it.outM, it.outV, it.outP].map((b) => b.buffer));
      this.run(enc, `adamw:${group.length}`, () => adamwSource(group.length), "main", [...params, 0, 0, 0, ...group.map((it) => it.p.length)],
        [...buffers, scalars.buffer], [x, group.length, z]);
    }
    if (perKernel >= 1) return;
    for (const { p, g, m, v, outP, outM, outV } of live) {
      const words = [p.length, ...params.slice(1)];
      const grid = this.grid(p.length);
      this.run(enc, "adamwM", () => ADAMW_M, "main", words, [g.buffer, m.buffer, scalars.buffer, outM.buffer], grid);
      this.run(enc, "adamwV", () => ADAMW_V, "main", words, [g.buffer, v.buffer, scalars.buffer, outV.buffer], grid);
      this.run(enc, "adamwDirection", () => ADAMW_DIRECTION, "main", words, [outM.buffer, outV.buffer, scalars.buffer, outP.buffer], grid);
      this.run(enc, "adamwP", () => ADAMW_P, "main", words, [p.buffer, scalars.buffer, outP.buffer], grid);
    }
  }

  /**
   * out[0] = the sum of the squares of every element of `arrays`, each clipped to [-clip, clip] first unless
   * clip is null (Backend.sumSquares): one kernel per up to 15 arrays (as the device's storage buffers allow)
   * writing partial sums, up to 64 workgroups per array, then one sum of the partials.
   */
  sumSquares(arrays: readonly GpuArray[], clip: number | null, out: GpuArray, enc: Encoder = this.encoder()): void {
    const perKernel = Math.max(1, Math.min(15, this.maxStorageBuffers - 1));
    const groups: GpuArray[][] = [];
    for (let i = 0; i < arrays.length; i += perKernel) groups.push(arrays.slice(i, i + perKernel));
    // Workgroups per array in each kernel: one per 4,096 elements of its longest array, 1 to 64.
    const chunks = groups.map((group) => Math.min(64, Math.max(1, Math.ceil(Math.max(...group.map((a) => a.length)) / 4096))));
    const total = groups.reduce((n, group, g) => n + group.length * chunks[g]!, 0);
    if (total === 0) {
      this.fill(out, 0, enc);
      return;
    }
    const partial = this.temp("float32", total);
    let offset = 0;
    groups.forEach((group, g) => {
      const params = [group.length, clip === null ? 0 : 1, f32Bits(-(clip ?? 0)), f32Bits(clip ?? 0), chunks[g]!, offset, ...group.map((a) => a.length)];
      this.run(enc, `sumSquares:${group.length}`, () => sumSquaresSource(group.length), "main", params, [...group.map((a) => a.buffer), partial.buffer], [chunks[g]!, group.length, 1]);
      offset += group.length * chunks[g]!;
    });
    this.reduce("sum", partial, [total], [0], out, enc);
    this.release(partial);
  }

  /** How many K splits for a product with `tiles` output tiles. */
  private splitsFor(tiles: number, k: number): number {
    if (tiles >= this.splitKMinWorkgroups) return 1;
    return Math.max(1, Math.min(64, Math.ceil((2 * this.splitKMinWorkgroups) / tiles), Math.floor(k / this.splitKMinLength)));
  }

  /**
   * The tiling of a product: 128x32 tiles when it is at most 32 wide, else gemmRows x 16 by 64; with the
   * option smallTiles, 32x32 tiles when those give fewer than splitKMinWorkgroups tiles (and `smallOk`).
   */
  private tilingFor(m: number, n: number, batch: number, smallOk: boolean): GemmTiling {
    const tiling: GemmTiling = n <= 32 ? { rows: 4, threadsN: 8, threads: 256 } : { rows: this.gemmRows, threadsN: 16, threads: 256 };
    const tile = tileSize(tiling);
    const tiles = Math.ceil(m / tile.m) * Math.ceil(n / tile.n) * batch;
    return smallOk && this.smallTiles && tiles < this.splitKMinWorkgroups ? SMALL_TILING : tiling;
  }

  /**
   * One GEMM kernel (split-K when few tiles: partial tiles, then their sum); `params(kLen)` gives its
   * parameter words; `smallOk`: its loaders take small tiles (see shaders/gemm.ts). With `epilogue` (see
   * GemmEpilogue) the last kernel also runs the expression; returns false, having done nothing, when it
   * cannot (more than 32 splits, too many buffers or parameter words).
   */
  private gemm(enc: Encoder, kernel: GemmKernel, smallOk: boolean, m: number, n: number, k: number, batch: number, a: GPUBuffer, b: GPUBuffer, out: GpuArray,
    params: (kLen: number) => number[], epilogue?: GemmEpilogue): boolean {
    const tiling = this.tilingFor(m, n, batch, smallOk);
    const shape = tiling.threads === 64 ? ":s32" : `${tiling.rows === 4 ? "" : `:r${tiling.rows}`}${tiling.threadsN === 16 ? "" : ":n32"}`;
    const key = `${kernel}${shape}`;
    const source = () => GEMM_SOURCES[kernel](tiling); // built only when its pipeline is first made
    const tile = tileSize(tiling);
    const tilesM = Math.ceil(m / tile.m);
    const tilesN = Math.ceil(n / tile.n);
    let splits = this.splitsFor(tilesM * tilesN * batch, k);
    const kLen = Math.ceil(Math.ceil(k / splits) / 16) * 16;
    splits = Math.ceil(k / kLen);
    if (batch * splits > this.maxGroups) throw new Error(`webgpu ${key}: batch ${batch} x ${splits} splits exceeds ${this.maxGroups} workgroups`);
    // With an epilogue, the product's kernel (unsplit) or the sum of its split-K partials (up to 32) carries it.
    const fused = epilogue ? this.epilogueDispatch(epilogue, out, splits) : null;
    if (epilogue && !fused) return false;
    if (splits === 1) {
      if (fused) {
        const withEpilogue = () => gemmWithEpilogue(source(), { declarations: fusedEpilogueDeclarations(fused.program, fused.leaf, "C", 4), out2Binding: 4 + fused.others.length });
        this.run(enc, `${key}+${fused.id}`, withEpilogue, "main", fused.words(params(kLen)), [a, b, out.buffer, ...fused.others, fused.out2], [tilesN, tilesM, batch]);
      } else {
        this.run(enc, key, source, "main", params(kLen), [a, b, out.buffer], [tilesN, tilesM, batch]);
      }
      return true;
    }
    const partial = this.temp("float32", splits * batch * m * n);
    this.run(enc, key, source, "main", params(kLen), [a, b, partial.buffer], [tilesN, tilesM, batch * splits]);
    if (fused) {
      const sum = () => splitKSumWithEpilogue({ declarations: fusedEpilogueDeclarations(fused.program, fused.leaf, "Out", 3), out2Binding: 3 + fused.others.length });
      this.run(enc, `splitKSum+${fused.id}`, sum, "main", fused.words([batch * m * n, splits]), [partial.buffer, out.buffer, ...fused.others, fused.out2], this.grid(batch * m * n));
    } else {
      this.reduce("sum", partial, [splits, batch * m * n], [0], out, enc);
    }
    this.release(partial);
    return true;
  }

  /** What a GEMM's epilogue dispatch needs (its other leaves' buffers, parameter words, key), or null if it does not fit. */
  private epilogueDispatch(epilogue: GemmEpilogue, out: GpuArray, splits: number) {
    const { program, leaf, out2 } = epilogue;
    const others = program.leaves.filter((_, i) => i !== leaf).map((o) => o.buffer);
    const buffers = (splits === 1 ? 4 : 3) + others.length;
    if (splits > 32 || !this.epilogueFits(program, leaf, out, out2, buffers, GEMM_EPILOGUE_PARAM_BASE - FUSED_ELEMENTWISE_PARAM_BASE)) return null;
    /** The expression's words from FUSED_ELEMENTWISE_PARAM_BASE, the kernel's own from GEMM_EPILOGUE_PARAM_BASE. */
    const words = (own: number[]): number[] => {
      const w = [...new Array<number>(FUSED_ELEMENTWISE_PARAM_BASE).fill(0), ...program.params];
      while (w.length < GEMM_EPILOGUE_PARAM_BASE) w.push(0);
      return [...w, ...own];
    };
    return { program, leaf, others, out2: out2.buffer, words, id: `fused#${this.programId(program)}@${leaf}` };
  }

  /**
   * Whether an expression can be the epilogue of a kernel writing `out`: it reads `out` (leaf `leaf`) element
   * by element over out2's size, its buffers fit (`buffers` storage buffers in all), and its parameter words
   * fit below the kernel's (`paramWords` from FUSED_ELEMENTWISE_PARAM_BASE).
   */
  epilogueFits(program: FusedProgram<GpuArray>, leaf: number, out: GpuArray, out2: GpuArray, buffers: number, paramWords: number): boolean {
    return program.leaves[leaf] === out && out2.length === out.length && readsLeafAtI(program, leaf) &&
      buffers <= this.maxStorageBuffers && program.params.length <= paramWords;
  }

  /**
   * C[b] = op(A[b]) @ op(B[b]) with the Backend's MatmulArgs (batch strides 0 broadcast); B starts at element
   * `bBase` of its buffer (a contiguous slice of it, read in place). With `epilogue`, also its expression in
   * the same kernel, if the product is not split (else returns false, doing nothing).
   */
  matmul(a: GpuArray, b: GpuArray, out: GpuArray, args: MatmulArgs, enc: Encoder = this.encoder(), epilogue?: GemmEpilogue, bBase = 0): boolean {
    const { batch, m, n, k, transA, transB, aBatchStride, bBatchStride } = args;
    if (epilogue && (batch * m * n === 0 || k === 0)) return false;
    if (batch * m * n === 0) return true;
    if (k === 0) {
      this.fill(out, 0, enc);
      return true;
    }
    return this.gemm(enc, "matmul", true, m, n, k, batch, a.buffer, b.buffer, out, (kLen) => [
      m, n, k, transA ? 1 : 0, transB ? 1 : 0, aBatchStride, bBatchStride, batch, kLen, bBase,
    ], epilogue);
  }

  /**
   * NHWC x [b,h,w,c] with HWIO kernel [kh,kw,c,o], stride 1, zero padding: implicit GEMM. A 1x1 kernel
   * without padding (a matmul) may start at element `kernelBase` of its buffer (a slice read in place).
   */
  conv2d(x: GpuArray, kernel: GpuArray, out: GpuArray, args: ConvArgs, enc: Encoder = this.encoder(), epilogue?: GemmEpilogue, kernelBase = 0): boolean {
    return this.convolve(x, kernel, false, out, args, enc, epilogue, kernelBase);
  }

  /**
   * conv2d(x, flipKernel(source)) without computing the flip: `source` is [kh, kw, o, c] for these args
   * (the forward kernel whose input gradient this is) and is read rotated and transposed; a 1x1 one may
   * start at element `sourceBase` of its buffer, as conv2d's kernelBase.
   */
  conv2dFlipped(x: GpuArray, source: GpuArray, out: GpuArray, args: ConvArgs, enc: Encoder = this.encoder(), epilogue?: GemmEpilogue, sourceBase = 0): boolean {
    return this.convolve(x, source, true, out, args, enc, epilogue, sourceBase);
  }

  /** Returns false (nothing done) when an epilogue was asked for and cannot be had (see gemm). */
  private convolve(x: GpuArray, kernel: GpuArray, flipped: boolean, out: GpuArray, args: ConvArgs, enc: Encoder, epilogue?: GemmEpilogue, kernelBase = 0): boolean {
    const { b, h, w, c, kh, kw, o, pad, oh, ow } = args;
    const matmul = kh === 1 && kw === 1 && pad === 0;
    if (kernelBase !== 0 && !matmul) throw new Error("webgpu conv2d: a kernel offset needs a 1x1 kernel without padding");
    if (matmul) {
      // A 1x1 flip is a transpose: the source as [o, c] is B^T.
      const product = { batch: 1, m: b * h * w, n: o, k: c, transA: false, transB: flipped, aBatchStride: 0, bBatchStride: 0 };
      return this.matmul(x, kernel, out, product, enc, epilogue, kernelBase);
    }
    const M = b * oh * ow;
    const K = kh * kw * c;
    if (M * o === 0 || K === 0) return !epilogue;
    // The flipped B loader counts one row of B per invocation: 256-invocation tiles only.
    return this.gemm(enc, "conv2d", !flipped, M, o, K, 1, x.buffer, kernel.buffer, out, (kLen) => [M, o, K, h, w, c, kw, pad, oh, ow, kLen, flipped ? 1 : 0], epilogue);
  }

  /**
   * out[kh,kw,c,o] = sum over b,i,j of xpad[b,i+di,j+dj,c] * g[b,i,j,o]: implicit im2col^T @ g. Returns false
   * (nothing done) when an epilogue was asked for and cannot be had (see gemm).
   */
  conv2dKernelGrad(x: GpuArray, g: GpuArray, out: GpuArray, args: ConvArgs, enc: Encoder = this.encoder(), epilogue?: GemmEpilogue): boolean {
    const { b, h, w, c, kh, kw, o, pad, oh, ow } = args;
    if (kh === 1 && kw === 1 && pad === 0) {
      return this.matmul(x, g, out, { batch: 1, m: c, n: o, k: b * h * w, transA: true, transB: false, aBatchStride: 0, bBatchStride: 0 }, enc, epilogue);
    }
    const M = kh * kw * c;
    const K = b * oh * ow;
    if (M * o === 0 || (K === 0 && epilogue)) return !epilogue;
    if (K === 0) {
      this.fill(out, 0, enc);
      return true;
    }
    return this.gemm(enc, "conv2dKernelGrad", false, M, o, K, 1, x.buffer, g.buffer, out, (kLen) => [M, o, K, h, w, c, kw, pad, oh, ow, kLen], epilogue);
  }

  // ---- data movement ------------------------------------------------------------------------------

  transpose(x: GpuArray, shape: Shape, perm: readonly number[], out: GpuArray, enc: Encoder = this.encoder()): void {
    const n = out.length;
    if (n === 0) return;
    const inStrides = stridesOf(shape);
    const c = coalesce(perm.map((p) => shape[p]!), [perm.map((p) => inStrides[p]!)]);
    if (c.sizes.length <= 1 && (c.sizes.length === 0 || c.strides[0]![0] === 1)) {
      this.copyElements(enc, x, 0, out, 0, n);
      return;
    }
    checkRank("transpose", c.sizes.length);
    this.run(enc, "transpose", () => TRANSPOSE, "main", [n, c.sizes.length, 0, 0, ...padTo(c.sizes, 8), ...padTo(c.strides[0]!, 8)], [x.buffer, out.buffer], this.grid(n));
  }

  /** Copies a box of `size` from src (at srcBegin) into dst (at dstBegin); equal ranks; src and dst distinct. */
  copyBox(src: GpuArray, srcShape: Shape, srcBegin: readonly number[], dst: GpuArray, dstShape: Shape, dstBegin: readonly number[], size: Shape, enc: Encoder = this.encoder()): void {
    const total = product(size);
    if (total === 0) return;
    const ss = stridesOf(srcShape);
    const ds = stridesOf(dstShape);
    const srcBase = srcBegin.reduce((acc, v, i) => acc + v * ss[i]!, 0);
    const dstBase = dstBegin.reduce((acc, v, i) => acc + v * ds[i]!, 0);
    const c = coalesce(size, [ss, ds]);
    const rank = c.sizes.length;
    if (rank === 0 || (rank === 1 && c.strides[0]![0] === 1 && c.strides[1]![0] === 1)) {
      this.copyElements(enc, src, srcBase, dst, dstBase, total);
      return;
    }
    checkRank("copyBox", rank);
    const params = [total, rank, srcBase, dstBase, ...padTo(c.sizes, 8), ...padTo(c.strides[0]!, 8), ...padTo(c.strides[1]!, 8)];
    this.run(enc, "copyBox", () => COPY_BOX, "main", params, [src.buffer, dst.buffer], this.grid(total));
  }

  /** out (outShape) = zeros with x (xShape) at `begin` (Backend.padInto): one kernel, no clear. */
  padInto(x: GpuArray, xShape: Shape, out: GpuArray, outShape: Shape, begin: readonly number[], enc: Encoder = this.encoder()): void {
    const n = out.length;
    if (n === 0) return;
    checkRank("padInto", outShape.length);
    const params = [n, outShape.length, 0, 0, ...padTo(outShape, 8), ...padTo(begin, 8), ...padTo(xShape, 8)];
    this.run(enc, "padInto", () => PAD_INTO, "main", params, [x.buffer, out.buffer], this.grid(n));
  }

  /**
   * dst[dstBase ..] = src[srcBase ..], `count` elements: by copyBufferToBuffer between passes, by a
   * dispatch inside one (a copy would end the pass).
   */
  private copyElements(enc: Encoder, src: GpuArray, srcBase: number, dst: GpuArray, dstBase: number, count: number): void {
    if (!this.passOpen(enc)) {
      this.copy(enc, src.buffer, srcBase * 4, dst.buffer, dstBase * 4, count * 4);
      return;
    }
    const params = [count, 1, srcBase, dstBase, ...padTo([count], 8), ...padTo([1], 8), ...padTo([1], 8)];
    this.run(enc, "copyBox", () => COPY_BOX, "main", params, [src.buffer, dst.buffer], this.grid(count));
  }

  /** out[i] = x[index[i]]. */
  gather(x: GpuArray, index: GpuArray, out: GpuArray, enc: Encoder = this.encoder()): void {
    const n = out.length;
    this.run(enc, "gather", () => GATHER, "main", [n], [x.buffer, index.buffer, out.buffer], this.grid(n));
  }

  /**
   * out = 0; out[index[i]] += g[i]. With `unique` (the caller knows no index repeats: maxPool argmax,
   * flipKernel) it is a plain scatter; otherwise an inverse index is built on the GPU (count, scan,
   * fill) and each output sums its inputs (see shaders/scatter.ts).
   */
  scatterAdd(g: GpuArray, index: GpuArray, out: GpuArray, options: { unique?: boolean } = {}, enc: Encoder = this.encoder()): void {
    const outputs = out.length;
    const n = g.length;
    this.fill(out, 0, enc);
    if (n === 0 || outputs === 0) return;
    if (options.unique) {
      this.run(enc, "scatterUnique", () => SCATTER_UNIQUE, "main", [n], [g.buffer, index.buffer, out.buffer], this.grid(n));
      return;
    }
    const offsets = this.temp("int32", outputs + 1);
    this.fill(offsets, 0, enc);
    this.run(enc, "scatterCount", () => SCATTER_COUNT, "main", [n, outputs], [index.buffer, offsets.buffer], this.grid(n));
    this.scanExclusive(enc, offsets.buffer, outputs + 1);
    const cursor = this.temp("int32", outputs);
    this.fill(cursor, 0, enc);
    const perm = this.temp("int32", n);
    this.run(enc, "scatterFill", () => SCATTER_FILL, "main", [n, outputs], [index.buffer, offsets.buffer, cursor.buffer, perm.buffer], this.grid(n));
    this.scatterSum(enc, g, perm.buffer, offsets.buffer, out);
    for (const t of [offsets, cursor, perm]) this.release(t);
  }

  /** An inverse index built on the CPU for an index known there (upload once, reuse every step). */
  planScatter(index: Int32Array, outputs: number): ScatterPlan {
    const counts = new Int32Array(outputs + 1);
    for (let i = 0; i < index.length; i++) {
      const j = index[i]!;
      if (j < 0 || j >= outputs) throw new Error(`webgpu planScatter: index ${j} out of range [0, ${outputs})`);
      counts[j + 1]!++;
    }
    for (let j = 0; j < outputs; j++) counts[j + 1]! += counts[j]!;
    const cursor = counts.slice(0, outputs);
    const perm = new Int32Array(index.length);
    for (let i = 0; i < index.length; i++) perm[cursor[index[i]!]!++] = i;
    return { offsets: this.upload(counts), perm: this.upload(perm), inputs: index.length, outputs };
  }

  releasePlan(plan: ScatterPlan): void {
    this.release(plan.offsets);
    this.release(plan.perm);
  }

  /** scatterAdd with an inverse index from planScatter(): one dispatch. */
  scatterAddPlanned(g: GpuArray, plan: ScatterPlan, out: GpuArray, enc: Encoder = this.encoder()): void {
    if (g.length !== plan.inputs || out.length !== plan.outputs) throw new Error(`webgpu scatterAddPlanned: plan is for ${plan.inputs} -> ${plan.outputs}, got ${g.length} -> ${out.length}`);
    if (out.length === 0) return;
    this.scatterSum(enc, g, plan.perm.buffer, plan.offsets.buffer, out);
  }

  private scatterSum(enc: Encoder, g: GpuArray, perm: GPUBuffer, offsets: GPUBuffer, out: GpuArray): void {
    this.run(enc, `scatterSum:${g.dtype}`, () => scatterSumSource(g.dtype), "main", [out.length], [g.buffer, perm, offsets, out.buffer], this.grid(out.length));
  }

  /** Exclusive prefix sum of n u32 in place: blocks of 1024, block totals scanned recursively. */
  private scanExclusive(enc: Encoder, data: GPUBuffer, n: number): void {
    const blocks = Math.ceil(n / 1024);
    const sums = this.temp("int32", blocks);
    this.run(enc, "scan", () => SCAN, "scanBlocks", [n], [data, sums.buffer], this.groups(blocks));
    if (blocks > 1) {
      this.scanExclusive(enc, sums.buffer, blocks);
      this.run(enc, "scan", () => SCAN, "addBlockOffsets", [n], [data, sums.buffer], this.grid(n));
    }
    this.release(sums);
  }

  /** 2x2 stride-2 max pool, 'SAME' padding, NHWC; flat argmax indices into x. */
  maxPool2x2(x: GpuArray, shape: Shape, out: GpuArray, argmax: GpuArray, enc: Encoder = this.encoder()): void {
    const [, h, w, c] = shape as [number, number, number, number];
    const n = out.length;
    const params = [n, h, w, c, Math.ceil(h / 2), Math.ceil(w / 2)];
    this.run(enc, "maxPool2x2", () => MAX_POOL_2X2, "main", params, [x.buffer, out.buffer, argmax.buffer], this.grid(n));
  }

  // ---- kernels the frontend builds from index arrays today (so a step needs no CPU-made indices) --------

  /** [kh,kw,c,o] -> [kh,kw,o,c] rotated 180 degrees (ops/conv.ts flipKernel); its own adjoint. */
  flipKernel(kernel: GpuArray, shape: Shape, out: GpuArray, enc: Encoder = this.encoder()): void {
    const [kh, kw, c, o] = shape as [number, number, number, number];
    const n = out.length;
    this.run(enc, "flipKernel", () => FLIP_KERNEL, "main", [n, kh * kw, c, o], [kernel.buffer, out.buffer], this.grid(n));
  }

  /** Nearest-neighbour resize of NHWC x [b,h,w,c] to [b,height,width,c] (ops/nn.ts upsampleNearest). */
  upsampleNearest(x: GpuArray, shape: Shape, height: number, width: number, out: GpuArray, enc: Encoder = this.encoder()): void {
    const [b, , , c] = shape as [number, number, number, number];
    this.upsampleNearestInto(x, shape, height, width, out, [b, height, width, c], [0, 0, 0, 0], enc);
  }

  /** upsampleNearest written into the box of NHWC dst [B,H,W,C] at dstBegin (as copyBox would copy it there). */
  upsampleNearestInto(x: GpuArray, shape: Shape, height: number, width: number, dst: GpuArray, dstShape: Shape, dstBegin: readonly number[],
    enc: Encoder = this.encoder()): void {
    const [b, h, w, c] = shape as [number, number, number, number];
    const [, H, W, C] = dstShape as [number, number, number, number];
    const base = ((dstBegin[0]! * H + dstBegin[1]!) * W + dstBegin[2]!) * C + dstBegin[3]!;
    const n = b * height * width * c;
    this.run(enc, "upsampleNearest", () => UPSAMPLE_NEAREST, "main", [n, h, w, c, height, width, base, H * W * C, W * C, C], [x.buffer, dst.buffer], this.grid(n));
  }

  /** The adjoint of upsampleNearest: g [b,height,width,c] summed back onto [b,h,w,c] (`shape`), gather-style. */
  upsampleNearestGrad(g: GpuArray, shape: Shape, height: number, width: number, out: GpuArray, enc: Encoder = this.encoder()): void {
    const [, h, w, c] = shape as [number, number, number, number];
    const n = out.length;
    this.run(enc, "upsampleNearestGrad", () => UPSAMPLE_NEAREST_GRAD, "main", [n, h, w, c, height, width], [g.buffer, out.buffer], this.grid(n));
  }
}
