// Reverse-mode autodiff over the graph recorded by the ops. With createGraph the
// backward pass is itself recorded, so its results can be differentiated again.
import { onesLike, zerosLike } from "./ops/create.ts";
import { add } from "./ops/elementwise.ts";
import { isRecording, needsGrad, nextTensorId, shapeString, Tensor, tidy, withNeeded, withRecording } from "./tensor.ts";
import { flattenTree, mapTree, type TensorTreeOf } from "./tree.ts";

export interface GradientOptions {
  /** Cotangent of the output; defaults to ones (so the output is usually a scalar). */
  seed?: Tensor;
  /** Record the backward pass, for gradients of gradients. */
  createGraph?: boolean;
}

/**
 * Tensors reachable from `output` through recorded nodes, inputs before the ops that use them; the graph is
 * not followed past the tensors in `stops`.
 */
function topologicalOrder(output: Tensor, stops: ReadonlySet<Tensor>): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  const stack: [Tensor, number][] = [[output, 0]];
  visited.add(output);
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const [t, next] = top;
    const inputs = stops.has(t) ? [] : (t.node?.inputs ?? []);
    if (next < inputs.length) {
      top[1]++;
      const input = inputs[next]!;
      if (input.requiresGrad && !visited.has(input)) {
        visited.add(input);
        stack.push([input, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order;
}

/**
 * d(output)/d(inputs); inputs that output does not depend on get zeros.
 *
 * Without createGraph the backward pass frees as it goes: each node's rule runs in its own tidy scope (its
 * temporaries are disposed when it returns), and a gradient tensor made by this call is disposed as soon as
 * no entry of the gradient map holds it any more (its node has run, or it was summed into another) unless it
 * is a result. Gradients are reference counted because rules share them (add's rule returns [g, g]; sumTo
 * may return its argument). Tensors made before the call (the seed, forward values) are never freed here.
 * With createGraph the recorded backward graph references its intermediates, so nothing is freed.
 */
export function gradients(output: Tensor, inputs: readonly Tensor[], options: GradientOptions = {}): Tensor[] {
  return gradientsUpTo(output, inputs, options, new Set());
}

/** gradients(), not following the graph past the tensors in `stops` (they act as leaves). */
function gradientsUpTo(output: Tensor, inputs: readonly Tensor[], options: GradientOptions, stops: ReadonlySet<Tensor>): Tensor[] {
  const firstOwned = nextTensorId();
  const seed = options.seed ?? onesLike(output);
  if (seed.rank !== output.rank || seed.shape.some((d, i) => d !== output.shape[i])) {
    throw new Error(`gradients: seed ${shapeString(seed.shape)} does not match output ${shapeString(output.shape)}`);
  }
  const createGraph = options.createGraph ?? false;
  const free = !createGraph;
  const wanted = new Set(inputs);
  const grads = new Map<Tensor, Tensor>();
  /** How many entries of `grads` hold each tensor. */
  const refs = new Map<Tensor, number>();
  const release = (t: Tensor): void => {
    const n = (refs.get(t) ?? 0) - 1;
    if (n > 0) return void refs.set(t, n);
    refs.delete(t);
    if (free && t.id >= firstOwned) t.dispose();
  };
  const setGrad = (t: Tensor, g: Tensor): void => {
    const previous = grads.get(t);
    grads.set(t, g);
    refs.set(g, (refs.get(g) ?? 0) + 1);
    if (previous) release(previous);
  };
  setGrad(output, seed);
  const order = topologicalOrder(output, stops);
  // Tensors on a path to an input being differentiated (inputs come before their users in `order`).
  const needed = new Set<Tensor>();
  for (const t of order) if (wanted.has(t) || t.node?.inputs.some((x) => needed.has(x))) needed.add(t);
  withNeeded(needed, () => withRecording(createGraph, () => {
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i]!;
      const g = grads.get(t);
      if (!g || !t.node || stops.has(t) || !t.node.inputs.some((x) => needed.has(x))) continue;
      const node = t.node;
      const inputGrads = free ? tidy(() => node.backward(g)) : node.backward(g);
      node.inputs.forEach((input, k) => {
        const gi = inputGrads[k];
        if (!gi || !needed.has(input)) return;
        const previous = grads.get(input);
        setGrad(input, previous ? add(previous, gi) : gi);
      });
      if (free) {
        // This node's gradient is consumed; so is every returned gradient that no entry holds.
        if (!wanted.has(t)) {
          grads.delete(t);
          release(g);
        }
        for (const gi of inputGrads) if (gi && !refs.has(gi) && gi.id >= firstOwned) gi.dispose();
      }
    }
  }));
  const results = inputs.map((x) => grads.get(x) ?? zerosLike(x));
  if (free) {
    // Gradients of leaves that were not asked for.
    for (const [t, g] of grads) if (!wanted.has(t)) release(g);
  }
  return results;
}

/**
 * For backward rules: the vector-Jacobian product of a differentiable composite `f` at `inputs` with the
 * cotangent `seed`, as partial derivatives (the inputs are independent here even when one was computed from
 * another, so the graph is not followed past them); null for the inputs the running backward pass does not
 * need. Lets an op run as one kernel whose own gradient is its composite's: f is evaluated again, recorded,
 * and its backward recorded too when the running pass is (so every order of derivative stays exact).
 */
export function compositeVjp(f: (...inputs: Tensor[]) => Tensor, inputs: readonly Tensor[], seed: Tensor): (Tensor | null)[] {
  const wanted = [...new Set(inputs)].filter((t) => needsGrad(t));
  if (wanted.length === 0) return inputs.map(() => null);
  const createGraph = isRecording();
  const output = withNeeded(null, () => withRecording(true, () => f(...inputs)));
  const grads = gradientsUpTo(output, wanted, { seed, createGraph }, new Set(inputs));
  // A tensor passed twice gets its whole gradient once (the caller sums the positions).
  return inputs.map((t, i) => {
    const k = wanted.indexOf(t);
    return k < 0 || inputs.indexOf(t) !== i ? null : grads[k]!;
  });
}

/** Marks the tensors of a tree as variables for the duration of fn. */
function withVariables<T>(leaves: readonly Tensor[], fn: () => T): T {
  const before = leaves.map((t) => t.requiresGrad);
  for (const t of leaves) t.requiresGrad = true;
  try {
    return withRecording(true, fn);
  } finally {
    leaves.forEach((t, i) => (t.requiresGrad = before[i]!));
  }
}

/** Like jax.value_and_grad over a tree of tensors: returns f(params) and df/dparams shaped like params. */
export function valueAndGrad<P extends TensorTreeOf, A extends unknown[]>(
  f: (params: P, ...args: A) => Tensor,
  options: Omit<GradientOptions, "seed"> = {},
): (params: P, ...args: A) => { value: Tensor; grads: P } {
  return (params, ...args) => {
    const leaves = [...flattenTree(params).values()];
    return withVariables(leaves, () => {
      const value = f(params, ...args);
      const gs = gradients(value, leaves, options);
      const byTensor = new Map(leaves.map((t, i) => [t, gs[i]!]));
      return { value, grads: mapTree(params, (t) => byTensor.get(t)!) };
    });
  };
}

/** Like jax.grad: the gradient of a scalar function with respect to its first argument. */
export function grad<P extends TensorTreeOf, A extends unknown[]>(
  f: (params: P, ...args: A) => Tensor,
  options: Omit<GradientOptions, "seed"> = {},
): (params: P, ...args: A) => P {
  const vg = valueAndGrad(f, options);
  return (params, ...args) => vg(params, ...args).grads;
}

/** Differentiates with respect to a tensor that is not a parameter (e.g. the input image). */
export function gradOfInput(f: (x: Tensor) => Tensor, x: Tensor, options: Omit<GradientOptions, "seed"> = {}): Tensor {
  return withVariables([x], () => gradients(f(x), [x], options)[0]!);
}
