// The engine's WebAssembly backend (src/engine/backends/wasm/pool.ts) names node:worker_threads in a type; it
// only loads it in Node (process.getBuiltinModule). The web app is type-checked without Node's types, so the
// module is declared here, untyped.
declare module "node:worker_threads";
