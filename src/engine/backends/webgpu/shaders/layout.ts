// WGSL of the data-movement family: transpose, copyBox, gather, fill, cast, maxPool2x2.
// Values are moved as raw 32-bit words (float32 and int32 alike).
import { COMMON } from "./common.ts";

/** P(0) = n, P(1) = rank, P(4..11) = out shape, P(12..19) = input strides of the out axes. */
export const TRANSPOSE = /* wgsl */ `${COMMON}
@group(0) @binding(1) var<storage, read> X: array<u32>;
@group(0) @binding(2) var<storage, read_write> Out: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatId(wid, nwg, lid);
  if (i >= P(0)) { return; }
  var rem = i;
  var src = 0u;
  for (var d = P(1); d > 0u; d--) {
    let k = d - 1u;
    let size = P(4u + k);
    src += (rem % size) * P(12u + k);
    rem = rem / size;
  }
  Out[i] = X[src];
}
`;

/** P(0) = n (box elements), P(1) = rank, P(2) = src base, P(3) = dst base, P(4..11) = box size, P(12..19) = src strides, P(20..27) = dst strides. */
export const COPY_BOX = /* wgsl */ `${COMMON}
@group(0) @binding(1) var<storage, read> Src: array<u32>;
@group(0) @binding(2) var<storage, read_write> Dst: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatId(wid, nwg, lid);
  if (i >= P(0)) { return; }
  var rem = i;
  var s = P(2);
  var d = P(3);
  for (var a = P(1); a > 0u; a--) {
    let k = a - 1u;
    let size = P(4u + k);
    let idx = rem % size;
    rem = rem / size;
    s += idx * P(12u + k);
    d += idx * P(20u + k);
  }
  Dst[d] = Src[s];
}
`;

/**
 * Dst = zeros with Src placed in a box (padInto): P(0) = n outputs, P(1) = rank, P(4 + a) = the output's
 * size on axis a, P(12 + a) = the box's begin, P(20 + a) = its size (Src's shape, contiguous).
 */
export const PAD_INTO = /* wgsl */ `${COMMON}
@group(0) @binding(1) var<storage, read> Src: array<u32>;
@group(0) @binding(2) var<storage, read_write> Dst: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatId(wid, nwg, lid);
  if (i >= P(0)) { return; }
  var rem = i;
  var s = 0u;
  var stride = 1u;
  var inside = true;
  for (var a = P(1); a > 0u; a--) {
    let k = a - 1u;
    let idx = rem % P(4u + k);
    rem = rem / P(4u + k);
    let begin = P(12u + k);
    let size = P(20u + k);
    inside = inside && idx >= begin && idx < begin + size;
    s += (idx - begin) * stride; // (wraps outside the box, where it is not read)
    stride *= size;
  }
  var v = 0u;
  if (inside) { v = Src[s]; }
  Dst[i] = v;
}
`;

/** out[i] = x[index[i]]. P(0) = n. */
export const GATHER = /* wgsl */ `${COMMON}
@group(0) @binding(1) var<storage, read> X: array<u32>;
@group(0) @binding(2) var<storage, read> Index: array<i32>;
@group(0) @binding(3) var<storage, read_write> Out: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatId(wid, nwg, lid);
  if (i < P(0)) { Out[i] = X[u32(Index[i])]; }
}
`;

/** out[i] = bits. P(0) = n, P(1) = the value's 32 bits. */
export const FILL = /* wgsl */ `${COMMON}
@group(0) @binding(1) var<storage, read_write> Out: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatId(wid, nwg, lid);
  if (i < P(0)) { Out[i] = P(1); }
}
`;

/** float32 <-> int32 (float -> int truncates toward zero; WGSL saturates out-of-range values). P(0) = n. */
export function castSource(from: "float32" | "int32"): string {
  const [src, dst, conv] = from === "float32" ? ["f32", "i32", "i32(X[i])"] : ["i32", "f32", "f32(X[i])"];
  return `${COMMON}
@group(0) @binding(1) var<storage, read> X: array<${src}>;
@group(0) @binding(2) var<storage, read_write> Out: array<${dst}>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatId(wid, nwg, lid);
  if (i < P(0)) { Out[i] = ${conv}; }
}
`;
}

/**
 * 2x2 stride-2 max pool on NHWC with 'SAME' padding (windows clipped at the bottom/right edge), one
 * invocation per output; the first maximum wins, NaN wins. P(0) = n outputs, P(1) = h, P(2) = w, P(3) = c,
 * P(4) = output height, P(5) = output width.
 */
