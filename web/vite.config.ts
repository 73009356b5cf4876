// Vite config of the web app (web/): `npm run web` serves it, `npm run build:web` writes web/dist.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const webRoot = fileURLToPath(new URL(".", import.meta.url));
const repoRoot = fileURLToPath(new URL("..", import.meta.url));

// Cross-origin isolation (crossOriginIsolated, SharedArrayBuffer): the WebAssembly backend's threads share one
// WebAssembly.Memory. Static hosts serving web/dist need the same two headers, or the page uses the CPU backend.
const isolationHeaders = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
};

export default defineConfig({
  root: webRoot,
  resolve: {
    // The engine's WebGPU device code loads Dawn (the `webgpu` npm package, a Node addon) only in Node; in the
    // browser it takes navigator.gpu. A stub keeps the addon's Node-only modules out of the bundle.
    alias: [{ find: /^webgpu$/, replacement: fileURLToPath(new URL("./src/dawn-stub.ts", import.meta.url)) }],
  },
  // Relative asset URLs: web/dist works from any path (a sub-folder of a static host, file servers).
  base: "./",
  publicDir: "public",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    // The digits (data/digits.csv.gz) stay a separate file rather than a base64 string in the bundle.
    assetsInlineLimit: 0,
    reportCompressedSize: false,
  },
  worker: { format: "es" },
  server: {
    host: "127.0.0.1",
    port: 5173,
    // The app imports the engine from ../src and the digits from ../data.
    fs: { allow: [repoRoot] },
    headers: isolationHeaders,
  },
  preview: { host: "127.0.0.1", port: 4173, headers: isolationHeaders },
});
