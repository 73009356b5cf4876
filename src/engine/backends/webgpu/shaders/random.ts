// WGSL of random.normalFromKey: the host's normalArray (engine/threefry.ts) on the GPU. The threefry words
// are the host's bit for bit (u32 arithmetic); the float steps run in f32 with the error kept near float32
// rounding of the host's float64 result:
// - r = sqrt(-2 log(1 - u1)): for u1 <= 1/2 through log1p(-u1) = 2 atanh(s), s = -u1 / (2 - u1) (no
//   cancellation where 1 - u1 is close to 1); else log of 1 - u1 formed exactly from the integer bits;
// - theta = 2 pi u2 = q pi/2 + y: the quarter turn q and the rest u2 - q/4 are taken from the integer bits
//   (exact), so y carries no rounding of a large angle; then the sin/cos polynomials of MATH.
import { COMMON } from "./common.ts";
import { MATH } from "./elementwise.ts";

/** P(0) = n. Binding 1: the key (2 u32 words), binding 2: out (n f32). One invocation per pair of outputs. */
export const NORMAL_FROM_KEY = /* wgsl */ `${COMMON}${MATH}
@group(0) @binding(1) var<storage, read> Key: array<u32>;
@group(0) @binding(2) var<storage, read_write> Out: array<f32>;

fn rotl(x: u32, r: u32) -> u32 { return (x << r) | (x >> (32u - r)); }

// Threefry-2x32, 20 rounds (random.threefry2x32).
fn threefry(k0: u32, k1: u32, c0: u32, c1: u32) -> vec2<u32> {
  var ks = array<u32, 3>(k0, k1, k0 ^ k1 ^ 0x1bd11bdau);
  var rot = array<u32, 8>(13u, 15u, 26u, 6u, 17u, 29u, 16u, 24u);
  var x0 = c0 + k0;
  var x1 = c1 + k1;
  for (var block = 0u; block < 5u; block++) {
    for (var r = 0u; r < 4u; r++) {
      x0 = x0 + x1;
      x1 = rotl(x1, rot[(block % 2u) * 4u + r]) ^ x0;
    }
    let s = block + 1u;
    x0 = x0 + ks[s % 3u];
    x1 = x1 + ks[(s + 1u) % 3u] + s;
  }
  return vec2<u32>(x0, x1);
}

// 2 log1p(x) / 2 = atanh series of s = x / (2 + x), |s| <= 1/3 for x in [-1/2, 0].
fn log1pSmall(x: f32) -> f32 {
  let s = x / (2.0 + x);
  let z = s * s;
  let series = 1.0 + z * (1.0 / 3.0 + z * (1.0 / 5.0 + z * (1.0 / 7.0 + z * (1.0 / 9.0 + z * (1.0 / 11.0 + z * (1.0 / 13.0 + z * (1.0 / 15.0)))))));
  return 2.0 * s * series;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let pair = flatId(wid, nwg, lid);
  let n = P(0);
  if (2u * pair >= n) { return; }
  // Uniform m = (a >> 5) 2^-27 + (b >> 6) 2^-53 from threefry(key, m, 0x5bd1e995): m = 2 pair, 2 pair + 1.
  let w1 = threefry(Key[0], Key[1], 2u * pair, 0x5bd1e995u);
  let w2 = threefry(Key[0], Key[1], 2u * pair + 1u, 0x5bd1e995u);
  let a1 = w1.x >> 5u;
  let b1 = w1.y >> 6u;
  var minusLog: f32;
  if (a1 <= 0x4000000u) {
    // u1 <= 1/2 (up to the low bits): -log(1 - u1) = -log1p(-u1).
    let u1 = f32(a1) * 7.450580596923828e-9 + f32(b1) * 1.1102230246251565e-16;
    minusLog = -log1pSmall(-u1);
  } else {
    // 1 - u1 = (2^27 - 1 - a) 2^-27 + (2^26 - b) 2^-53, both integers exact.
    let v = f32(0x7ffffffu - a1) * 7.450580596923828e-9 + f32(0x4000000u - b1) * 1.1102230246251565e-16;
    minusLog = -log(v);
  }
  let r = sqrt(2.0 * minusLog);
  let a2 = w2.x >> 5u;
  let b2 = w2.y >> 6u;
  // u2 = a2 2^-27 + ...: the nearest quarter q = round(4 u2), rest = u2 - q/4 in [-1/8, 1/8].
  let q = (a2 + 0x1000000u) >> 25u;
  let rest = f32(i32(a2) - i32(q << 25u)) * 7.450580596923828e-9 + f32(b2) * 1.1102230246251565e-16;
  let y = rest * 6.283185307179586;
  let s = sinPoly(y);
  let c = cosPoly(y);
  // cos(q pi/2 + y), sin(q pi/2 + y) by quadrant (q = 4 is a full turn).
  var cosTheta: f32;
  var sinTheta: f32;
  switch (q & 3u) {
    case 0u: { cosTheta = c; sinTheta = s; }
    case 1u: { cosTheta = -s; sinTheta = c; }
    case 2u: { cosTheta = -c; sinTheta = -s; }
    default: { cosTheta = s; sinTheta = -c; }
  }
  Out[2u * pair] = r * cosTheta;
  if (2u * pair + 1u < n) { Out[2u * pair + 1u] = r * sinTheta; }
}
`;
