// Choosing the compute backend for the CLI: "auto" takes the fastest that works here.
import * as td from "../engine/index.ts";

export type BackendChoice = "auto" | "cpu" | "wasm";

export interface ActiveBackend {
  name: string;
  dispose?: () => void;
}

async function tryWasm(): Promise<(td.Backend & { dispose?: () => void }) | null> {
  try {
    const { WasmBackend } = await import("../engine/backends/wasm/index.ts");
    return await WasmBackend.create();
  } catch (e) {
    if (process.env.TINY_DIFFUSION_DEBUG) console.error(e);
    return null;
  }
}

export async function useBackend(choice: BackendChoice): Promise<ActiveBackend> {
  if (choice === "cpu") {
    td.setBackend(new td.CpuBackend());
    return { name: "cpu" };
  }
  const wasm = await tryWasm();
  if (wasm) {
    td.setBackend(wasm);
    return { name: wasm.name, dispose: () => wasm.dispose?.() };
  }
  if (choice === "wasm") throw new Error("the wasm backend is not available in this environment");
  td.setBackend(new td.CpuBackend());
  return { name: "cpu" };
}

export async function listDevices(): Promise<string[]> {
  const { availableParallelism, cpus } = await import("node:os");
  const cpu = cpus()[0]?.model ?? "unknown CPU";
  const lines = [`cpu: reference TypeScript backend (float32/float64), 1 thread, ${cpu}`];
  const wasm = await tryWasm();
  if (wasm) {
    lines.push(`wasm: WebAssembly SIMD backend (float32), ${availableParallelism()} threads`);
    wasm.dispose?.();
  } else lines.push("wasm: not available");
  return lines;
}
