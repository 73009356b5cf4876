// WGSL of scatterAdd. WGSL has no float atomics, so out[j] = sum of g[i] over index[i] == j is computed
// gather-style from an inverse index in CSR form: offsets[j]..offsets[j+1] are the slots of output j in
// perm, and perm[slot] = i. The inverse index is built on the GPU (count with u32 atomics, exclusive scan,
// fill with per-output atomic cursors) or on the CPU when the index is known there (the engine's flipKernel
// and upsample indices are); outputs sum their inputs in increasing i whenever they have <= 16 of them
// (every use in the engine: maxPool argmax 1, nearest-upsample adjoint 4, flipKernel 1), so results are
// deterministic and independent of the atomics' order there.
import { COMMON, typeAlias } from "./common.ts";

/** counts[index[i]] += 1 (counts cleared first). P(0) = n inputs, P(1) = outputs. */
export const SCATTER_COUNT = /* wgsl */ `${COMMON}
@group(0) @binding(1) var<storage, read> Index: array<i32>;
@group(0) @binding(2) var<storage, read_write> Counts: array<atomic<u32>>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatId(wid, nwg, lid);
  if (i >= P(0)) { return; }
  let j = u32(Index[i]);
  if (j < P(1)) { atomicAdd(&Counts[j], 1u); }
}
`;

/**
 * Exclusive scan, in place, of blocks of 1024 u32 (256 invocations x 4); each block's total goes to
 * Sums[block]. P(0) = n. `addBlockOffsets` then adds the scanned block totals: Data[i] += Sums[i / 1024].
 */
export const SCAN = /* wgsl */ `${COMMON}
@group(0) @binding(1) var<storage, read_write> Data: array<u32>;
@group(0) @binding(2) var<storage, read_write> Sums: array<u32>;

var<workgroup> partial: array<u32, 256>;

@compute @workgroup_size(256)
fn scanBlocks(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let n = P(0);
  let block = wid.y * nwg.x + wid.x;
  let base = block * 1024u + t * 4u;
  var v: array<u32, 4>;
  var own = 0u;
  for (var k = 0u; k < 4u; k++) {
    let idx = base + k;
    if (idx < n) { v[k] = Data[idx]; } else { v[k] = 0u; }
    own += v[k];
  }
  partial[t] = own;
  workgroupBarrier();
  // Hillis-Steele inclusive scan of the 256 per-invocation totals.
  for (var off = 1u; off < 256u; off <<= 1u) {
    var add = 0u;
    if (t >= off) { add = partial[t - off]; }
    workgroupBarrier();
    partial[t] += add;
    workgroupBarrier();
  }
  var run = partial[t] - own;
  for (var k = 0u; k < 4u; k++) {
    let idx = base + k;
    if (idx < n) { Data[idx] = run; }
    run += v[k];
  }
  if (t == 255u) { Sums[block] = partial[255]; }
}

@compute @workgroup_size(256)
fn addBlockOffsets(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatId(wid, nwg, lid);
  if (i < P(0)) { Data[i] += Sums[i / 1024u]; }
}
`;

/** perm[offsets[j] + cursor[j]++] = i for j = index[i] (cursor cleared first). P(0) = n inputs, P(1) = outputs. */
export const SCATTER_FILL = /* wgsl */ `${COMMON}
@group(0) @binding(1) var<storage, read> Index: array<i32>;
@group(0) @binding(2) var<storage, read> Offsets: array<u32>;
@group(0) @binding(3) var<storage, read_write> Cursor: array<atomic<u32>>;
@group(0) @binding(4) var<storage, read_write> Perm: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatId(wid, nwg, lid);
  if (i >= P(0)) { return; }
  let j = u32(Index[i]);
  if (j < P(1)) {
    Perm[Offsets[j] + atomicAdd(&Cursor[j], 1u)] = i;
  }
}
`;

/** out[j] = sum of g[perm[s]] for s in [offsets[j], offsets[j+1]); in increasing i for <= 16 terms. P(0) = outputs. */
export function scatterSumSource(dtype: "float32" | "int32"): string {
  return `${typeAlias(dtype)}${COMMON}
@group(0) @binding(1) var<storage, read> G: array<T>;
@group(0) @binding(2) var<storage, read> Perm: array<u32>;
@group(0) @binding(3) var<storage, read> Offsets: array<u32>;
@group(0) @binding(4) var<storage, read_write> Out: array<T>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let j = flatId(wid, nwg, lid);
  if (j >= P(0)) { return; }
  let s = Offsets[j];
  let e = Offsets[j + 1u];
  var acc = T(0);
  if (e - s <= 16u) {
    var started = false;
    var prev = 0u;
    for (var r = s; r < e; r++) {
      var best = 0xffffffffu;
      for (var q = s; q < e; q++) {
        let i = Perm[q];
        if ((!started || i > prev) && i < best) { best = i; }
      }
      acc += G[best];
      prev = best;
      started = true;
    }
  } else {
    for (var q = s; q < e; q++) { acc += G[Perm[q]]; }
  }
  Out[j] = acc;
}
`;
}

/** out[index[i]] = g[i] for an index without repeats (out cleared first). P(0) = n. */
export const SCATTER_UNIQUE = /* wgsl */ `${COMMON}
@group(0) @binding(1) var<storage, read> G: array<u32>;
@group(0) @binding(2) var<storage, read> Index: array<i32>;
@group(0) @binding(3) var<storage, read_write> Out: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatId(wid, nwg, lid);
  if (i < P(0)) { Out[u32(Index[i])] = G[i]; }
}
`;
