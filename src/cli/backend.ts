// Choosing the compute backend for the CLI: "auto" takes the fastest host backend that works here;
// "webgpu" asks for the GPU explicitly (Dawn in Node; TINY_DIFFUSION_WEBGPU picks the adapter kind).
import * as td from "../engine/index.ts";
import { UserError } from "./errors.ts";
import type { WebGpuBackendOptions } from "../engine/backends/webgpu/index.ts";

export type BackendChoice = "auto" | "cpu" | "wasm" | "webgpu";

export interface ActiveBackend {
  name: string;
  /** One line for logs: the backend and, for webgpu, the adapter. */
  description: string;
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

async function createWebGpu(options: WebGpuBackendOptions = {}) {
  const { WebGpuBackend } = await import("../engine/backends/webgpu/index.ts");
  return WebGpuBackend.create(options);
}

/** Sets the engine's backend. `webgpu`: options for that backend when it is the one chosen (benches use them). */
export async function useBackend(choice: BackendChoice, webgpu: WebGpuBackendOptions = {}): Promise<ActiveBackend> {
  if (choice === "cpu") {
    td.setBackend(new td.CpuBackend());
    return { name: "cpu", description: "cpu (reference TypeScript)" };
  }
  if (choice === "webgpu") {
    let gpu: Awaited<ReturnType<typeof createWebGpu>>;
    try {
      gpu = await createWebGpu(webgpu);
    } catch (e) {
      throw new UserError(`--backend webgpu: ${(e as Error).message.split("\n")[0]} (run \`tiny-diffusion devices\`)`);
    }
    td.setBackend(gpu);
    return {
      name: gpu.name,
      description: `webgpu on ${gpu.describe()}`,
      dispose: () => {
        td.setBackend(new td.CpuBackend());
        gpu.dispose();
      },
    };
  }
  const wasm = await tryWasm();
  if (wasm) {
    td.setBackend(wasm);
    return { name: wasm.name, description: "wasm (WebAssembly SIMD)", dispose: () => wasm.dispose?.() };
  }
  if (choice === "wasm") throw new UserError("the wasm backend is not available in this environment");
  td.setBackend(new td.CpuBackend());
  return { name: "cpu", description: "cpu (reference TypeScript)" };
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
  try {
    const gpu = await createWebGpu();
    lines.push(`webgpu: ${gpu.describe()} (float32)`);
    gpu.dispose();
  } catch (e) {
    lines.push(`webgpu: not available: ${(e as Error).message.split("\n").join(" ")}`);
  }
  return lines;
}
