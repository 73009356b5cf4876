// Capturing a step: run a function once while the backend records its commands, then replay them on new
// input values without running the frontend again (WebGPU: a sampler step's ~140 dispatches re-encoded in
// well under a millisecond, instead of building tensors, fusing and looking up bind groups every step).
//
// The captured function must be pure in its tensor inputs: whatever it derives from host values (numbers,
// arrays, random draws) is frozen at capture. Values that change per step are inputs. It must not read
// values back, nor dispose tensors it did not create. The tensors it reads besides its inputs (e.g. a
// model's weights) must stay alive while the capture is used.
import type { Recording, TypedArray } from "./backend.ts";
import { Tensor, getBackend, keep, noGrad, tidy } from "./tensor.ts";
import { stopGradient } from "./ops/elementwise.ts";

/** One input of a replay (see CapturedStep.replay). */
export type ReplayInput = TypedArray | Tensor | { readonly from: Tensor; readonly offset: number } | null;

export interface CapturedStep {
  /** The input slots (copies of the initial inputs); a replay writes its values into them. */
  readonly inputs: readonly Tensor[];
  /** The outputs, rewritten in place by each replay: read them (or copy them) before the next one. */
  readonly outputs: readonly Tensor[];
  /** Dispatches recorded. */
  readonly dispatches: number;
  /**
   * Runs the step again on new inputs, one per input slot: host values (written), a tensor of the same
   * shape and dtype (copied on the device: an output of this step feeds the next), a slice of a tensor
   * ({ from, offset }: the slot's size in elements from `offset` of a same-dtype tensor, e.g. one row of a
   * table of every step's inputs), or null (unchanged). `submit: false` leaves the step unsubmitted, so the
   * next replays join it in one submit (less host work per step; host values submit what is pending first).
   */
  replay(values: readonly ReplayInput[], options?: { submit?: boolean }): void;
  /** Frees the slots, the outputs and the recording. */
  dispose(): void;
}

/** Whether the active backend can record steps (device backends; host backends run each op at once). */
export function canCapture(): boolean {
  return typeof getBackend().startRecording === "function";
}

/**
 * Runs fn(inputs) once, under noGrad, on copies of `initial` while the backend records it; returns the
 * outputs and a replay. Throws when the backend cannot record (see canCapture).
 */
export function captureStep(fn: (inputs: Tensor[]) => Tensor[], initial: readonly Tensor[]): CapturedStep {
  const backend = getBackend();
  if (!backend.startRecording) throw new Error(`captureStep: the ${backend.name} backend cannot record steps (only device backends can)`);
  for (const t of initial) if (t.dtype === "float64") throw new Error("captureStep: float64 inputs stay on host backends");
  const inputs = noGrad(() => initial.map((t) => keep(stopGradient(t))));
  let outputs: Tensor[] = [];
  let recording: Recording | null = null;
  const stop = backend.startRecording();
  try {
    outputs = keep(noGrad(() => tidy(() => fn(inputs))));
    for (const o of outputs) if (inputs.includes(o)) throw new Error("captureStep: an output must not be an input slot (return a copy)");
  } finally {
    recording = stop(outputs.map((o) => o.storage));
    if (outputs.length === 0) {
      recording.dispose(); // fn threw (or returned nothing): nothing to replay
      for (const t of inputs) t.dispose();
    }
  }
  if (outputs.length === 0) throw new Error("captureStep: the function returned no outputs");
  const recorded = recording;
  let disposed = false;
  return {
    inputs,
    outputs,
    dispatches: recorded.dispatches,
    replay(values, options = {}) {
      if (disposed) throw new Error("captureStep: replay after dispose");
      if (values.length !== inputs.length) throw new Error(`captureStep: ${values.length} values for ${inputs.length} inputs`);
      const writes: [Tensor["storage"], TypedArray][] = [];
      const copies: [Tensor["storage"], Tensor["storage"], number][] = [];
      values.forEach((v, i) => {
        const slot = inputs[i]!;
        if (v === null) return;
        if (v instanceof Tensor) {
          if (v.dtype !== slot.dtype || v.shape.length !== slot.shape.length || v.shape.some((d, k) => d !== slot.shape[k])) {
            throw new Error(`captureStep: input ${i} is [${slot.shape.join(",")}] ${slot.dtype}, got [${v.shape.join(",")}] ${v.dtype}`);
          }
          copies.push([v.storage, slot.storage, 0]);
        } else if (!ArrayBuffer.isView(v)) {
          if (v.from.dtype !== slot.dtype) throw new Error(`captureStep: input ${i} is ${slot.dtype}, got a slice of ${v.from.dtype}`);
          if (!(Number.isInteger(v.offset) && v.offset >= 0 && v.offset + slot.size <= v.from.size)) {
            throw new Error(`captureStep: input ${i} takes ${slot.size} elements from offset ${v.offset} of a tensor of ${v.from.size}`);
          }
          copies.push([v.from.storage, slot.storage, v.offset]);
        } else {
          if (v.length !== slot.size) throw new Error(`captureStep: input ${i} has ${slot.size} elements, got ${v.length}`);
          const typed = slot.dtype === "int32" ? (v instanceof Int32Array ? v : Int32Array.from(v)) : v instanceof Float32Array ? v : Float32Array.from(v);
          writes.push([slot.storage, typed]);
        }
      });
      recorded.replay(writes, copies, options.submit ?? true);
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      recorded.dispose();
      for (const t of [...inputs, ...outputs]) t.dispose();
    },
  };
}
