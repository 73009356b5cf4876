// PNG encoding of grayscale float images and RGB bytes via fast-png (pure JS: Node and browsers).
import { encode } from "fast-png";

function checkSize(width: number, height: number): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`png: width and height must be positive integers, got ${width}x${height}`);
  }
}

/** Maps a value in [0,1] to a byte: clipped, rounded to nearest; NaN becomes 0 (black). */
export function unitToByte(v: number): number {
  if (!(v > 0)) return 0; // also catches NaN
  if (v >= 1) return 255;
  return Math.round(v * 255);
}

/** 8-bit grayscale PNG from row-major values in [0,1] (0 = black, 1 = white; clipped). */
export function encodeGrayPng(pixels: Float32Array | Float64Array, width: number, height: number): Uint8Array {
  checkSize(width, height);
  if (pixels.length !== width * height) {
    throw new Error(`png: ${width}x${height} image needs ${width * height} values, got ${pixels.length}`);
  }
  const data = new Uint8Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) data[i] = unitToByte(pixels[i]!);
  return encode({ width, height, data, depth: 8, channels: 1 });
}

/** 8-bit RGB PNG from interleaved row-major bytes (r, g, b per pixel). */
export function encodeRgbPng(rgb: Uint8Array, width: number, height: number): Uint8Array {
  checkSize(width, height);
  if (rgb.length !== width * height * 3) {
    throw new Error(`png: ${width}x${height} RGB image needs ${width * height * 3} bytes, got ${rgb.length}`);
  }
  return encode({ width, height, data: rgb, depth: 8, channels: 3 });
}
