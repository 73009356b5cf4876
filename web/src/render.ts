// Pixels for the page's canvases: the CLI's grid layout (src/viz/grid.ts imageGrid: dark digits on white,
// like the PNGs `tiny-diffusion sample --png` writes) coloured with the page's ink and paper. Pure, so the
// browser test can compute the exact pixels it expects in Node.
import { imageGrid } from "../../src/viz/grid.ts";

export const INK: readonly [number, number, number] = [17, 24, 39];
export const PAPER: readonly [number, number, number] = [255, 255, 255];

export interface GridLayout {
  cols: number;
  scale: number;
  padding: number;
}

/** Tiles of about `target` px per row of the grid, at an integer scale. */
export function gridLayout(n: number, target = 384): GridLayout {
  const cols = Math.ceil(Math.sqrt(n));
  const scale = Math.max(2, Math.floor(target / (cols * 8 + 1)));
  return { cols, scale, padding: Math.max(1, Math.round(scale / 3)) };
}

export interface RgbaImage {
  width: number;
  height: number;
  data: Uint8ClampedArray;
}

/** N images (N*64 values, pixel/16 units; clipped to [0, 1]) as one RGBA grid. */
export function gridRgba(images: Float32Array, n: number, layout: GridLayout = gridLayout(n)): RgbaImage {
  // imageGrid does not invert the background: 0.93 gives light grey gaps between the tiles.
  const g = imageGrid(images, n, 8, 8, { invert: true, cols: layout.cols, scale: layout.scale, padding: layout.padding, background: 0.93 });
  const data = new Uint8ClampedArray(g.width * g.height * 4);
  for (let i = 0; i < g.pixels.length; i++) {
    const u = g.pixels[i]!; // 1 = paper, 0 = ink
    for (let c = 0; c < 3; c++) data[4 * i + c] = Math.round(INK[c]! + (PAPER[c]! - INK[c]!) * u);
    data[4 * i + 3] = 255;
  }
  return { width: g.width, height: g.height, data };
}
