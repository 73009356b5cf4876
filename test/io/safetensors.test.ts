import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { decodeSafetensors, encodeSafetensors, type SafetensorsTensor } from "../../src/io/safetensors.ts";
import { rng } from "../helpers/random.ts";

const fixture = (name: string) => new Uint8Array(readFileSync(new URL(`../../fixtures/${name}`, import.meta.url)));

/** Builds a file by hand from a header object and raw data bytes (for malformed inputs). */
function build(header: unknown, data: Uint8Array = new Uint8Array(0), headerText?: string): Uint8Array {
  const h = new TextEncoder().encode(headerText ?? JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setUint32(0, h.length, true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function small(): Uint8Array {
  return encodeSafetensors({
    w: { dtype: "F32", shape: [2, 3], data: new Float32Array([1, -2, 3.5, 0, -0, 1e-30]) },
    a: { dtype: "F64", shape: [], data: new Float64Array([Math.PI]) },
    idx: { dtype: "I32", shape: [3], data: new Int32Array([-1, 0, 2147483647]) },
  }, { note: "hi", layout: "NHWC" });
}

test("exact bytes of a small file", () => {
  const bytes = encodeSafetensors(
    { b: { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) }, a: { dtype: "F64", shape: [], data: new Float64Array([0.5]) } },
    { k: "v" },
  );
  const header = '{"a":{"dtype":"F64","shape":[],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},"__metadata__":{"k":"v"}}';
  const padded = header + " ".repeat((8 - (header.length % 8)) % 8);
  const expected = new Uint8Array(8 + padded.length + 16);
  const dv = new DataView(expected.buffer);
  dv.setUint32(0, padded.length, true);
  expected.set(new TextEncoder().encode(padded), 8);
  dv.setFloat64(8 + padded.length, 0.5, true);
  dv.setFloat32(8 + padded.length + 8, 1, true);
  dv.setFloat32(8 + padded.length + 12, 2, true);
  assert.deepEqual(bytes, expected);
  assert.equal((8 + padded.length) % 8, 0);
});

test("round trip keeps dtype, shape, values (incl. -0 and NaN), metadata", () => {
  const nan = new Float32Array([NaN, -0, Infinity]);
  const src: Record<string, SafetensorsTensor> = {
    z: { dtype: "F32", shape: [3], data: nan },
    y: { dtype: "F64", shape: [1, 2], data: new Float64Array([1 / 3, -1e300]) },
    x: { dtype: "I32", shape: [0], data: new Int32Array(0) },
    "odd.f32": { dtype: "F32", shape: [1], data: new Float32Array([7]) },
  };
  const { tensors, metadata } = decodeSafetensors(encodeSafetensors(src, { a: "1", "ü": "ẞ" }));
  assert.deepEqual(metadata, { a: "1", "ü": "ẞ" });
  assert.deepEqual([...tensors.keys()].sort(), Object.keys(src).sort());
  for (const [name, t] of Object.entries(src)) {
    const got = tensors.get(name)!;
    assert.equal(got.dtype, t.dtype);
    assert.deepEqual(got.shape, t.shape);
    assert.equal(got.data.constructor, t.data.constructor);
    assert.deepEqual([...got.data].map((v) => Object.is(v, -0) ? "-0" : v), [...t.data].map((v) => Object.is(v, -0) ? "-0" : v));
  }
});

test("8-byte dtypes come first so every tensor is aligned to its element size", () => {
  const bytes = encodeSafetensors({
    a: { dtype: "F32", shape: [1], data: new Float32Array([1]) },
    b: { dtype: "F64", shape: [1], data: new Float64Array([2]) },
    c: { dtype: "F64", shape: [1], data: new Float64Array([3]) },
  });
  const n = new DataView(bytes.buffer).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  assert.deepEqual(header.b.data_offsets, [0, 8]);
  assert.deepEqual(header.c.data_offsets, [8, 16]);
  assert.deepEqual(header.a.data_offsets, [16, 20]);
});

test("misaligned input is copied into aligned arrays; aligned input is a view unless copy", () => {
  const bytes = small();
  const shifted = new Uint8Array(bytes.length + 1).subarray(1);
  shifted.set(bytes);
  const got = decodeSafetensors(shifted);
  assert.equal(got.tensors.get("a")!.data[0], Math.PI);
  assert.deepEqual([...got.tensors.get("idx")!.data], [-1, 0, 2147483647]);
  const view = decodeSafetensors(bytes).tensors.get("a")!.data;
  assert.equal(view.buffer, bytes.buffer);
  const copied = decodeSafetensors(bytes, { copy: true }).tensors.get("a")!.data;
  assert.notEqual(copied.buffer, bytes.buffer);
});

test("reads fixtures/unet_f4.safetensors and re-encodes it byte for byte", () => {
  const bytes = fixture("unet_f4.safetensors");
  const { tensors, metadata } = decodeSafetensors(bytes);
  assert.equal(tensors.size, 134);
  const k = tensors.get("down_conv1.conv1.kernel")!;
  assert.equal(k.dtype, "F32");
  assert.deepEqual(k.shape, [3, 3, 1, 4]);
  assert.deepEqual([...k.data.subarray(0, 4)], [0.18653422594070435, -0.2569583058357239, 0.15678493678569794, 0.005361950956285]);
  let total = 0;
  for (const t of tensors.values()) total += t.data.length;
  assert.equal(total, 266217);
  assert.equal(metadata.param_count, "266217");
  assert.deepEqual(encodeSafetensors(Object.fromEntries(tensors), metadata), bytes);
});

test("reads fixtures/case_f4.safetensors with F64, F32 and I32 tensors", () => {
  const bytes = fixture("case_f4.safetensors");
  const { tensors, metadata } = decodeSafetensors(bytes);
  assert.equal(tensors.size, 903);
  assert.equal(metadata.layout, "NHWC/HWIO");
  assert.equal(metadata.features, "4");
  const t = tensors.get("t")!;
  assert.equal(t.dtype, "I32");
  assert.deepEqual([...t.data], [0, 10, 500, 999]);
  const f64 = tensors.get("f64.loss.total")!;
  assert.equal(f64.dtype, "F64");
  assert.deepEqual(f64.shape, []);
  assert.equal(f64.data[0], 0.8371266470611617);
  assert.equal(tensors.get("loss.total")!.data[0], Math.fround(0.837125837802887));
  assert.deepEqual(encodeSafetensors(Object.fromEntries(tensors), metadata), bytes);
});

function rejects(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(() => decodeSafetensors(bytes), (e: unknown) => {
    assert.ok(e instanceof Error && !(e instanceof RangeError), `not a plain Error: ${String(e)}`);
    assert.match(e.message, /^safetensors: /);
    assert.match(e.message, pattern);
    return true;
  });
}

test("refuses malformed files with a clear message", () => {
  const f32 = (n: number) => new Uint8Array(4 * n);
  rejects(new Uint8Array(5), /file too short/);
  const good = small();
  rejects(good.subarray(0, good.length - 4), /file truncated: header says \d+ bytes of data, found \d+/);
  const big = good.slice();
  new DataView(big.buffer).setUint32(0, 1e6, true);
  rejects(big, /header length 1000000 exceeds file size/);
  new DataView(big.buffer).setUint32(4, 1, true);
  rejects(big, /exceeds file size/);
  rejects(build(null, undefined, '{"a": [1,'), /invalid JSON header/);
  rejects(build([1, 2]), /invalid JSON header: must start with/);
  const badUtf8 = build(null, undefined, '{"\u00e9":1}');
  badUtf8[10] = 0xff;
  rejects(badUtf8, /not valid UTF-8/);
  const entry = (dtype: unknown, shape: unknown, offs: unknown) => ({ x: { dtype, shape, data_offsets: offs } });
  rejects(build(entry("BF16", [2], [0, 4]), f32(1)), /tensor 'x': unsupported dtype BF16/);
  rejects(build(entry("Q7", [2], [0, 4]), f32(1)), /unknown dtype "Q7"/);
  rejects(build(entry("F32", [2, 2], [0, 8]), f32(2)), /tensor 'x' offsets \[0,8\] do not match shape \[2,2\] and dtype F32/);
  rejects(build(entry("F32", [2, -1], [0, 8]), f32(2)), /non-negative integers/);
  rejects(build(entry("F32", [1.5], [0, 8]), f32(2)), /non-negative integers/);
  rejects(build(entry("F32", "2", [0, 8]), f32(2)), /shape must be an array/);
  rejects(build(entry("F32", [2], [8, 0]), f32(2)), /reversed/);
  rejects(build(entry("F32", [2], [0]), f32(2)), /data_offsets must be/);
  rejects(build(entry("F32", [2], ["0", "8"]), f32(2)), /data_offsets must be/);
  rejects(build(entry("F32", [2 ** 30, 2 ** 30], [0, 8]), f32(2)), /too large|do not match/);
  rejects(build(entry("F32", [2], [4, 12]), f32(2)), /out of range/);
  rejects(build({ x: 5 }), /entry must be an object/);
  rejects(build({
    a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
    b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
  }, f32(3)), /overlapping offsets: tensor '.' \[\d+,\d+\] overlaps/);
  rejects(build(entry("F32", [2], [0, 8]), f32(3)), /4 unexpected bytes after the last tensor/);
  rejects(build({ __metadata__: { a: 1 } }), /__metadata__ value 'a' must be a string/);
  rejects(build({ __metadata__: ["a"] }), /__metadata__ must be an object/);
});

test("accepts an empty file, a padded header and gaps between tensors", () => {
  assert.equal(decodeSafetensors(build(null, undefined, "{}      ")).tensors.size, 0);
  const data = new Uint8Array(12);
  new DataView(data.buffer).setFloat32(8, 2.5, true);
  const got = decodeSafetensors(build({ x: { dtype: "F32", shape: [1], data_offsets: [8, 12] } }, data));
  assert.equal(got.tensors.get("x")!.data[0], 2.5);
});

test("encode refuses inconsistent tensors", () => {
  const bad = (t: unknown) => assert.throws(() => encodeSafetensors({ t: t as SafetensorsTensor }), /^Error: safetensors: tensor 't'/);
  bad({ dtype: "F32", shape: [3], data: new Float32Array(2) });
  bad({ dtype: "F64", shape: [2], data: new Float32Array(2) });
  bad({ dtype: "BF16", shape: [2], data: new Float32Array(2) });
  bad({ dtype: "F32", shape: [-2], data: new Float32Array(2) });
  assert.throws(() => encodeSafetensors({ __metadata__: { dtype: "F32", shape: [0], data: new Float32Array(0) } }), /reserved/);
  assert.throws(() => encodeSafetensors({}, { a: 1 as unknown as string }), /metadata 'a' must be a string/);
});


function decodesOrThrowsCleanly(bytes: Uint8Array, what: string): boolean {
  try {
    const { tensors } = decodeSafetensors(bytes);
    for (const t of tensors.values()) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      assert.equal(t.data.length, n, `${what}: data length does not match shape`);
    }
    return true;
  } catch (e) {
    assert.ok(e instanceof Error && !(e instanceof RangeError) && !(e instanceof TypeError), `${what}: ${String(e)}`);
    assert.match((e as Error).message, /safetensors/, what);
    return false;
  }
}

test("fuzz: every truncation length is refused with a safetensors Error", () => {
  const bytes = small();
  for (let len = 0; len < bytes.length; len++) {
    assert.equal(decodesOrThrowsCleanly(bytes.subarray(0, len), `truncated to ${len}`), false, `truncated to ${len} decoded`);
  }
  assert.equal(decodesOrThrowsCleanly(bytes, "full"), true);
});

test("fuzz: random byte flips in the length field and header decode or throw cleanly", () => {
  const bytes = small();
  const headerEnd = 8 + new DataView(bytes.buffer).getUint32(0, true);
  const rand = rng(1234);
  let refused = 0;
  for (let i = 0; i < 3000; i++) {
    const b = bytes.slice();
    const flips = 1 + Math.floor(rand() * 3);
    for (let f = 0; f < flips; f++) b[Math.floor(rand() * headerEnd)] = Math.floor(rand() * 256);
    if (!decodesOrThrowsCleanly(b, `case ${i}`)) refused++;
  }
  assert.ok(refused > 1000, `only ${refused} corruptions were refused`);
});
