import { test } from "node:test";
import assert from "node:assert/strict";
import { formatLinear, linearTicks, logTicks, niceStep } from "../../src/viz/ticks.ts";

const labels = (ts: { label: string }[]) => ts.map((t) => t.label).filter((l) => l !== "");

test("nice steps are 1, 2 or 5 times a power of ten", () => {
  assert.equal(niceStep(4999, 8), 1000);
  assert.equal(niceStep(1, 5), 0.2);
  assert.equal(niceStep(9, 5), 2);
  assert.equal(niceStep(0.003, 6), 0.0005);
});

test("linear ticks: step axis 0..4999 and fractional ranges", () => {
  assert.deepEqual(labels(linearTicks(0, 4999, 8)), ["0", "1000", "2000", "3000", "4000"]);
  assert.deepEqual(labels(linearTicks(-0.13, 0.42, 6)), ["-0.1", "0", "0.1", "0.2", "0.3", "0.4"]);
  assert.deepEqual(labels(linearTicks(0, 3, 10, true)), ["0", "1", "2", "3"]);
  assert.deepEqual(labels(linearTicks(5, 5)), ["5"]);
});

test("linear labels avoid -0 and round-off noise, use exponents for extreme magnitudes", () => {
  assert.equal(formatLinear(-1e-17, 0.1), "0");
  assert.equal(formatLinear(0.30000000000000004, 0.1), "0.3");
  assert.equal(formatLinear(2e7, 1e7), "2e7");
  assert.equal(formatLinear(2.5e-5, 5e-6), "2.5e-5");
});

test("log ticks: decade labels like 1e-2, 1e-1, 1 over several decades", () => {
  const t = logTicks(0.004, 3);
  assert.deepEqual(t.filter((x) => x.major).map((x) => x.label), ["1e-2", "1e-1", "1"]);
  assert.ok(t.some((x) => !x.major && x.value > 0.01 && x.value < 0.1), "has minor ticks");
  assert.deepEqual(labels(logTicks(1e-6, 1e3)).slice(0, 3), ["1e-6", "1e-4", "1e-2"]);
  assert.deepEqual(labels(logTicks(1, 1000)), ["1", "10", "100", "1e3"]);
});

test("log ticks: narrow ranges still get labels", () => {
  assert.deepEqual(labels(logTicks(0.15, 0.6)), ["2e-1", "3e-1", "4e-1", "5e-1", "6e-1"]);
  assert.deepEqual(labels(logTicks(0.05, 2)), ["5e-2", "1e-1", "2e-1", "5e-1", "1", "2"]);
  assert.ok(labels(logTicks(0.31, 0.33)).length >= 2);
  const wide = logTicks(1e-30, 1e30);
  assert.ok(labels(wide).length <= 9 && labels(wide).length >= 5, labels(wide).join(" "));
});
