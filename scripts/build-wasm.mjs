// Builds the Wasm kernels of the WasmBackend: generates the GEMM microkernels (AssemblyScript),
// compiles src/engine/backends/wasm/assembly/index.ts with the npm `assemblyscript` compiler (no native
// toolchain) and writes kernels.wasm plus kernels-wasm.ts (the same bytes as base64, so the backend loads
// them in Node and browsers without a file read). Run with `npm run build:wasm`; the outputs are committed.
// `--check` writes nothing and exits 1 when a committed output differs from what the sources build to.
import { writeFileSync, mkdirSync, readFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import asc from "assemblyscript/asc";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const check = process.argv.includes("--check");
/** Generated and built files: written, or (with --check) compared with what is there. */
const outputs = new Map();
const stale = [];
function emit(path, contents) {
  outputs.set(path, contents);
  if (check) {
    const have = existsSync(path) ? readFileSync(path) : null;
    if (!have || !Buffer.from(contents).equals(have)) stale.push(path);
  } else writeFileSync(path, contents);
}
const dir = join(root, "src/engine/backends/wasm");
const assembly = join(dir, "assembly");

// ---- microkernels -----------------------------------------------------------------------------
// A is packed in panels of 4 rows ([k][4] floats), B in panels of 8 columns ([k][8] floats).
// micro4x8: lanes along N, 8 f32x4 accumulators (V8 keeps them all in xmm registers; larger tiles spill).
// microT<R>x<C>: lanes along M (R/4 A panels), for narrow N (C <= 4 columns of a B panel).
function micro4x8() {
  const L = [];
  L.push("/** C[4x8] (=|+=) Apanel[kc][4] * Bpanel[kc][8]; ldc in bytes. */");
  L.push("export function micro4x8(a: usize, b: usize, kc: i32, c: usize, ldc: usize, acc: i32): void {");
  for (let i = 0; i < 4; i++) for (let j = 0; j < 2; j++) L.push(`  let c${i}${j} = f32x4.splat(0);`);
  L.push("  for (let p = 0; p < kc; p++) {");
  L.push("    const b0 = v128.load(b);");
  L.push("    const b1 = v128.load(b, 16);");
  for (let i = 0; i < 4; i++) {
    L.push(`    const a${i} = v128.load32_splat(a, ${i * 4});`);
    for (let j = 0; j < 2; j++) L.push(`    c${i}${j} = f32x4.add(c${i}${j}, f32x4.mul(a${i}, b${j}));`);
  }
  L.push("    a += 16;");
  L.push("    b += 32;");
  L.push("  }");
  L.push("  if (acc) {");
  for (let i = 0; i < 4; i++) for (let j = 0; j < 2; j++) L.push(`    c${i}${j} = f32x4.add(c${i}${j}, v128.load(c + ${i} * ldc, ${j * 16}));`);
  L.push("  }");
  for (let i = 0; i < 4; i++) for (let j = 0; j < 2; j++) L.push(`  v128.store(c + ${i} * ldc, c${i}${j}, ${j * 16});`);
  L.push("}");
  return L.join("\n");
}

/** Like micro4x8 but A is 4 rows of kc floats, rs bytes apart (row-major panels: no transposes to pack). */
function micro4x8r() {
  const L = [];
  L.push("/** C[4x8] (=|+=) A rows (a, a+rs, a+2rs, a+3rs; kc floats each) * Bpanel[kc][8]; ldc in bytes. */");
  L.push("export function micro4x8r(a: usize, rs: usize, b: usize, kc: i32, c: usize, ldc: usize, acc: i32): void {");
  L.push("  let a0p = a, a1p = a + rs, a2p = a + 2 * rs, a3p = a + 3 * rs;");
  for (let i = 0; i < 4; i++) for (let j = 0; j < 2; j++) L.push(`  let c${i}${j} = f32x4.splat(0);`);
  L.push("  for (let p = 0; p < kc; p++) {");
  L.push("    const b0 = v128.load(b);");
  L.push("    const b1 = v128.load(b, 16);");
  for (let i = 0; i < 4; i++) {
    L.push(`    const a${i} = v128.load32_splat(a${i}p);`);
    for (let j = 0; j < 2; j++) L.push(`    c${i}${j} = f32x4.add(c${i}${j}, f32x4.mul(a${i}, b${j}));`);
  }
  L.push("    a0p += 4; a1p += 4; a2p += 4; a3p += 4;");
  L.push("    b += 32;");
  L.push("  }");
  L.push("  if (acc) {");
  for (let i = 0; i < 4; i++) for (let j = 0; j < 2; j++) L.push(`    c${i}${j} = f32x4.add(c${i}${j}, v128.load(c + ${i} * ldc, ${j * 16}));`);
  L.push("  }");
  for (let i = 0; i < 4; i++) for (let j = 0; j < 2; j++) L.push(`  v128.store(c + ${i} * ldc, c${i}${j}, ${j * 16});`);
  L.push("}");
  return L.join("\n");
}

function microT(panels, cols) {
  const rows = panels * 4;
  const L = [];
  L.push(`/** C[${rows}x${cols}] (=|+=) ${panels} A panels (stride ps bytes) * first ${cols} column(s) of a B panel; stores rows < mr, cols < nr. */`);
  L.push(`export function microT${rows}x${cols}(a: usize, ps: usize, b: usize, kc: i32, c: usize, ldc: usize, acc: i32, mr: i32, nr: i32): void {`);
  for (let i = 0; i < panels; i++) L.push(`  let a${i}p = a + ${i} * ps;`);
  for (let i = 0; i < panels; i++) for (let j = 0; j < cols; j++) L.push(`  let c${i}${j} = f32x4.splat(0);`);
  L.push("  for (let p = 0; p < kc; p++) {");
  for (let i = 0; i < panels; i++) L.push(`    const a${i} = v128.load(a${i}p);`);
  for (let j = 0; j < cols; j++) {
    L.push(`    const b${j} = v128.load32_splat(b, ${j * 4});`);
    for (let i = 0; i < panels; i++) L.push(`    c${i}${j} = f32x4.add(c${i}${j}, f32x4.mul(a${i}, b${j}));`);
  }
  for (let i = 0; i < panels; i++) L.push(`    a${i}p += 16;`);
  L.push("    b += 32;");
  L.push("  }");
  for (let i = 0; i < panels; i++)
    for (let l = 0; l < 4; l++) {
      const r = i * 4 + l;
      L.push(`  if (${r} < mr) {`);
      L.push(`    const row = c + ${r} * ldc;`);
      for (let j = 0; j < cols; j++) {
        const cond = j === 0 ? "" : `if (${j} < nr) `;
        L.push(`    ${cond}store<f32>(row, (acc ? load<f32>(row, ${j * 4}) : 0) + f32x4.extract_lane(c${i}${j}, ${l}), ${j * 4});`);
      }
      L.push("  }");
    }
  L.push("}");
  return L.join("\n");
}

const micro = [
  "// @ts-nocheck",
  "// GENERATED by scripts/build-wasm.mjs: GEMM microkernels (AssemblyScript). Do not edit.",
  "",
  micro4x8(),
  "",
  micro4x8r(),
  "",
  microT(2, 4),
  "",
  microT(4, 1),
  "",
].join("\n");
emit(join(assembly, "micro.ts"), micro);

// ---- elementwise ops --------------------------------------------------------------------------
// One loop per op (the op is a compile-time constant inside it), for contiguous segments. Binary segments
// take per-operand strides 1 (a vector) or 0 (a broadcast scalar). Codes must match BINARY_OPS/UNARY_OPS
// in ../index.ts.
const BINARY = [
  ["add", "f32x4.add(va, vb)", "sa + sb"],
  ["sub", "f32x4.sub(va, vb)", "sa - sb"],
  ["mul", "f32x4.mul(va, vb)", "sa * sb"],
  ["div", "f32x4.div(va, vb)", "sa / sb"],
  // The reference's maximum/minimum: NaN when either is NaN (a when a is NaN, else b), as jnp.maximum.
  ["maximum", "v128.bitselect(va, vb, v128.and(v128.or(f32x4.ge(va, vb), f32x4.ne(va, va)), f32x4.eq(vb, vb)))", "(sa >= sb || sa != sa) && sb == sb ? sa : sb"],
  ["minimum", "v128.bitselect(va, vb, v128.and(v128.or(f32x4.le(va, vb), f32x4.ne(va, va)), f32x4.eq(vb, vb)))", "(sa <= sb || sa != sa) && sb == sb ? sa : sb"],
  ["less", "v128.and(f32x4.lt(va, vb), ONE)", "<f32>(sa < sb ? 1 : 0)"],
  ["lessEqual", "v128.and(f32x4.le(va, vb), ONE)", "<f32>(sa <= sb ? 1 : 0)"],
  ["greater", "v128.and(f32x4.gt(va, vb), ONE)", "<f32>(sa > sb ? 1 : 0)"],
  ["greaterEqual", "v128.and(f32x4.ge(va, vb), ONE)", "<f32>(sa >= sb ? 1 : 0)"],
  ["equal", "v128.and(f32x4.eq(va, vb), ONE)", "<f32>(sa == sb ? 1 : 0)"],
];
const UNARY = [
  ["neg", "f32x4.neg(vx)"],
  ["exp", "exp4(vx, k)"],
  ["log", "log4(vx, k)"],
  ["sqrt", "f32x4.sqrt(vx)"],
  ["rsqrt", "rsqrt4(vx)"],
  ["tanh", "tanh4(vx, k)"],
  ["abs", "f32x4.abs(vx)"],
  ["sign", "sign4(vx, k)"],
  ["square", "f32x4.mul(vx, vx)"],
  ["reciprocal", "f32x4.div(ONE, vx)"],
  ["step", "v128.and(f32x4.gt(vx, v128.load32_splat(k, 172)), ONE)"],
];

function binaryLoop(name, vexpr, sexpr) {
  // rows x inner outputs (contiguous); row r reads a at r*aos (+ i if ais) and b at r*bos (+ i if bis).
  const L = [];
  L.push(`function bin_${name}(a: usize, b: usize, o: usize, rows: i32, inner: i32, aos: i32, ais: i32, bos: i32, bis: i32): void {`);
  L.push("  const ONE = f32x4.splat(1);");
  L.push("  const ras = <usize>aos << 2, rbs = <usize>bos << 2, ros = <usize>inner << 2;");
  const body = (prelude, va, vb, sa, sb) => {
    L.push("    for (let r = 0; r < rows; r++) {");
    for (const line of prelude) L.push(`      ${line}`);
    L.push("      let i = 0;");
    L.push("      for (; i + 8 <= inner; i += 8) {");
    L.push("        const off = <usize>i << 2;");
    L.push(`        { const va = ${va(0)}; const vb = ${vb(0)}; v128.store(o + off, ${vexpr}); }`);
    L.push(`        { const va = ${va(16)}; const vb = ${vb(16)}; v128.store(o + off, ${vexpr}, 16); }`);
    L.push("      }");
    L.push("      for (; i + 4 <= inner; i += 4) {");
    L.push("        const off = <usize>i << 2;");
    L.push(`        const va = ${va(0)}; const vb = ${vb(0)}; v128.store(o + off, ${vexpr});`);
    L.push("      }");
    L.push("      for (; i < inner; i++) {");
    L.push("        const off = <usize>i << 2;");
    L.push(`        const sa: f32 = ${sa}; const sb: f32 = ${sb}; store<f32>(o + off, ${sexpr});`);
    L.push("      }");
    L.push("      a += ras; b += rbs; o += ros;");
    L.push("    }");
  };
  const ld = (p) => (d) => `v128.load(${p} + off${d ? ", " + d : ""})`;
  L.push("  if (ais && bis) {");
  body([], ld("a"), ld("b"), "load<f32>(a + off)", "load<f32>(b + off)");
  L.push("  } else if (ais) {");
  body(["const vbs = v128.load32_splat(b); const sbs = load<f32>(b);"], ld("a"), () => "vbs", "load<f32>(a + off)", "sbs");
  L.push("  } else if (bis) {");
  body(["const vas = v128.load32_splat(a); const sas = load<f32>(a);"], () => "vas", ld("b"), "sas", "load<f32>(b + off)");
  L.push("  } else {");
  body(["const sa0 = load<f32>(a); const sb0 = load<f32>(b); const vas = f32x4.splat(sa0); const vbs = f32x4.splat(sb0);"], () => "vas", () => "vbs", "sa0", "sb0");
  L.push("  }");
  L.push("}");
  return L.join("\n");
}

function unaryLoop(name, vexpr) {
  return [
    `function un_${name}(x: usize, o: usize, n: i32, k: usize): void {`,
    "  const ONE = v128.load32_splat(k, 48);",
    "  let i = 0;",
    "  for (; i + 4 <= n; i += 4) {",
    "    const off = <usize>i << 2;",
    "    const vx = v128.load(x + off);",
    `    v128.store(o + off, ${vexpr});`,
    "  }",
    "  if (i < n) {",
    "    const off = <usize>i << 2;",
    "    const vx = loadPartial(x + off, n - i);",
    `    storePartial(o + off, ${vexpr}, n - i);`,
    "  }",
    "}",
  ].join("\n");
}

// Two files (each op's loop is written out, ~80 lines per binary op): binary-ops.ts and unary-ops.ts.
const binaryOps = [
  "// @ts-nocheck",
  "// GENERATED by scripts/build-wasm.mjs: binary elementwise loops, one per op (AssemblyScript). Do not edit.",
  "",
  ...BINARY.map(([n, v, s]) => binaryLoop(n, v, s) + "\n"),
  "/** out[r][i] = a[r*aos + i*ais] op b[r*bos + i*bis], r < rows, i < inner (ais, bis: 0 or 1). */",
  "export function binary2d(op: i32, a: usize, b: usize, o: usize, rows: i32, inner: i32, aos: i32, ais: i32, bos: i32, bis: i32): void {",
  "  switch (op) {",
  ...BINARY.map(([n], i) => `    case ${i}: bin_${n}(a, b, o, rows, inner, aos, ais, bos, bis); break;`),
  "  }",
  "}",
  "",
].join("\n");
emit(join(assembly, "binary-ops.ts"), binaryOps);

const unaryOps = [
  "// @ts-nocheck",
  "// GENERATED by scripts/build-wasm.mjs: unary elementwise loops, one per op (AssemblyScript). Do not edit.",
  'import { exp4, log4, tanh4, rsqrt4, sign4, loadPartial, storePartial } from "./math";',
  "",
  ...UNARY.map(([n, v]) => unaryLoop(n, v) + "\n"),
  "/** out[i] = op(x[i]), i < n; k: the constants table (math.ts). */",
  "export function unarySeg(op: i32, x: usize, o: usize, n: i32, k: usize): void {",
  "  switch (op) {",
  ...UNARY.map(([n], i) => `    case ${i}: un_${n}(x, o, n, k); break;`),
  "  }",
  "}",
  "",
].join("\n");
emit(join(assembly, "unary-ops.ts"), unaryOps);


// ---- compile ----------------------------------------------------------------------------------
mkdirSync(dir, { recursive: true });
let wasm = null;
let wat = null;
const stderr = [];
const { error } = await asc.main(
  [
    join(assembly, "index.ts"),
    "--outFile", "kernels.wasm",
    "--textFile", "kernels.wat",
    "-O3", "--noAssert",
    "--runtime", "stub",
    "--importMemory", "--sharedMemory",
    "--initialMemory", "1", "--maximumMemory", "65536",
    "--enable", "simd,threads",
    "--use", "abort=",
    "--disableWarning", "112", // v128 parameters of internal helpers (never exported from the module)
  ],
  {
    stdout: { write: (s) => process.stdout.write(s) },
    stderr: { write: (s) => { stderr.push(String(s)); process.stderr.write(s); } },
    // Generated sources come from memory, so --check compiles what it generated, not the files on disk.
    readFile: (name, baseDir) => {
      const path = join(baseDir, name);
      if (outputs.has(path)) return outputs.get(path);
      return existsSync(path) ? readFileSync(path, "utf8") : null;
    },
    writeFile: (name, contents) => {
      if (name.endsWith(".wasm")) wasm = contents;
      else if (name.endsWith(".wat")) wat = contents;
    },
  },
);
if (error) {
  console.error(`build-wasm: ${error.message}`);
  process.exit(1);
}
if (!wasm) throw new Error("build-wasm: the compiler wrote no binary");
// Sanity: no data segments or start function may clash between the instances that share the memory.
if (/\(data |\(start /.test(String(wat))) console.warn("build-wasm: warning: the module has data segments or a start function");
emit(join(dir, "kernels.wasm"), wasm);
// `node scripts/build-wasm.mjs --wat FILE` also writes the text format, for reading the generated code.
const watAt = process.argv.indexOf("--wat");
if (watAt > 0 && process.argv[watAt + 1]) writeFileSync(process.argv[watAt + 1], String(wat));
const b64 = Buffer.from(wasm).toString("base64");
const lines = b64.match(/.{1,120}/g) ?? [];
emit(
  join(dir, "kernels-wasm.ts"),
  [
    "// GENERATED by scripts/build-wasm.mjs from ./assembly (npm run build:wasm). Do not edit.",
    `/** kernels.wasm (${wasm.length} bytes), base64. */`,
    "export const KERNELS_WASM_BASE64 =",
    lines.map((l) => `  "${l}"`).join(" +\n") + ";",
    "",
  ].join("\n"),
);
if (check) {
  if (stale.length) {
    console.error(`build-wasm --check: out of date (run npm run build:wasm): ${stale.join(", ")}`);
    process.exit(1);
  }
  console.log(`build-wasm --check: kernels.wasm (${wasm.length} bytes) and the generated sources are up to date`);
} else console.log(`build-wasm: kernels.wasm ${wasm.length} bytes`);
