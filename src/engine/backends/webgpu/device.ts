/// <reference types="@webgpu/types" />
// Getting a GPUDevice: navigator.gpu in browsers; in Node, Dawn from the `webgpu` npm package (its binary
// ships inside the package). In Node the adapter is chosen in this order (mode "auto"):
//   1. a hardware GPU through Dawn's default backend (Vulkan on Linux: the `libvulkan1` loader plus the
//      GPU's ICD, e.g. VK_DRIVER_FILES=.../nvidia_icd.json for NVIDIA),
//   2. Mesa's lavapipe (software Vulkan, the same Dawn backend and shader compiler path as a Linux GPU),
//      which Dawn accepts from Mesa 25 on (Debian 12: bookworm-backports; its own Mesa 22.3 is refused),
//   3. Dawn's OpenGL ES backend on Mesa's llvmpipe through surfaceless EGL, at the 'compatibility' feature
//      level (Debian 12 main: libegl-dev libegl-mesa0 libgl1-mesa-dri; Dawn dlopens the unversioned
//      libEGL.so, which only the -dev package provides). EGL_PLATFORM=surfaceless is set when unset.
// TINY_DIFFUSION_WEBGPU (or options.adapter) overrides: auto | gpu | vulkan | opengles.

export type AdapterMode = "auto" | "gpu" | "vulkan" | "opengles";

export interface GpuDeviceOptions {
  /** Which adapter to take; default process.env.TINY_DIFFUSION_WEBGPU or "auto". */
  adapter?: AdapterMode;
  /** Log each attempt to stderr (also when TINY_DIFFUSION_DEBUG is set). */
  verbose?: boolean;
  /**
   * Ask for the "timestamp-query" feature where the adapter has it, at full resolution in Node (Dawn's
   * timestamp quantization off), for WebGpuBackend.profile.
   */
  timestamps?: boolean;
}

export interface GpuAdapterSummary {
  /** How it was reached: "browser", "dawn/default", "dawn/vulkan", "dawn/opengles". */
  path: string;
  /** A software rasterizer (lavapipe, llvmpipe, SwiftShader, WARP): fine for tests, slow for work. */
  software: boolean;
  featureLevel: "core" | "compatibility";
  vendor: string;
  architecture: string;
  device: string;
  description: string;
}

export interface GpuContext {
  readonly device: GPUDevice;
  readonly adapter: GPUAdapter;
  readonly info: GpuAdapterSummary;
  /** Destroys the device and drops the Dawn instance, so Node can exit. Idempotent. */
  destroy(): void;
}

/** What to install when no adapter can be created (the tests fail with this). */
export const SOFTWARE_ADAPTER_HELP =
  "No WebGPU adapter could be created. For a software adapter on Debian 12 either add the bookworm-backports " +
  "suite and run `apt-get install -y --no-install-recommends -t bookworm-backports mesa-vulkan-drivers libvulkan1` " +
  "(lavapipe from Mesa 25; Dawn refuses Debian 12's own Mesa 22.3 lavapipe), or run " +
  "`apt-get install -y --no-install-recommends libegl-dev libegl-mesa0 libgl1-mesa-dri` (Dawn's OpenGL ES backend " +
  "on Mesa llvmpipe). For a GPU: the Vulkan loader libvulkan1 and the GPU's Vulkan driver (for NVIDIA set " +
  "VK_DRIVER_FILES=<driver>/share/vulkan/icd.d/nvidia_icd.json). See src/engine/backends/webgpu/README.md.";

const SOFTWARE_NAME = /llvmpipe|lavapipe|swiftshader|software|warp|microsoft basic render/i;

