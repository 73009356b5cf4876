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
import { sameShape, stopGradient } from "./ops/elementwise.ts";

/** One input of a replay (see CapturedStep.replay). */
export type ReplayInput = TypedArray | Tensor | { readonly from: Tensor; readonly offset: number } | null;

/** Options of captureStep. */
export interface CaptureOptions {
  /**
   * [output, input] pairs: the output is the next run's value of the input (a training step's weights). A
   * replay then reads it where the last run wrote it, without a copy (the backend keeps a second version of
   * the commands with the two buffers exchanged, and replays alternate), so pass null for such an input.
   * After the capture and after each replay, outputs[o] and inputs[i] are the same tensor: the current value.
   */
  feedback?: readonly (readonly [number, number])[];
}

export interface CapturedStep {
  /** The input slots (copies of the initial inputs; fed-back ones hold the current value); a replay writes its values into them. */
  readonly inputs: readonly Tensor[];
  /** The outputs, rewritten by each replay: read them (or copy them) before the next one. */
  readonly outputs: readonly Tensor[];
  /** Every tensor the capture owns (its slots and outputs, fed-back ones in both places): what dispose frees. */
  readonly tensors: readonly Tensor[];
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
export function captureStep(fn: (inputs: Tensor[]) => Tensor[], initial: readonly Tensor[], options: CaptureOptions = {}): CapturedStep {
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
  const feedback = options.feedback ?? [];
  try {
    checkFeedback(feedback, inputs, outputs);
  } catch (e) {
    recorded.dispose();
    for (const t of [...inputs, ...outputs]) t.dispose();
    throw e;
  }
  if (feedback.length > 0) recorded.swap(feedback.map(([o, i]) => [inputs[i]!.storage, outputs[o]!.storage] as const));
  const fedBack = new Set(feedback.map(([, i]) => i));
  // Where the fed-back values are now: in the outputs after the capture, in the slots after the next replay, ...
  let stateInOutputs = true;
  let disposed = false;
  return {
    get inputs() {
      const current = [...inputs];
      if (stateInOutputs) for (const [o, i] of feedback) current[i] = outputs[o]!;
      return current;
    },
    get outputs() {
      const current = [...outputs];
      if (!stateInOutputs) for (const [o, i] of feedback) current[o] = inputs[i]!;
      return current;
    },
    tensors: [...inputs, ...outputs],
    dispatches: recorded.dispatches,
    replay(values, replayOptions = {}) {
      if (disposed) throw new Error("captureStep: replay after dispose");
      if (values.length !== inputs.length) throw new Error(`captureStep: ${values.length} values for ${inputs.length} inputs`);
      const writes: [Tensor["storage"], TypedArray][] = [];
      const copies: [Tensor["storage"], Tensor["storage"], number][] = [];
      values.forEach((v, i) => {
        const slot = inputs[i]!;
        if (fedBack.has(i)) {
          if (v !== null) throw new Error(`captureStep: input ${i} is fed back from an output; pass null for it`);
          return;
        }
        if (v === null) return;
        if (v instanceof Tensor) {
          if (v.dtype !== slot.dtype || !sameShape(v.shape, slot.shape)) {
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
      // With the fed-back values in the outputs, the swapped commands read them there (and write the slots).
      recorded.replay(writes, copies, replayOptions.submit ?? true, feedback.length > 0 && stateInOutputs);
      if (feedback.length > 0) stateInOutputs = !stateInOutputs;
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      recorded.dispose();
      for (const t of [...inputs, ...outputs]) t.dispose();
    },
  };
}

function checkFeedback(feedback: readonly (readonly [number, number])[], inputs: readonly Tensor[], outputs: readonly Tensor[]): void {
  const seenOutputs = new Set<number>();
  const seenInputs = new Set<number>();
  for (const [o, i] of feedback) {
    const out = outputs[o];
    const slot = inputs[i];
    if (!out || !slot) throw new Error(`captureStep: feedback [${o}, ${i}] names no output ${o} or input ${i}`);
    if (seenOutputs.has(o) || seenInputs.has(i)) throw new Error(`captureStep: output ${o} or input ${i} is fed back twice`);
    seenOutputs.add(o);
    seenInputs.add(i);
    if (out.dtype !== slot.dtype || !sameShape(out.shape, slot.shape)) {
      throw new Error(`captureStep: output ${o} is [${out.shape.join(",")}] ${out.dtype}, fed back into input ${i} [${slot.shape.join(",")}] ${slot.dtype}`);
    }
  }
}
