// Captured steps (src/engine/capture.ts, webgpu/recording.ts): a function run once while the backend records
// it, then replayed on new inputs. Reference: the same function run eagerly on the CPU backend with the same
// inputs. The hazards a replay has that eager runs do not: host-written buffers (uploads inside the step)
// reused by the step's own temporaries, and buffers handed out again after the recording ends.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import * as td from "../../src/engine/index.ts";
import { CpuBackend } from "../../src/engine/backends/cpu/index.ts";
import { WebGpuBackend } from "../../src/engine/backends/webgpu/index.ts";
import { uniformValues, webgpuBackend } from "./helpers.ts";

after(() => td.setBackend(new CpuBackend()));

const randomValues = (n: number, seed: number): Float32Array => uniformValues(n, seed);

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i]! - expected[i]!);
    assert.ok(err <= tolerance * (1 + Math.abs(expected[i]!)), `${what}[${i}]: ${actual[i]} vs ${expected[i]} (tolerance ${tolerance})`);
  }
}

/** fn on the CPU backend (the reference), outputs as arrays. */
function onCpu(fn: (inputs: td.Tensor[]) => td.Tensor[], values: readonly Float32Array[], shapes: readonly (readonly number[])[]): Float32Array[] {
  const before = td.getBackend();
  td.setBackend(new CpuBackend());
  try {
    return td.tidy(() => fn(values.map((v, i) => td.tensor(v, shapes[i]!, "float32"))).map((t) => Float32Array.from(t.data)));
  } finally {
    td.setBackend(before);
  }
}

// A step with an upload inside (the constant C), a temporary that takes C's buffer once C is released
// (both [16,16]: the same size class), matmuls (materialized) and a fused chain into a reduction.
const C = randomValues(256, 7);
function step([x, a]: td.Tensor[]): td.Tensor[] {
  const y = td.tidy(() => td.matmul(td.tensor(C, [16, 16], "float32"), x!)); // C is released here
  const z = td.matmul(y, y); // its output may take C's buffer
  const s = td.sum(td.tanh(td.add(td.mul(z, a!), 0.5)), [1]);
  return [td.mul(s, 0.25), td.add(x!, td.mul(y, 0.01))];
}
const shapes = [[16, 16], [1]] as const;

test("capture: replays on new inputs match eager CPU runs (an upload inside the step stays intact)", async () => {
  td.setBackend(await webgpuBackend());
  try {
    const initial = [randomValues(256, 1), Float32Array.of(0.3)];
    const captured = td.captureStep(step, initial.map((v, i) => td.tensor(v, shapes[i]!, "float32")));
    try {
      assert.ok(captured.dispatches >= 3, `dispatches recorded: ${captured.dispatches}`);
      const first = await Promise.all(captured.outputs.map((o) => o.read()));
      onCpu(step, initial, shapes).forEach((e, k) => assertClose(first[k]!, e, 1e-5, `capture run, output ${k}`));
      for (let round = 0; round < 3; round++) {
        const values = [randomValues(256, 10 + round), Float32Array.of(0.1 * (round + 1))];
        captured.replay(values);
        const got = await Promise.all(captured.outputs.map((o) => o.read()));
        onCpu(step, values, shapes).forEach((e, k) => assertClose(got[k]!, e, 1e-5, `replay ${round}, output ${k}`));
      }
    } finally {
      captured.dispose();
    }
  } finally {
    td.setBackend(new CpuBackend());
  }
});

test("capture: an output fed back as the next input (on the device) iterates like an eager loop", async () => {
  td.setBackend(await webgpuBackend());
  try {
    const x0 = randomValues(256, 3);
    const a = Float32Array.of(0.7);
    const captured = td.captureStep(step, [td.tensor(x0, [16, 16], "float32"), td.tensor(a, [1], "float32")]);
    try {
      let expected = x0;
      for (let k = 0; k < 4; k++) {
        if (k > 0) captured.replay([captured.outputs[1]!, null]);
        expected = onCpu(step, [expected, a], shapes)[1]!;
        assertClose(await captured.outputs[1]!.read(), expected, 1e-5, `iteration ${k}`);
      }
    } finally {
      captured.dispose();
    }
  } finally {
    td.setBackend(new CpuBackend());
  }
});

