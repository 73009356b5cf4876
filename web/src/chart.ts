// The live loss chart: per-step loss and the tutorial's smoothed loss on a log axis, drawn on a canvas
// with the same tick rules as the CLI's PNG charts (src/viz/ticks.ts).
import { linearTicks, logTicks } from "../../src/viz/ticks.ts";

export interface LossPoint {
  step: number;
  loss: number;
  smoothed: number;
}

const COLORS = { raw: "rgba(37, 99, 235, 0.28)", smooth: "#1d4ed8", grid: "#e5e7eb", minor: "#f3f4f6", axis: "#9ca3af", text: "#4b5563" };

export function drawLossChart(canvas: HTMLCanvasElement, points: readonly LossPoint[], totalSteps: number): void {
  const dpr = window.devicePixelRatio || 1;
  const cssW = canvas.clientWidth || 360;
  const cssH = canvas.clientHeight || 200;
  if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(cssH * dpr)) {
    canvas.width = Math.round(cssW * dpr);
    canvas.height = Math.round(cssH * dpr);
  }
  const ctx = canvas.getContext("2d")!;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cssW, cssH);
  ctx.font = "11px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";

  const values = points.flatMap((p) => [p.loss, p.smoothed]).filter((v) => Number.isFinite(v) && v > 0);
  let lo = values.length ? Math.min(...values) : 0.05;
  let hi = values.length ? Math.max(...values) : 1;
  if (hi / lo < 1.5) {
    const mid = Math.sqrt(hi * lo);
    lo = mid / 1.3;
    hi = mid * 1.3;
  }
  lo /= 1.08;
  hi *= 1.08;
  const xMax = Math.max(totalSteps, 1);
  const yTicks = logTicks(lo, hi);
  const xTicks = linearTicks(0, xMax, Math.max(2, Math.round(cssW / 90)), true);

  // Plain decimals ("0.3") read better than the CLI charts' "3e-1" at these magnitudes.
  for (const t of yTicks) if (t.label && t.value >= 1e-3 && t.value < 1e4) t.label = String(Number(t.value.toPrecision(3)));
  const labelW = Math.max(...yTicks.map((t) => ctx.measureText(t.label).width), 0);
  const plot = { x0: labelW + 12, y0: 8, x1: cssW - 12, y1: cssH - 22 };
  const px = (step: number) => plot.x0 + (step / xMax) * (plot.x1 - plot.x0);
  const py = (v: number) => plot.y1 - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * (plot.y1 - plot.y0);

  ctx.lineWidth = 1;
  ctx.fillStyle = COLORS.text;
  ctx.textBaseline = "middle";
  ctx.textAlign = "right";
  for (const t of yTicks) {
    const y = Math.round(py(t.value)) + 0.5;
    ctx.strokeStyle = t.major ? COLORS.grid : COLORS.minor;
    ctx.beginPath();
    ctx.moveTo(plot.x0, y);
    ctx.lineTo(plot.x1, y);
    ctx.stroke();
    if (t.label) ctx.fillText(t.label, plot.x0 - 6, y);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const t of xTicks) {
    const x = Math.round(px(t.value)) + 0.5;
    ctx.strokeStyle = COLORS.grid;
    ctx.beginPath();
    ctx.moveTo(x, plot.y0);
    ctx.lineTo(x, plot.y1);
    ctx.stroke();
    ctx.fillText(t.label, x, plot.y1 + 6);
  }
  ctx.strokeStyle = COLORS.axis;
  ctx.beginPath();
  ctx.moveTo(plot.x0 + 0.5, plot.y0);
  ctx.lineTo(plot.x0 + 0.5, plot.y1 + 0.5);
  ctx.lineTo(plot.x1, plot.y1 + 0.5);
  ctx.stroke();

  if (points.length === 0) {
    ctx.fillStyle = COLORS.text;
    ctx.textBaseline = "middle";
    ctx.fillText("The loss appears here while training runs", (plot.x0 + plot.x1) / 2, (plot.y0 + plot.y1) / 2);
    return;
  }
  ctx.save();
  ctx.beginPath();
  ctx.rect(plot.x0, plot.y0, plot.x1 - plot.x0, plot.y1 - plot.y0);
  ctx.clip();
  const stride = Math.max(1, Math.floor(points.length / (plot.x1 - plot.x0)));
  const line = (pick: (p: LossPoint) => number, color: string, width: number) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = width;
    ctx.lineJoin = "round";
    ctx.beginPath();
    for (let i = 0; i < points.length; i += stride) {
      const p = points[i]!;
      const x = px(p.step);
      const y = py(pick(p));
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    }
    const last = points[points.length - 1]!;
    ctx.lineTo(px(last.step), py(pick(last)));
    ctx.stroke();
  };
  line((p) => p.loss, COLORS.raw, 1);
  line((p) => p.smoothed, COLORS.smooth, 2);
  ctx.restore();
}
