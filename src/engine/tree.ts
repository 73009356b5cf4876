// Parameter trees: nested plain objects of tensors, addressed by dotted names
// ("down_conv1.conv1.kernel"), as checkpoints and optimizers see them.
import { Tensor } from "./tensor.ts";

export type TensorTreeOf = Tensor | { readonly [key: string]: TensorTreeOf };

/** Leaves in a stable order (sorted keys at every level) with their dotted names. */
export function flattenTree(tree: TensorTreeOf, prefix = ""): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  const visit = (node: TensorTreeOf, path: string): void => {
    if (node instanceof Tensor) {
      out.set(path, node);
      return;
    }
    for (const key of Object.keys(node).sort()) {
      if (key.includes(".")) throw new Error(`tree: key '${key}' must not contain '.'`);
      visit(node[key]!, path ? `${path}.${key}` : key);
    }
  };
  visit(tree, prefix);
  return out;
}

/** Builds the nested object from dotted names. */
export function unflattenTree(entries: Iterable<[string, Tensor]>): TensorTreeOf {
  const root: Record<string, unknown> = {};
  for (const [name, t] of entries) {
    const parts = name.split(".");
    let node = root;
    for (const part of parts.slice(0, -1)) {
      const child = node[part];
      if (child instanceof Tensor) throw new Error(`tree: '${name}' conflicts with a tensor at '${part}'`);
      node = (child as Record<string, unknown>) ?? (node[part] = {});
    }
    const leaf = parts[parts.length - 1]!;
    if (leaf in node) throw new Error(`tree: duplicate name '${name}'`);
    node[leaf] = t;
  }
  return root as TensorTreeOf;
}

/** Same structure, each leaf mapped. */
export function mapTree<T extends TensorTreeOf>(tree: T, fn: (t: Tensor, name: string) => Tensor, prefix = ""): T {
  if (tree instanceof Tensor) return fn(tree, prefix) as T;
  const out: Record<string, TensorTreeOf> = {};
  for (const key of Object.keys(tree)) {
    out[key] = mapTree(tree[key] as TensorTreeOf, fn, prefix ? `${prefix}.${key}` : key);
  }
  return out as T;
}

export function treeSize(tree: TensorTreeOf): number {
  let n = 0;
  for (const t of flattenTree(tree).values()) n += t.size;
  return n;
}