test("capture with feedback: the output is the next input without a copy (the recording alternates buffers); same values as the eager loop", async () => {
  const gpu = await webgpuBackend();
  td.setBackend(gpu);
  const kernels = gpu.kernels as unknown as { copy: (...args: unknown[]) => void };
  const copy = kernels.copy;
  let copies = 0;
  kernels.copy = function (this: unknown, ...args: unknown[]) {
    copies++;
    return copy.apply(this, args);
  };
  try {
    const x0 = randomValues(256, 3);
    const a = Float32Array.of(0.7);
    // Output 1 (the new x) feeds input 0; input 1 (a) takes host values.
    const captured = td.captureStep(step, [td.tensor(x0, [16, 16], "float32"), td.tensor(a, [1], "float32")], { feedback: [[1, 0]] });
    try {
      let expected = x0;
      const held = new Set(captured.tensors);
      for (let k = 0; k < 5; k++) {
        const before = copies;
        if (k > 0) captured.replay([null, a]);
        if (k > 0) assert.equal(copies - before, 0, `replay ${k}: no copy between steps`);
        // The current value is both output 1 and input 0, one of the capture's own tensors.
        assert.equal(captured.outputs[1], captured.inputs[0], `after replay ${k}`);
        assert.ok(held.has(captured.outputs[1]!));
        expected = onCpu(step, [expected, a], shapes)[1]!;
        assertClose(await captured.outputs[1]!.read(), expected, 1e-5, `iteration ${k}`);
      }
      assert.throws(() => captured.replay([captured.outputs[1]!, a]), /input 0 is fed back from an output; pass null/);
    } finally {
      captured.dispose();
    }
    const x = td.tensor(x0, [16, 16], "float32");
    const b = td.tensor(a, [1], "float32");
    assert.throws(() => td.captureStep(step, [x, b], { feedback: [[0, 0]] }), /output 0 is \[16\] float32, fed back into input 0 \[16,16\] float32/);
    assert.throws(() => td.captureStep(step, [x, b], { feedback: [[1, 0], [1, 1]] }), /fed back twice/);
    assert.throws(() => td.captureStep(step, [x, b], { feedback: [[2, 0]] }), /names no output 2/);
    td.dispose([x, b]);
  } finally {
    kernels.copy = copy;
    td.setBackend(new CpuBackend());
  }
});

test("capture: inputs as slices of a table, several replays in one submit", async () => {
  const b = await webgpuBackend();
  td.setBackend(b);
  try {
    const rounds = 5;
    const aRows = Float32Array.from({ length: rounds }, (_, k) => 0.1 * (k + 1));
    const x0 = randomValues(256, 30);
    const captured = td.captureStep(step, [td.tensor(x0, [16, 16], "float32"), td.tensor(aRows.subarray(0, 1), [1], "float32")]);
    const table = td.tensor(aRows, [rounds], "float32");
    try {
      let expected = onCpu(step, [x0, aRows.subarray(0, 1)], shapes)[1]!;
      const submitsBefore = b.stats().submits;
      for (let k = 1; k < rounds; k++) {
        captured.replay([captured.outputs[1]!, { from: table, offset: k }], { submit: k === rounds - 1 });
        expected = onCpu(step, [expected, aRows.subarray(k, k + 1)], shapes)[1]!;
      }
      assert.equal(b.stats().submits - submitsBefore, 1, "four replays, one submit");
      assertClose(await captured.outputs[1]!.read(), expected, 1e-5, "after four replays");
      assert.throws(() => captured.replay([null, { from: table, offset: rounds }]), /from offset 5 of a tensor of 5/);
    } finally {
      captured.dispose();
      table.dispose();
    }
  } finally {
    td.setBackend(new CpuBackend());
  }
});

test("capture: uploads after a mid-step submit do not take buffers the step used before", async () => {
  // autoFlushCalls 1: a submit after every call, so freed temporaries become free for uploads mid-step.
  const b = new WebGpuBackend((await webgpuBackend()).kernels, { autoFlushCalls: 1 });
  td.setBackend(b);
  try {
    // [29,29]: a size class no other test here uses, so the free buffer the upload would take is the temporary.
    const U = randomValues(29 * 29, 9);
    const f = ([x]: td.Tensor[]): td.Tensor[] => {
      const t = td.tidy(() => td.sum(td.matmul(x!, x!), [0])); // a [29,29] temporary, freed
      td.getBackend().flush(); // a submit: the temporary becomes free for uploads
      const u = td.tensor(U, [29, 29], "float32");
      return [td.add(td.sum(td.matmul(u, x!), [0]), t)];
    };
    const captured = td.captureStep(f, [td.tensor(randomValues(29 * 29, 4), [29, 29], "float32")]);
    try {
      for (let round = 0; round < 2; round++) {
        const x = randomValues(29 * 29, 20 + round);
        captured.replay([x]);
        assertClose(await captured.outputs[0]!.read(), onCpu(f, [x], [[29, 29]])[0]!, 1e-5, `replay ${round}`);
      }
    } finally {
      captured.dispose();
    }
  } finally {
    td.setBackend(new CpuBackend());
  }
});