function summarize(adapter: GPUAdapter, path: string, featureLevel: "core" | "compatibility"): GpuAdapterSummary {
  const i = adapter.info;
  const text = `${i.vendor} ${i.architecture} ${i.device} ${i.description}`;
  const fallback = (i as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
  return {
    path,
    software: fallback || SOFTWARE_NAME.test(text),
    featureLevel,
    vendor: i.vendor,
    architecture: i.architecture,
    device: i.device,
    description: i.description,
  };
}

export function describeAdapter(info: GpuAdapterSummary): string {
  const names = [info.device, info.description, info.vendor, info.architecture].filter((v, i, all) => v && all.indexOf(v) === i);
  return `${names.join(" / ") || "unnamed adapter"} (${info.path}, ${info.featureLevel}${info.software ? ", software" : ""})`;
}

/** The adapter's own maxima for the limits the kernels care about (the defaults are lower, esp. in compatibility mode). */
function requiredLimits(adapter: GPUAdapter): Record<string, number> {
  const names = [
    "maxStorageBufferBindingSize", "maxBufferSize", "maxComputeWorkgroupStorageSize", "maxComputeInvocationsPerWorkgroup",
    "maxComputeWorkgroupSizeX", "maxComputeWorkgroupSizeY", "maxComputeWorkgroupsPerDimension", "maxStorageBuffersPerShaderStage",
    "maxUniformBuffersPerShaderStage",
  ] as const;
  const out: Record<string, number> = {};
  for (const n of names) {
    const v = (adapter.limits as unknown as Record<string, number | undefined>)[n];
    if (typeof v === "number") out[n] = v;
  }
  return out;
}

async function openDevice(adapter: GPUAdapter, timestamps = false): Promise<GPUDevice> {
  const limits = requiredLimits(adapter);
  if ((limits.maxComputeInvocationsPerWorkgroup ?? 0) < 256 || (limits.maxStorageBuffersPerShaderStage ?? 0) < 4) {
    throw new Error(`adapter limits too low for the kernels (need 256 invocations per workgroup and 4 storage buffers): ${JSON.stringify(limits)}`);
  }
  const requiredFeatures: GPUFeatureName[] = timestamps && adapter.features.has("timestamp-query") ? ["timestamp-query"] : [];
  return adapter.requestDevice({ requiredLimits: limits, requiredFeatures, label: "tiny-diffusion" });
}

interface Attempt {
  path: string;
  flags: string[];
  featureLevel: "core" | "compatibility";
  /** Reject software adapters (the first "auto" try wants a real GPU). */
  hardwareOnly: boolean;
  env?: Record<string, string>;
}

function nodeAttempts(mode: AdapterMode): Attempt[] {
  const gpu: Attempt = { path: "dawn/default", flags: [], featureLevel: "core", hardwareOnly: true };
  const vulkan: Attempt = { path: "dawn/vulkan", flags: ["backend=vulkan"], featureLevel: "core", hardwareOnly: false };
  const gles: Attempt = {
    path: "dawn/opengles", flags: ["backend=opengles"], featureLevel: "compatibility", hardwareOnly: false,
    env: { EGL_PLATFORM: "surfaceless" },
  };
  switch (mode) {
    case "gpu": return [gpu];
    case "vulkan": return [vulkan];
    case "opengles": return [gles];
    case "auto": return process.platform === "linux" ? [gpu, vulkan, gles] : [gpu, { ...gpu, hardwareOnly: false }];
  }
}

type DawnModule = { create(flags: string[]): GPU; globals: object };
let dawnModule: Promise<DawnModule> | null = null;

async function loadDawn(): Promise<DawnModule> {
  dawnModule ??= import("webgpu").then((m) => {
    // GPUBufferUsage, GPUMapMode, ... are needed as globals by code written for browsers.
    for (const [k, v] of Object.entries(m.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
    return m as DawnModule;
  });
  return dawnModule;
}

function parseMode(value: string | undefined): AdapterMode {
  const v = (value ?? "auto").trim().toLowerCase() || "auto";
  if (v === "auto" || v === "gpu" || v === "vulkan" || v === "opengles") return v;
  throw new Error(`TINY_DIFFUSION_WEBGPU must be auto, gpu, vulkan or opengles, got "${value}"`);
}

function contextOf(device: GPUDevice, adapter: GPUAdapter, info: GpuAdapterSummary, onDestroy: () => void): GpuContext {
  let destroyed = false;
  return {
    device, adapter, info,
    destroy() {
      if (destroyed) return;
      destroyed = true;
      device.destroy();
      onDestroy();
    },
  };
}

async function createInBrowser(gpu: GPU, mode: AdapterMode, timestamps: boolean): Promise<GpuContext> {
  const tries: ["core" | "compatibility", boolean][] = mode === "gpu" ? [["core", false]] : [["core", false], ["compatibility", false], ["core", true]];
  for (const [featureLevel, forceFallbackAdapter] of tries) {
    const adapter = await gpu.requestAdapter({ powerPreference: "high-performance", featureLevel, forceFallbackAdapter });
    if (!adapter) continue;
    const device = await openDevice(adapter, timestamps);
    return contextOf(device, adapter, summarize(adapter, "browser", featureLevel), () => {});
  }
  throw new Error("WebGPU: the browser offers no adapter");
}

/**
 * Calls `drop` (which lets the Dawn instance be collected) once the destroyed device's pending callbacks have
 * run. node-webgpu polls the instance while any callback is pending (work done, buffer maps, compilation
 * info) and holds it by a raw pointer, so an instance collected under a pending poll crashes the process
 * (seen at exit in ~1 test file run of 10). A callback asked for after destroy() runs after those asked
 * before; 2 s bound the wait.
 */
function dropWhenSettled(device: GPUDevice, drop: () => void): void {
  const settled = device.queue.onSubmittedWorkDone().catch(() => undefined);
  const timeout = new Promise<void>((resolve) => (setTimeout(resolve, 2000) as unknown as { unref?: () => void }).unref?.());
  void Promise.race([settled, timeout]).then(() => setTimeout(drop, 0));
}

/**
 * What dawn.create gets: the attempt's flags (its backend); with timestamps, Dawn told not to round them to
 * 65,536 ns (useless for kernels of a few µs); then `extra`, the TINY_DIFFUSION_DAWN_FLAGS variable: more
 * dawn.node flags, space-separated, for experiments (e.g. "enable-dawn-features=disable_robustness").
 */
export function dawnFlags(attemptFlags: readonly string[], timestamps: boolean, extra: string | undefined): string[] {
  const flags = [...attemptFlags];
  if (timestamps) flags.push("disable-dawn-features=timestamp_quantization");
  if (extra) flags.push(...extra.split(/\s+/).filter((f) => f.length > 0));
  return flags;
}

/**
 * Creates a device on the best adapter available (see the file header). Throws, naming the Debian
 * packages to install, when none can be created.
 */
export async function createGpuDevice(options: GpuDeviceOptions = {}): Promise<GpuContext> {
  const env = typeof process !== "undefined" ? process.env : {};
  const mode = options.adapter ?? parseMode(env.TINY_DIFFUSION_WEBGPU);
  const verbose = options.verbose ?? !!env.TINY_DIFFUSION_DEBUG;
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  const inNode = typeof process !== "undefined" && !!process.versions?.node;
  if (!inNode) {
    if (!nav?.gpu) throw new Error("WebGPU: navigator.gpu is missing (browser without WebGPU)");
    return createInBrowser(nav.gpu, mode, options.timestamps ?? false);
  }

  const dawn = await loadDawn();
  const failures: string[] = [];
  for (const attempt of nodeAttempts(mode)) {
    for (const [k, v] of Object.entries(attempt.env ?? {})) if (process.env[k] === undefined) process.env[k] = v;
    let gpu: GPU | null = dawn.create(dawnFlags(attempt.flags, options.timestamps ?? false, env.TINY_DIFFUSION_DAWN_FLAGS));
    try {
      const adapter = await gpu.requestAdapter({ powerPreference: "high-performance", featureLevel: attempt.featureLevel });
      if (!adapter) {
        failures.push(`${attempt.path}: no adapter`);
        continue;
      }
      const info = summarize(adapter, attempt.path, attempt.featureLevel);
      if (attempt.hardwareOnly && info.software) {
        failures.push(`${attempt.path}: only a software adapter (${describeAdapter(info)})`);
        continue;
      }
      const device = await openDevice(adapter, options.timestamps ?? false);
      if (verbose) console.error(`webgpu: using ${describeAdapter(info)}`);
      // The Dawn instance (gpu) keeps Node's event loop alive: hold it only as long as the device lives.
      const holder = { gpu: gpu as GPU | null };
      gpu = null;
      return contextOf(device, adapter, info, () => dropWhenSettled(device, () => { holder.gpu = null; }));
    } catch (e) {
      failures.push(`${attempt.path}: ${(e as Error).message}`);
    } finally {
      gpu = null;
    }
  }
  if (verbose) console.error(`webgpu: ${failures.join("; ")}`);
  throw new Error(`${SOFTWARE_ADAPTER_HELP} (mode "${mode}"; tried: ${failures.join("; ")})`);
}
