import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeNpy, encodeNpy } from "../../src/io/npy.ts";

// Expected bytes below were produced once with numpy 2.4.6 (np.save / numpy.lib.format.write_array).
const hex = (s: string) => Uint8Array.from(s.match(/../g)!.map((h) => parseInt(h, 16)));
const NUMPY_F4_2x3 = hex(
  "934e554d5059010076007b276465736372273a20273c6634272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c2033292c20" +
  "7d202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a000000000000803e0000003f0000403f0000803f0000a03f",
);
const NUMPY_I4_2 = hex(
  "934e554d5059010076007b276465736372273a20273c6934272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c292c207d20" +
  "20202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200affffffffffffff7f",
);
const NUMPY_F8_SCALAR_V2 = hex(
  "934e554d50590200740000007b276465736372273a20273c6638272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028292c207d20" +
  "20202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a0000000000000440",
);
const NUMPY_F8_SCALAR = hex(
  "934e554d5059010076007b276465736372273a20273c6638272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028292c207d202020" +
  "20202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a0000000000000440",
);
// Header text numpy writes (dict + spaces + '\n') and the total header size (magic..'\n').
const NUMPY_HEADERS: [number[], Float32Array | Float64Array | Int32Array, string, number][] = [
  [[2, 8, 8], new Float32Array(128), "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 8, 8), }", 128],
  [[3], new Float64Array(3), "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", 128],
  [[], new Int32Array(1), "{'descr': '<i4', 'fortran_order': False, 'shape': (), }", 128],
  [[0], new Float32Array(0), "{'descr': '<f4', 'fortran_order': False, 'shape': (0,), }", 128],
  [[7, 1], new Float32Array(7), "{'descr': '<f4', 'fortran_order': False, 'shape': (7, 1), }", 128],
  // 36 axes: the header is already 64-aligned before padding, and numpy then pads a full 64 bytes.
  [[3, ...Array<number>(35).fill(1)], new Float32Array(3), `{'descr': '<f4', 'fortran_order': False, 'shape': (3, ${Array(35).fill(1).join(", ")}), }`, 256],
];

const text = (b: Uint8Array) => String.fromCharCode(...b);

test("header of float32 (2, 8, 8) is byte-exact", () => {
  const bytes = encodeNpy(new Float32Array(128), [2, 8, 8]);
  assert.equal(text(bytes.subarray(0, 6)), "\x93NUMPY");
  assert.deepEqual([...bytes.subarray(6, 10)], [1, 0, 118, 0]);
  const header = text(bytes.subarray(10, 128));
  assert.equal(header, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 8, 8), }" + " ".repeat(118 - 62 - 1) + "\n");
  assert.equal(bytes.length, 128 + 128 * 4);
});

test("headers match numpy for several shapes and dtypes", () => {
  for (const [shape, data, dict, total] of NUMPY_HEADERS) {
    const bytes = encodeNpy(data, shape);
    const header = text(bytes.subarray(10, total));
    assert.equal(header.slice(0, dict.length), dict, `shape ${shape}`);
    assert.match(header.slice(dict.length), /^ +\n$/, `shape ${shape}`);
    assert.equal(bytes.length, total + data.byteLength, `shape ${shape}`);
    assert.equal(total % 64, 0);
  }
});

test("whole files are byte-identical to numpy.save", () => {
  assert.deepEqual(encodeNpy(new Float32Array([0, 0.25, 0.5, 0.75, 1, 1.25]), [2, 3]), NUMPY_F4_2x3);
  assert.deepEqual(encodeNpy(new Int32Array([-1, 2147483647]), [2]), NUMPY_I4_2);
  assert.deepEqual(encodeNpy(new Float64Array([2.5]), []), NUMPY_F8_SCALAR);
});

test("decodes numpy files (format 1.0 and 2.0)", () => {
  const a = decodeNpy(NUMPY_F4_2x3);
  assert.equal(a.dtype, "<f4");
  assert.deepEqual(a.shape, [2, 3]);
  assert.ok(a.data instanceof Float32Array);
  assert.deepEqual([...a.data], [0, 0.25, 0.5, 0.75, 1, 1.25]);
  const b = decodeNpy(NUMPY_I4_2);
  assert.ok(b.data instanceof Int32Array);
  assert.deepEqual([...b.data], [-1, 2147483647]);
  for (const f of [NUMPY_F8_SCALAR, NUMPY_F8_SCALAR_V2]) {
    const c = decodeNpy(f);
    assert.deepEqual(c.shape, []);
    assert.ok(c.data instanceof Float64Array);
    assert.deepEqual([...c.data], [2.5]);
  }
});