test("capture: buffers stay out of the pool until dispose, then return; eager tensors made between replays stay intact", async () => {
  const b = await webgpuBackend();
  td.setBackend(b);
  try {
    const x = randomValues(256, 5);
    const captured = td.captureStep(step, [td.tensor(x, [16, 16], "float32"), td.tensor(Float32Array.of(0.2), [1], "float32")]);
    const expected = onCpu(step, [x, Float32Array.of(0.2)], shapes);
    // Eager tensors of the step's size class, made after the capture: they take free pool buffers, which
    // must not be the step's, or the replay overwrites them.
    const eager = Array.from({ length: 24 }, (_, k) => randomValues(256, 100 + k));
    const tensors = eager.map((v) => td.tensor(v, [16, 16], "float32"));
    captured.replay([null, null]);
    for (let k = 0; k < eager.length; k++) assertClose(await tensors[k]!.read(), eager[k]!, 0, `eager tensor ${k} after a replay`);
    assertClose(await captured.outputs[0]!.read(), expected[0]!, 1e-5, "replay");
    const freeBefore = b.stats().freeBytes;
    captured.dispose();
    assert.ok(b.stats().freeBytes > freeBefore, "dispose returns the step's buffers to the pool");
    assert.throws(() => captured.replay([null, null]), /after dispose/);
    td.dispose(tensors);
  } finally {
    td.setBackend(new CpuBackend());
  }
});

test("capture: an output that is still pending when the step ends (a kernel flip) is computed in the recording", async () => {
  const b = await webgpuBackend();
  td.setBackend(b);
  try {
    const shape = [3, 3, 2, 5];
    const f = ([k]: td.Tensor[]): td.Tensor[] => [td.flipKernel(k!)];
    const captured = td.captureStep(f, [td.tensor(randomValues(90, 40), shape, "float32")]);
    try {
      for (let round = 0; round < 2; round++) {
        const k = randomValues(90, 41 + round);
        captured.replay([k]);
        assertClose(await captured.outputs[0]!.read(), onCpu(f, [k], [shape])[0]!, 0, `replay ${round}`);
      }
    } finally {
      captured.dispose();
    }
  } finally {
    td.setBackend(new CpuBackend());
  }
});

test("capture: capturing again and again (a sampler per request) does not grow the buffer pool", async () => {
  const b = await webgpuBackend();
  td.setBackend(b);
  try {
    const allocated: number[] = [];
    for (let round = 0; round < 6; round++) {
      const initial = [td.tensor(randomValues(256, 50 + round), [16, 16], "float32"), td.tensor(Float32Array.of(0.5), [1], "float32")];
      const captured = td.captureStep(step, initial);
      td.dispose(initial); // the capture keeps copies
      captured.replay([null, null]);
      await captured.outputs[0]!.read();
      captured.dispose();
      allocated.push(b.stats().allocatedBytes);
    }
    // The step uploads a constant each time: it takes a free buffer the recording has not used.
    assert.ok(allocated.slice(2).every((n) => n === allocated[1]), `pool bytes after each capture: ${allocated.join(", ")}`);
  } finally {
    td.setBackend(new CpuBackend());
  }
});

test("capture: misuse is refused with a message", async () => {
  td.setBackend(new CpuBackend());
  assert.equal(td.canCapture(), false);
  assert.throws(() => td.captureStep((xs) => xs, [td.zeros([2])]), /cpu backend cannot record/);
  td.setBackend(await webgpuBackend());
  try {
    assert.equal(td.canCapture(), true);
    const x = td.tensor(Float32Array.of(1, 2), [2], "float32");
    assert.throws(() => td.captureStep(([v]) => [v!], [x]), /must not be an input slot/);
    assert.throws(() => td.captureStep(() => { throw new Error("inside"); }, [x]), /inside/);
    const c = td.captureStep(([v]) => [td.mul(v!, 2)], [x]);
    assert.throws(() => c.replay([Float32Array.of(1, 2, 3)]), /has 2 elements, got 3/);
    assert.throws(() => c.replay([]), /0 values for 1 inputs/);
    c.replay([Int32Array.of(3, 4) as unknown as Float32Array]); // converted to the slot's dtype
    assert.deepEqual([...(await c.outputs[0]!.read())], [6, 8]);
    c.dispose();
    // Reading back inside a captured step cannot be replayed.
    assert.throws(() => td.captureStep(([v]) => {
      void v!.read();
      return [td.mul(v!, 2)];
    }, [x]), /no reading back/);
    x.dispose();
  } finally {
    td.setBackend(new CpuBackend());
  }
});
