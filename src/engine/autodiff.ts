// Reverse-mode autodiff over the graph recorded by the ops. With createGraph the
// backward pass is itself recorded, so its results can be differentiated again.
import { onesLike, zerosLike } from "./ops/create.ts";
import { add } from "./ops/elementwise.ts";
import { shapeString, Tensor, withRecording } from "./tensor.ts";
import { flattenTree, mapTree, type TensorTreeOf } from "./tree.ts";

export interface GradientOptions {
  /** Cotangent of the output; defaults to ones (so the output is usually a scalar). */
  seed?: Tensor;
  /** Record the backward pass, for gradients of gradients. */
  createGraph?: boolean;
}

/** Tensors reachable from `output` through recorded nodes, inputs before the ops that use them. */
function topologicalOrder(output: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  const stack: [Tensor, number][] = [[output, 0]];
  visited.add(output);
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const [t, next] = top;
    const inputs = t.node?.inputs ?? [];
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

/** d(output)/d(inputs); inputs that output does not depend on get zeros. */
export function gradients(output: Tensor, inputs: readonly Tensor[], options: GradientOptions = {}): Tensor[] {
  const seed = options.seed ?? onesLike(output);
  if (seed.rank !== output.rank || seed.shape.some((d, i) => d !== output.shape[i])) {
    throw new Error(`gradients: seed ${shapeString(seed.shape)} does not match output ${shapeString(output.shape)}`);
  }
  const createGraph = options.createGraph ?? false;
  const wanted = new Set(inputs);
  const grads = new Map<Tensor, Tensor>([[output, seed]]);
  withRecording(createGraph, () => {
    const order = topologicalOrder(output);
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i]!;
      const g = grads.get(t);
      if (!g || !t.node) continue;
      const inputGrads = t.node.backward(g);
      t.node.inputs.forEach((input, k) => {
        const gi = inputGrads[k];
        if (!gi || !input.requiresGrad) return;
        const previous = grads.get(input);
        grads.set(input, previous ? add(previous, gi) : gi);
      });
    }
  });
  return inputs.map((x) => grads.get(x) ?? zerosLike(x));
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
