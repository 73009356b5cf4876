// Parameter trees: flattenTree / unflattenTree with dotted names, sorted order, errors; mapTree, treeSize.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as td from "../../src/engine/index.ts";
import type { Tensor, TensorTreeOf } from "../../src/engine/index.ts";

function makeTree(): { tree: TensorTreeOf; leaves: Record<string, Tensor> } {
  const leaves = {
    "up.conv.kernel": td.zeros([3, 3, 1, 2]),
    "up.conv.bias": td.zeros([2]),
    "down_conv1.conv1.kernel": td.zeros([3, 3, 2, 2]),
    "attn.wq": td.zeros([2, 2]),
    "Z": td.zeros([1]),
    "a10": td.zeros([1]),
    "a2": td.zeros([1]),
  };
  const tree = {
    up: { conv: { kernel: leaves["up.conv.kernel"], bias: leaves["up.conv.bias"] } },
    down_conv1: { conv1: { kernel: leaves["down_conv1.conv1.kernel"] } },
    attn: { wq: leaves["attn.wq"] },
    a2: leaves.a2,
    a10: leaves.a10,
    Z: leaves.Z,
  };
  return { tree, leaves };
}

describe("flattenTree / unflattenTree", () => {
  test("dotted names in sorted order (keys sorted at every level, code-unit order)", () => {
    td.tidy(() => {
      const { tree, leaves } = makeTree();
      const flat = td.flattenTree(tree);
      assert.deepEqual([...flat.keys()], ["Z", "a10", "a2", "attn.wq", "down_conv1.conv1.kernel", "up.conv.bias", "up.conv.kernel"]);
      for (const [name, t] of flat) assert.equal(t, leaves[name], `${name} is the same tensor object`);
      assert.deepEqual([...td.flattenTree(tree, "model").keys()].slice(0, 2), ["model.Z", "model.a10"]);
    });
  });

  test("round trip: unflatten(flatten(t)) has the same structure and leaves, in any entry order", () => {
    td.tidy(() => {
      const { tree } = makeTree();
      const flat = td.flattenTree(tree);
      const back = td.unflattenTree(flat);
      assert.deepEqual(Object.keys(back).sort(), Object.keys(tree).sort());
      const again = td.flattenTree(back);
      assert.deepEqual([...again.entries()], [...flat.entries()]);
      const shuffled = td.unflattenTree([...flat.entries()].reverse());
      assert.deepEqual([...td.flattenTree(shuffled).entries()], [...flat.entries()]);
      const t = (back as Record<string, Record<string, Record<string, Tensor>>>).up!.conv!.kernel!;
      assert.deepEqual([...t.shape], [3, 3, 1, 2]);
      assert.deepEqual(td.flattenTree({}).size, 0);
      assert.deepEqual(td.unflattenTree([]), {});
    });
  });

  test("errors: a dot inside a key, duplicate names, a tensor where a subtree is needed", () => {
    td.tidy(() => {
      const t = td.zeros([1]);
      assert.throws(() => td.flattenTree({ a: { "b.c": t } }), /tree: key 'b\.c' must not contain '\.'/);
      assert.throws(() => td.unflattenTree([["a.b", t], ["a.b", t]]), /tree: duplicate name 'a\.b'/);
      assert.throws(() => td.unflattenTree([["a", t], ["a.b", t]]), /tree: 'a\.b' conflicts with a tensor at 'a'/);
      assert.throws(() => td.unflattenTree([["a.b", t], ["a", t]]), /tree: duplicate name 'a'/);
    });
  });
});

describe("mapTree / treeSize", () => {
  test("mapTree keeps the structure and passes dotted names; treeSize counts elements", () => {
    td.tidy(() => {
      const { tree } = makeTree();
      const seen: string[] = [];
      const mapped = td.mapTree(tree, (t, name) => {
        seen.push(name);
        return td.full(t.shape, name.length, "float64");
      });
      assert.deepEqual(seen.sort(), [...td.flattenTree(tree).keys()].sort());
      const flatMapped = td.flattenTree(mapped);
      assert.equal(flatMapped.get("up.conv.kernel")!.data[0], "up.conv.kernel".length);
      assert.equal(flatMapped.get("up.conv.kernel")!.dtype, "float64");
      assert.equal(td.treeSize(tree), 18 + 2 + 36 + 4 + 1 + 1 + 1);
      assert.equal(td.treeSize(td.zeros([4, 5])), 20);
    });
  });
});
