// Which compute backend the page's engine runs on. The engine's kernels sit behind td.Backend
// (src/engine/backend.ts); the candidates below are tried in order (WebGPU, then the WebAssembly SIMD
// kernels, then the reference CPU kernels) and the first one that can run here is installed with
// td.setBackend. Runs inside the worker, where the engine lives (WebGPU is available to dedicated workers too).
import * as td from "../../src/engine/index.ts";
import { WasmBackend } from "../../src/engine/backends/wasm/index.ts";
import { WebGpuBackend } from "../../src/engine/backends/webgpu/index.ts";

export type BackendId = "webgpu" | "wasm" | "cpu";
/** The user's choice: "auto" = the first that works, in the order webgpu, wasm, cpu. */
export type BackendChoice = "auto" | BackendId;

export const BACKEND_CHOICES: readonly BackendChoice[] = ["auto", "webgpu", "wasm", "cpu"];

export function parseBackendChoice(value: string | null | undefined): BackendChoice {
  return BACKEND_CHOICES.includes(value as BackendChoice) ? (value as BackendChoice) : "auto";
}

export interface CandidateReport {
  id: BackendId;
  label: string;
  /** "active": in use; "unavailable": this browser cannot run it here; "skipped": not tried. */
  status: "active" | "unavailable" | "skipped";
  detail: string;
}

export interface BackendReport {
  choice: BackendChoice;
  active: {
    id: BackendId;
    label: string;
    /** The engine backend's name ("webgpu", "wasm", "cpu"). */
    name: string;
    /** What it runs on: the GPU adapter for WebGPU (e.g. "swiftshader / google (browser, core, software)"). */
    device: string;
    software?: boolean;
  };
  candidates: CandidateReport[];
}

interface Created {
  backend: td.Backend;
  device: string;
  software?: boolean;
}

interface Candidate {
  id: BackendId;
  label: string;
  /** Resolves to a backend, or to the reason it cannot be used here. */
  create(): Promise<Created | { reason: string }>;
}

/** WebGPU's adapter and device requests can hang in some set-ups (a blocked GPU process): give up after this. */
const WEBGPU_TIMEOUT_MS = 15_000;

const CANDIDATES: Candidate[] = [
  {
    id: "webgpu",
    label: "WebGPU",
    async create() {
      if (!(globalThis.navigator as { gpu?: unknown } | undefined)?.gpu) {
        return { reason: "this browser has no WebGPU (navigator.gpu is missing; it needs a secure context and a browser with WebGPU enabled)" };
      }
      const creation = WebGpuBackend.create();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), WEBGPU_TIMEOUT_MS)));
      try {
        const backend = await Promise.race([creation, timeout]);
        if (backend === "timeout") {
          void creation.then((b) => b.dispose(), () => {});
          return { reason: `no WebGPU device after ${WEBGPU_TIMEOUT_MS / 1000} s` };
        }
        return { backend, device: backend.describe(), software: backend.kernels.info?.software };
      } catch (e) {
        const message = (e as Error).message.replace(/^WebGPU: /, "");
        // With WebGPU present but no adapter (GPU blocklisted or disabled, e.g. --disable-gpu): say so plainly.
        return { reason: /offers no adapter/.test(message) ? "the browser offers no WebGPU adapter (no usable GPU, or GPU access is disabled)" : message };
      } finally {
        clearTimeout(timer);
      }
    },
  },
  {
    id: "wasm",
    label: "CPU · WebAssembly SIMD kernels",
    async create() {
      // The backend's tensors live in a shared WebAssembly.Memory that its worker threads (Blob-URL Web Workers
      // started from this worker) also use: SharedArrayBuffer needs a cross-origin isolated page (COOP/COEP).
      if (!(globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated) {
        return { reason: "the page is not cross-origin isolated (no SharedArrayBuffer)" };
      }
      if (typeof WebAssembly === "undefined" || typeof SharedArrayBuffer === "undefined") {
        return { reason: "no WebAssembly or SharedArrayBuffer" };
      }
      try {
        const threads = (globalThis.navigator as { hardwareConcurrency?: number } | undefined)?.hardwareConcurrency;
        return { backend: await WasmBackend.create(), device: threads ? `${threads} threads` : "this CPU" };
      } catch (e) {
        return { reason: `WasmBackend.create failed: ${(e as Error).message}` };
      }
    },
  },
  {
    id: "cpu",
    label: "CPU · reference TypeScript kernels",
    async create() {
      return { backend: new td.CpuBackend(), device: "one thread" };
    },
  },
];

/**
 * Installs the first backend that works and reports on every candidate. A choice other than "auto" starts the
 * list at that backend (the slower ones after it stay as fallbacks: webgpu -> wasm -> cpu).
 */
export async function selectBackend(choice: BackendChoice = "auto"): Promise<BackendReport> {
  const first = choice === "auto" ? 0 : CANDIDATES.findIndex((c) => c.id === choice);
  const candidates: CandidateReport[] = [];
  let active: BackendReport["active"] | null = null;
  for (const [i, c] of CANDIDATES.entries()) {
    if (active || i < first) {
      candidates.push({ id: c.id, label: c.label, status: "skipped", detail: active ? "a faster backend is active" : `not chosen (${choice})` });
      continue;
    }
    const result = await c.create();
    if ("reason" in result) {
      candidates.push({ id: c.id, label: c.label, status: "unavailable", detail: result.reason });
      continue;
    }
    td.setBackend(result.backend);
    active = { id: c.id, label: c.label, name: result.backend.name, device: result.device, ...(result.software !== undefined ? { software: result.software } : {}) };
    candidates.push({ id: c.id, label: c.label, status: "active", detail: "in use" });
  }
  if (!active) throw new Error("no compute backend could be created");
  return { choice, active, candidates };
}
