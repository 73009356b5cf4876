// The engine's WebAssembly backend (src/engine/backends/wasm/pool.ts) names node:worker_threads in a type; it
// only loads it in Node (process.getBuiltinModule). The web app is type-checked without Node's types, so the
// module is declared here, untyped.
declare module "node:worker_threads";

// The WebGPU backend's device.ts reads `process` only in Node (it checks `typeof process` first; in the browser it
// takes navigator.gpu). The web app is type-checked without Node's types, so the little it uses is declared here.
declare var process: { env: Record<string, string | undefined>; versions: { node?: string }; platform: string };
