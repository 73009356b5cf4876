// Worst-case ulp error of the Wasm exp/log/tanh against the reference (double precision, rounded).
import { CpuBackend } from "../src/engine/backends/cpu/index.ts";
import { WasmBackend } from "../src/engine/backends/wasm/index.ts";
import type { UnaryOp } from "../src/engine/backend.ts";
const w = new WasmBackend({ threads: 1 });
const cpu = new CpuBackend();
const f = new Float32Array(2), i = new Int32Array(f.buffer);
const ord = (v: number): number => (v < 0 ? -2147483648 - v : v);
for (const [op, lo, hi] of [["exp", -103, 88.7], ["log", 1e-44, 3e38], ["tanh", -12, 12], ["tanh", -0.7, 0.7], ["rsqrt", 1e-30, 1e30]] as [UnaryOp, number, number][]) {
  const n = 1_000_001;
  const x = w.alloc("float32", n);
  for (let k = 0; k < n; k++) x[k] = op === "log" || op === "rsqrt" ? lo * Math.pow(hi / lo, k / (n - 1)) : lo + ((hi - lo) * k) / (n - 1);
  const out = w.alloc("float32", n), ref = new Float32Array(n);
  w.unary(op, x, out);
  cpu.unary(op, x, ref);
  let worst = 0, at = 0;
  for (let k = 0; k < n; k++) {
    f[0] = out[k]!; f[1] = ref[k]!;
    if (Math.abs(ref[k]!) < 1.18e-38) continue;
    const d = Math.abs(ord(i[0]!) - ord(i[1]!));
    if (d > worst) { worst = d; at = k; }
  }
  console.log(op, `[${lo}, ${hi}]`, "worst", worst, "ulp at", x[at], out[at], ref[at]);
}