test("round trip, including a misaligned input buffer", () => {
  const data = new Float64Array([Math.PI, -0, NaN, 1e-310]);
  const bytes = encodeNpy(data, [2, 1, 2]);
  const shifted = new Uint8Array(bytes.length + 3).subarray(3);
  shifted.set(bytes);
  const got = decodeNpy(shifted);
  assert.deepEqual(got.shape, [2, 1, 2]);
  assert.ok(Object.is(got.data[1], -0) && Number.isNaN(got.data[2]));
  assert.deepEqual([...got.data], [...data]);
});

/** Writes a v1.0 file with an arbitrary header text (padded to 64) and data bytes. */
function npyWith(dict: string, dataBytes = 0): Uint8Array {
  const pad = 64 - ((11 + dict.length) % 64);
  const header = dict + " ".repeat(pad) + "\n";
  const out = new Uint8Array(10 + header.length + dataBytes);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  return out;
}

function rejects(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(() => decodeNpy(bytes), (e: unknown) => {
    assert.ok(e instanceof Error && !(e instanceof RangeError), String(e));
    assert.match(e.message, /^npy: /);
    assert.match(e.message, pattern);
    return true;
  });
}

test("accepts older headers: other key order, 16-byte alignment, Python 2 longs", () => {
  const got = decodeNpy(npyWith("{'shape': (2L, 1L), 'fortran_order': False, 'descr': '<i4'}", 8));
  assert.deepEqual(got.shape, [2, 1]);
  const f = decodeNpy(npyWith("{'descr': '<f4', 'fortran_order': True, 'shape': (3,), }", 12));
  assert.deepEqual(f.shape, [3]);
});

test("refuses malformed files with a clear message", () => {
  const f = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
  rejects(new Uint8Array(4), /file too short/);
  rejects(new Uint8Array(64), /bad magic/);
  const v9 = npyWith(f, 16);
  v9[6] = 9;
  rejects(v9, /unsupported format version 9.0/);
  const good = npyWith(f, 16);
  rejects(good.subarray(0, good.length - 1), /file truncated: shape \(2, 2\) of <f4 needs 16 bytes of data, found 15/);
  rejects(good.subarray(0, 70), /header length 118 exceeds file size/);
  rejects(npyWith(f, 20), /4 unexpected bytes after the data/);
  rejects(npyWith(f.replace("<f4", ">f4"), 16), /unsupported dtype '>f4'/);
  rejects(npyWith(f.replace("<f4", "<f2"), 8), /unsupported dtype '<f2'/);
  rejects(npyWith("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8), /structured/);
  rejects(npyWith(f.replace("False", "True"), 16), /fortran_order True is not supported/);
  rejects(npyWith(f.replace("(2, 2)", "(2, -2)"), 16), /non-negative integers/);
  rejects(npyWith(f.replace("(2, 2)", "[2, 'a']"), 16), /non-negative integers/);
  rejects(npyWith(f.replace("(2, 2)", "5"), 16), /shape must be a tuple/);
  rejects(npyWith(f.replace("'shape'", "'shap'"), 16), /keys must be descr, fortran_order, shape; found descr,fortran_order,shap/);
  rejects(npyWith(f + ", 'x': 1", 16), /invalid header/);
  rejects(npyWith("{'descr': '<f4', 'descr': '<f4', 'shape': (4,), }", 16), /duplicate key 'descr'/);
  rejects(npyWith("{'descr': '<f4, 'fortran_order': False, 'shape': (2,), }", 8), /invalid header/);
  rejects(npyWith("{'descr': '<f4', 'fortran_order': False, 'shape': (2,, }", 8), /invalid header/);
  rejects(npyWith("{'descr': '\u00e9', 'fortran_order': False, 'shape': (2,), }", 8), /not valid UTF-8|not ASCII/);
});

test("fuzz: every truncation length and random header bytes give a clean result or an npy Error", () => {
  const bytes = encodeNpy(new Float32Array([1, 2, 3, 4, 5, 6]), [3, 2]);
  for (let len = 0; len < bytes.length; len++) {
    assert.throws(() => decodeNpy(bytes.subarray(0, len)), (e: unknown) => e instanceof Error && /^npy: /.test(e.message));
  }
  let seed = 99;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (let i = 0; i < 3000; i++) {
    const b = bytes.slice();
    b[Math.floor(rand() * 128)] = Math.floor(rand() * 256);
    try {
      const got = decodeNpy(b);
      assert.equal(got.data.length, got.shape.reduce((x, y) => x * y, 1));
    } catch (e) {
      assert.ok(e instanceof Error && !(e instanceof RangeError) && /^npy: /.test(e.message), String(e));
    }
  }
});

test("encode refuses a shape that does not match the data", () => {
  assert.throws(() => encodeNpy(new Float32Array(5), [2, 3]), /^Error: npy: shape \(2, 3\) has 6 elements but data has 5/);
  assert.throws(() => encodeNpy(new Float32Array(2), [2.5]), /non-negative integers/);
  assert.throws(() => encodeNpy(new Uint8Array(2) as unknown as Float32Array, [2]), /must be a Float32Array/);
});
