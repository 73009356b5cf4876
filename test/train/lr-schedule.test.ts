import { test } from "node:test";
import assert from "node:assert/strict";
import { lrAt, lrTable, TUTORIAL_LR_SCHEDULE, validateLrSchedule } from "../../src/train/lr-schedule.ts";
import { fixtureTensor, loadFixtureJson } from "../helpers/fixtures.ts";

const FIXTURE = "case_f4.safetensors";
// optax evaluates the schedule in float32 (int32 step counter), also in the "f64" run, so every reference
// here carries float32 rounding of the peak-sized intermediate terms (see src/train/lr-schedule.ts).
// Tolerance: 2 float32 ulps of the peak 1e-4, i.e. 2 * 2^-37 = 1.46e-11 absolute (measured <= 1.15 ulps,
// the largest at lr(1), where the jitted FMA gives 9.99987e-8 instead of 1e-7).
const F32_PEAK_ULPS = 2 * 2 ** -37;

test("matches the tutorial's optax schedule at the fixture steps", () => {
  const steps = fixtureTensor(FIXTURE, "lr_schedule.step").data;
  const references = {
    "lr_schedule.value (f32, jitted)": fixtureTensor(FIXTURE, "lr_schedule.value").data,
    "f64.lr_schedule.value (float32 arithmetic too)": fixtureTensor(FIXTURE, "f64.lr_schedule.value").data,
    "optimizer.lr_schedule_eager": loadFixtureJson("case_f4.json").optimizer.lr_schedule_eager as number[],
  };
  assert.deepEqual(Array.from(steps), [0, 1, 2, 10, 500, 999, 1000, 1001, 2000, 3000, 4000, 4999, 5000, 5001, 6000]);
  for (const [name, values] of Object.entries(references)) {
    assert.equal(values.length, steps.length);
    for (let i = 0; i < steps.length; i++) {
      const ours = lrAt(steps[i], TUTORIAL_LR_SCHEDULE);
      assert.ok(Math.abs(ours - values[i]) <= F32_PEAK_ULPS, `${name} step ${steps[i]}: ${ours} vs ${values[i]}`);
    }
  }
});

test("exact values of the float64 formula", () => {
  const c = TUTORIAL_LR_SCHEDULE;
  // Closed forms; 1e-15 relative allows for cos(pi/2) != 0 and one or two roundings.
  const close = (a: number, b: number) => assert.ok(Math.abs(a - b) <= 1e-15 * Math.abs(b), `${a} vs ${b}`);
  assert.equal(lrAt(0, c), 0); // the first update has LR 0
  close(lrAt(1, c), 1e-7);
  close(lrAt(500, c), 5e-5);
  close(lrAt(1000, c), 1e-4);
  close(lrAt(3000, c), 1e-4 * (0.99 * 0.5 + 0.01)); // half-way through the decay
  close(lrAt(5000, c), 1e-6);
  assert.equal(lrAt(123456, c), lrAt(5000, c)); // holds alpha * peak afterwards
  assert.equal(lrAt(-5, c), 0);
});

test("shape: increasing during warm-up, decreasing afterwards; no warm-up case", () => {
  const table = lrTable(5001, TUTORIAL_LR_SCHEDULE);
  for (let k = 1; k <= 1000; k++) assert.ok(table[k] > table[k - 1]);
  for (let k = 1001; k <= 5000; k++) assert.ok(table[k] < table[k - 1]);
  const noWarmup = { peak: 2, warmupSteps: 0, totalSteps: 10, alpha: 0 };
  assert.equal(lrAt(0, noWarmup), 2);
  assert.ok(Math.abs(lrAt(10, noWarmup)) < 1e-15);
});

test("config validation", () => {
  assert.doesNotThrow(() => validateLrSchedule(TUTORIAL_LR_SCHEDULE));
  assert.throws(() => validateLrSchedule({ ...TUTORIAL_LR_SCHEDULE, totalSteps: 1000 }), /totalSteps/);
  assert.throws(() => validateLrSchedule({ ...TUTORIAL_LR_SCHEDULE, warmupSteps: 1.5 }), /warmupSteps/);
  assert.throws(() => validateLrSchedule({ ...TUTORIAL_LR_SCHEDULE, alpha: 2 }), /alpha/);
  assert.throws(() => validateLrSchedule({ ...TUTORIAL_LR_SCHEDULE, peak: NaN }), /peak/);
});
