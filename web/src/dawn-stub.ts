// Stands in for the `webgpu` npm package (Dawn for Node, a native addon) in the browser build: the engine's
// device.ts imports it only under Node; in a browser it uses navigator.gpu. vite.config.ts aliases "webgpu" here.
export const globals = {};

export function create(): never {
  throw new Error("the webgpu npm package (Dawn) is for Node; in a browser the engine uses navigator.gpu");
}
