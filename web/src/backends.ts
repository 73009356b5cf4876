// Which compute backend the page's engine runs on. The engine's kernels sit behind td.Backend
// (src/engine/backend.ts); a faster backend is one more entry in CANDIDATES, tried in order, and the
// first one that can run here is installed with td.setBackend. Runs inside the worker, where the
// engine lives (WebGPU is available to dedicated workers too).
import * as td from "../../src/engine/index.ts";
import { WasmBackend } from "../../src/engine/backends/wasm/index.ts";

export type BackendId = "webgpu" | "wasm" | "cpu";

export interface CandidateReport {
  id: BackendId;
  label: string;
  /** "active": in use; "unavailable": this browser cannot run it; "not-implemented": the engine lacks it. */
  status: "active" | "unavailable" | "not-implemented" | "skipped";
  detail: string;
}

export interface BackendReport {
  active: { id: BackendId; label: string; name: string };
  candidates: CandidateReport[];
}

interface Candidate {
  id: BackendId;
  label: string;
  /** Resolves to a backend, or to a reason it cannot be used here. */
  create(): Promise<td.Backend | { reason: string; status: CandidateReport["status"] }>;
}

type GpuNavigator = { gpu?: { requestAdapter(): Promise<unknown | null> } };

async function webgpuSupport(): Promise<string | null> {
  const gpu = (globalThis.navigator as GpuNavigator | undefined)?.gpu;
  if (!gpu) return "no navigator.gpu";
  try {
    const adapter = await Promise.race([gpu.requestAdapter(), new Promise((r) => setTimeout(() => r(null), 2000))]);
    return adapter ? null : "no GPU adapter";
  } catch (e) {
    return `requestAdapter failed: ${(e as Error).message}`;
  }
}

const CANDIDATES: Candidate[] = [
  {
    id: "webgpu",
    label: "WebGPU",
    async create() {
      const problem = await webgpuSupport();
      if (problem) return { status: "unavailable", reason: problem };
      // The engine has no WebGPU backend yet; when it does, create and return it here.
      return { status: "not-implemented", reason: "this browser supports WebGPU, but the engine has no WebGPU backend yet" };
    },
  },
  {
    id: "wasm",
    label: "CPU · WebAssembly SIMD kernels",
    async create() {
      // The backend's tensors live in a shared WebAssembly.Memory that its worker threads (Blob-URL Web Workers
      // started from this worker) also use: SharedArrayBuffer needs a cross-origin isolated page (COOP/COEP).
      if (!(globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated) {
        return { status: "unavailable", reason: "the page is not cross-origin isolated (no SharedArrayBuffer)" };
      }
      if (typeof WebAssembly === "undefined" || typeof SharedArrayBuffer === "undefined") {
        return { status: "unavailable", reason: "no WebAssembly or SharedArrayBuffer" };
      }
      try {
        return await WasmBackend.create();
      } catch (e) {
        return { status: "unavailable", reason: `WasmBackend.create failed: ${(e as Error).message}` };
      }
    },
  },
  {
    id: "cpu",
    label: "CPU · reference TypeScript kernels",
    async create() {
      return new td.CpuBackend();
    },
  },
];

/** Installs the first backend that works (or the one asked for) and reports on every candidate. */
export async function selectBackend(prefer?: BackendId): Promise<BackendReport> {
  const candidates: CandidateReport[] = [];
  let active: BackendReport["active"] | null = null;
  for (const c of CANDIDATES) {
    if (active || (prefer && c.id !== prefer && c.id !== "cpu")) {
      candidates.push({ id: c.id, label: c.label, status: "skipped", detail: active ? "a preferred backend is active" : `not requested` });
      continue;
    }
    const result = await c.create();
    if ("reason" in result) {
      candidates.push({ id: c.id, label: c.label, status: result.status, detail: result.reason });
      continue;
    }
    td.setBackend(result);
    active = { id: c.id, label: c.label, name: result.name };
    candidates.push({ id: c.id, label: c.label, status: "active", detail: "in use" });
  }
  if (!active) throw new Error("no compute backend could be created");
  return { active, candidates };
}
