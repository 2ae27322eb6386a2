/**
 * Per-example unit locations and subspaces on large batches (DAS trains on batches of 256 with
 * the same location and subspace listed for every example): the short cuts taken there give
 * what the general path gives, and malformed lists are still reported by example.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as tv from "../src/index.js";
import { broadcastLocations } from "../src/intervene/locations.js";
import { featureSelection } from "../src/intervene/swap.js";
import { gatherUnits, scatterUnits } from "../src/intervene/units.js";

const perExample = <T>(batch: number, row: () => T): T[] => Array.from({ length: batch }, row);

describe("units covering the whole unit axis", () => {
  const view = tv.randn([4, 3, 5], { generator: new tv.Generator(1) });
  const values = tv.randn([4, 3, 5], { generator: new tv.Generator(2) });
  const all = perExample(4, () => [0, 1, 2]);

  it("gather gives the view and scatter the values, as gatherAt and writeAt do", () => {
    const index = tv.intTensor(all);
    assert.equal(gatherUnits(view, "pos", all, "test"), view);
    assert.deepEqual([...gatherUnits(view, "pos", [[0, 1, 2]], "test").data], [...tv.gatherAt(view, 1, index).data]);
    assert.equal(scatterUnits(view, "pos", all, values, "test"), values);
    assert.deepEqual(
      [...scatterUnits(view, "pos", all, values, "test").data],
      [...tv.writeAt(view, 1, index, values).data],
    );
  });
  it("still reports a wrong number of rows and values of the wrong shape", () => {
    assert.throws(
      () =>
        gatherUnits(
          view,
          "pos",
          perExample(3, () => [0, 1, 2]),
          "where",
        ),
      /where: 3 rows of units for a batch of 4 \(expected 4, or 1 for all examples\)/,
    );
    assert.throws(
      () => scatterUnits(view, "pos", all, tv.zeros([4, 3, 4]), "where"),
      /writeAt: values of shape \[4, 3, 4\] do not match the indexed region \[4, 3, 5\]/,
    );
  });
  it("passes gradients to the values as writeAt does", () => {
    const v = values.detach().clone().requireGrad();
    tv.sum(tv.mul(scatterUnits(view, "pos", all, v, "test"), 3)).backward();
    assert.ok((v.grad as tv.Tensor).data.every((g) => g === 3));
  });
  it("gives a view that needs a gradient a zero one, as writeAt does (so an optimiser still steps it)", () => {
    const trainable = view.detach().clone().requireGrad();
    const v = values.detach().clone().requireGrad();
    tv.sum(scatterUnits(trainable, "pos", all, v, "test")).backward();
    assert.deepEqual([...(trainable.grad as tv.Tensor).data], new Array(view.size).fill(0));
    assert.ok((v.grad as tv.Tensor).data.every((g) => g === 1));
  });
});

describe("per-example subspaces on a large batch", () => {
  const batch = 300;
  it("one list repeated per example is a shared selection", () => {
    const subspaces = perExample(batch, () => [0, 1, 2, 3]);
    assert.deepEqual(featureSelection(8, batch, { subspaces }), { kind: "shared", ids: [0, 1, 2, 3] });
  });
  it("one differing example makes the selection per example", () => {
    const subspaces = perExample(batch, () => [4, 5]);
    subspaces[7] = [6, 7];
    const selection = featureSelection(8, batch, { subspaces });
    assert.equal(selection.kind, "perExample");
    assert.deepEqual(selection.ids[7], [6, 7]);
    assert.deepEqual(selection.ids[8], [4, 5]);
  });
  it("names the example with a bad id, after examples that repeat a good list", () => {
    const subspaces = perExample(batch, () => [0, 1]);
    subspaces[5] = [0, 9];
    assert.throws(
      () => featureSelection(8, batch, { subspaces }, "interchange"),
      /interchange: feature index 9 \(example 5\) is out of range for a last axis of width 8 \(expected 0\.\.7\)/,
    );
  });
});

describe("unit locations on a large batch", () => {
  it("are checked without a spread over the examples (which overflows the stack)", () => {
    const batch = 250_000;
    const rows = perExample(batch, () => [0]);
    const locations = broadcastLocations({ "sources->base": [[rows], [rows]] }, batch, new Map([["sources->base", 1]]));
    assert.equal(locations.get("sources->base")?.[1]?.[0], rows);
  });
  it("still reject an example listing a different number of units", () => {
    const rows = perExample(1000, () => [0]);
    rows[600] = [0, 1];
    assert.throws(
      () => broadcastLocations({ "sources->base": [[rows], [rows]] }, 1000, new Map([["sources->base", 1]])),
      /unitLocations\["sources->base"\]\[0\]\[0\]: every example must list the same number of units/,
    );
  });
});
