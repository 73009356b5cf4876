// Axis tick placement and labels for plot.ts: "nice" 1-2-5 steps on linear axes, decades
// (with 2..9 sub-ticks when the range is short) on log axes.

export interface Tick {
  value: number;
  label: string;
  /** Minor ticks get a fainter grid line and, on log axes with enough decades, no label. */
  major: boolean;
}

/** Smallest step of 1, 2 or 5 times a power of ten that splits `span` into at most `target` intervals. */
export function niceStep(span: number, target = 6): number {
  const raw = span / Math.max(1, target);
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw * (1 - 1e-9)) return m * p;
  return 10 * p;
}

/** Label for a linear tick: enough decimals for `step`, exponent form for extreme magnitudes. */
export function formatLinear(v: number, step: number): string {
  if (Math.abs(v) < step * 1e-9) return "0"; // avoids "-0" and round-off like 1e-17
  const mag = Math.max(Math.abs(v), step);
  if (mag >= 1e6 || step < 1e-4) {
    const s = v.toExponential(Math.max(0, Math.floor(Math.log10(Math.abs(v))) - Math.floor(Math.log10(step))));
    return s.replace(/\.?0+e/, "e").replace("e+", "e");
  }
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return v.toFixed(decimals);
}

/** Ticks at multiples of a nice step inside [lo, hi]; `integer` keeps the step >= 1 (index axes). */
export function linearTicks(lo: number, hi: number, target = 6, integer = false): Tick[] {
  if (!(hi > lo)) return [{ value: lo, label: formatLinear(lo, Math.abs(lo) || 1), major: true }];
  const step = integer ? Math.max(1, niceStep(hi - lo, target)) : niceStep(hi - lo, target);
  const ticks: Tick[] = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) {
    const value = k * step;
    ticks.push({ value, label: formatLinear(value, step), major: true });
  }
  return ticks;
}

/** m·10^k as "1e-2", "5e-1", "1", "20", "100", "1e3": plain only where it stays short. */
export function formatPow10(m: number, k: number): string {
  if (k >= 0 && k <= 2) return String(m * 10 ** k);
  return `${m}e${k}`;
}

/**
 * Ticks for a log10 axis over [lo, hi] (values, both > 0). Decades are major ticks; when fewer
 * than three decades are visible, 2x and 5x are labelled too (all of 2..9 when no decade is);
 * for wide ranges only every n-th decade is labelled.
 */
export function logTicks(lo: number, hi: number): Tick[] {
  const a = Math.log10(lo);
  const b = Math.log10(hi);
  const kLo = Math.floor(a + 1e-9);
  const kHi = Math.ceil(b - 1e-9);
  const inside = (v: number) => v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9);
  const decades = Math.floor(b + 1e-9) - Math.ceil(a - 1e-9) + 1; // decade ticks inside the range
  const every = Math.max(1, Math.ceil(decades / 8));
  const ticks: Tick[] = [];
  for (let k = kLo; k <= kHi; k++) {
    for (let m = 1; m <= 9; m++) {
      const value = m * 10 ** k;
      if (!inside(value)) continue;
      if (m === 1) {
        if (k % every === 0) ticks.push({ value, label: formatPow10(1, k), major: true });
        continue;
      }
      if (decades >= 2 && every > 1) continue; // too many decades for sub-ticks
      const labelled = decades < 3 && (decades === 0 || m === 2 || m === 5);
      ticks.push({ value, label: labelled ? formatPow10(m, k) : "", major: false });
    }
  }
  // A very short range may hold no labelled tick at all: fall back to linear steps.
  if (ticks.filter((t) => t.label !== "").length < 2) return linearTicks(lo, hi, 4);
  return ticks;
}
