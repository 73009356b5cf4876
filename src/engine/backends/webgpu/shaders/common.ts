// WGSL shared by every kernel module: the parameter block and the flat-index helper.
//
// Each dispatch gets 64 u32 words of parameters (256 bytes, one uniform-buffer slot at the minimum
// offset alignment); kernels read them as P(i) (u32) or Pf(i) (f32 bits). Storage buffers follow at
// bindings 1, 2, ... in the order the host passes them. Elementwise kernels run 256-wide workgroups
// spread over x and y (at most 65535 workgroups per dimension), so flatId() numbers invocations 0..n-1.

export const WORKGROUP = 256;
export const PARAM_WORDS = 64;

export const COMMON = /* wgsl */ `
struct Params { v: array<vec4<u32>, 16> }
@group(0) @binding(0) var<uniform> params: Params;

fn P(i: u32) -> u32 { return params.v[i >> 2u][i & 3u]; }
fn Pf(i: u32) -> f32 { return bitcast<f32>(P(i)); }

fn flatId(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.y * nwg.x + wid.x) * 256u + lid;
}

// Non-finite constants must not be WGSL const-expressions: build them from a runtime value.
fn runtimeF32(bits: u32) -> f32 { return bitcast<f32>(bits | (P(0) & 0u)); }
fn negInf() -> f32 { return runtimeF32(0xff800000u); }
fn nan() -> f32 { return runtimeF32(0x7fc00000u); }
// WGSL lets compilers assume floats are never NaN (lavapipe folds v != v to false), so NaN is tested on the bits.
fn isNanF32(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }
`;

/** The element type alias a kernel is instantiated for. */
export function typeAlias(dtype: "float32" | "int32"): string {
  return dtype === "float32"
    ? "alias T = f32;\nfn isNan(v: T) -> bool { return isNanF32(v); }\n"
    : "alias T = i32;\nfn isNan(v: T) -> bool { return false; }\n";
}

const bitsScratch = new Float32Array(1);
const bitsView = new Uint32Array(bitsScratch.buffer);
/** The bits of v rounded to f32, for a parameter word (read back with Pf). */
export function f32Bits(v: number): number {
  bitsScratch[0] = v;
  return bitsView[0]!;
}