export const MAX_POOL_2X2 = /* wgsl */ `${COMMON}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Out: array<f32>;
@group(0) @binding(3) var<storage, read_write> Argmax: array<i32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let o = flatId(wid, nwg, lid);
  if (o >= P(0)) { return; }
  let h = P(1);
  let w = P(2);
  let c = P(3);
  let oh = P(4);
  let ow = P(5);
  let q = o % c;
  let j = (o / c) % ow;
  let i = (o / (c * ow)) % oh;
  let n = o / (c * ow * oh);
  var best = negInf();
  var at = -1;
  for (var di = 0u; di < 2u; di++) {
    let y = 2u * i + di;
    if (y >= h) { continue; }
    for (var dj = 0u; dj < 2u; dj++) {
      let x = 2u * j + dj;
      if (x >= w) { continue; }
      let k = ((n * h + y) * w + x) * c + q;
      let v = X[k];
      if (at < 0 || isNanF32(v) || (!isNanF32(best) && v > best)) {
        best = v;
        at = i32(k);
      }
    }
  }
  Out[o] = best;
  Argmax[o] = at;
}
`;

/**
 * flipKernel: [kh, kw, c, o] -> [kh, kw, o, c] rotated 180 degrees (the input gradient's kernel): output tap
 * t holds the transposed [c, o] block of tap taps-1-t. P(0) = n, P(1) = taps (kh * kw), P(2) = c, P(3) = o.
 */
export const FLIP_KERNEL = /* wgsl */ `${COMMON}
@group(0) @binding(1) var<storage, read> K: array<u32>;
@group(0) @binding(2) var<storage, read_write> Out: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let e = flatId(wid, nwg, lid);
  if (e >= P(0)) { return; }
  let c = P(2);
  let o = P(3);
  let block = c * o;
  let tap = e / block;
  let q = (e % block) / c;
  let p = e % c;
  Out[e] = K[(P(1) - 1u - tap) * block + p * o + q];
}
`;

/**
 * Nearest-neighbour resize of NHWC maps, src = floor((i + 0.5) * in / out) as jax.image.resize (in integers:
 * ((2i + 1) * in) / (2 * out)). P(0) = n outputs, P(1) = h, P(2) = w, P(3) = c, P(4) = height, P(5) = width;
 * output (n, i, j, q) goes to Out[P(6) + n * P(7) + i * P(8) + j * P(9) + q]: a map of its own, or a box
 * of a larger NHWC array (a concat along channels writes the upsampled part in place).
 */
export const UPSAMPLE_NEAREST = /* wgsl */ `${COMMON}
@group(0) @binding(1) var<storage, read> X: array<u32>;
@group(0) @binding(2) var<storage, read_write> Out: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let e = flatId(wid, nwg, lid);
  if (e >= P(0)) { return; }
  let h = P(1);
  let w = P(2);
  let c = P(3);
  let height = P(4);
  let width = P(5);
  let q = e % c;
  let j = (e / c) % width;
  let i = (e / (c * width)) % height;
  let n = e / (c * width * height);
  let si = ((2u * i + 1u) * h) / (2u * height);
  let sj = ((2u * j + 1u) * w) / (2u * width);
  Out[P(6) + n * P(7) + i * P(8) + j * P(9) + q] = X[((n * h + si) * w + sj) * c + q];
}
`;

/**
 * The adjoint of UPSAMPLE_NEAREST, gather-style: each input pixel sums the output pixels that copied it (the
 * rows i and columns j whose source is it), in increasing (i, j), the order of a scatter-add over the outputs.
 * P(0) = n inputs, P(1) = h, P(2) = w, P(3) = c, P(4) = height, P(5) = width.
 */
export const UPSAMPLE_NEAREST_GRAD = /* wgsl */ `${COMMON}
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read_write> Out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let e = flatId(wid, nwg, lid);
  if (e >= P(0)) { return; }
  let h = P(1);
  let w = P(2);
  let c = P(3);
  let height = P(4);
  let width = P(5);
  let q = e % c;
  let sj = (e / c) % w;
  let si = (e / (c * w)) % h;
  let n = e / (c * w * h);
  // The first output row that can map to si: floor(si * height / h) - 1 (clamped), then scan while <= si.
  let iStart = max(i32(si * height / h) - 1, 0);
  let jStart = max(i32(sj * width / w) - 1, 0);
  var acc = 0.0;
  for (var i = u32(iStart); i < height; i++) {
    let fi = ((2u * i + 1u) * h) / (2u * height);
    if (fi > si) { break; }
    if (fi < si) { continue; }
    for (var j = u32(jStart); j < width; j++) {
      let fj = ((2u * j + 1u) * w) / (2u * width);
      if (fj > sj) { break; }
      if (fj == sj) { acc += G[((n * height + i) * width + j) * c + q]; }
    }
  }
  Out[e] = acc;
}
`;
