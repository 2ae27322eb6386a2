/**
 * Recycling dead intermediates (tensor/storage.ts, nn/recycle.ts): the storage hands a recycled
 * array to the next output of its length and keeps only whole, large arrays once, dropping the lengths
 * least recently used when full; modules recycle
 * nothing a hook or a gradient could hold; and a GPT-2 forward never overwrites a tensor that a
 * hook on any one of its modules saw, nor changes its results.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { quietSubmodules, recycleIntermediate } from "../src/nn/recycle.js";
import * as tv from "../src/index.js";
import { Container, Linear } from "../src/nn/index.js";
import { recycle, uninitialized } from "../src/tensor/storage.js";
import { fixtureFolder } from "./support/fixtures.js";

describe("recycled storage", () => {
  it("goes to the next output of its length, once", () => {
    const array = uninitialized(3001);
    recycle(array);
    recycle(array);
    assert.equal(uninitialized(3001), array);
    assert.notEqual(uninitialized(3001), array, "recycling twice does not hand it out twice");
  });

  it("makes room for new lengths by dropping those least recently used", () => {
    // Four arrays of just under 16 MiB fill the pool's 64 MiB; a fifth length must evict one.
    const lengths = [0, 1, 2, 3, 4].map((i) => (1 << 22) - 16 * (i + 1));
    const arrays = lengths.map((length) => uninitialized(length));
    for (const array of arrays.slice(0, 4)) recycle(array);
    assert.equal(uninitialized(lengths[0]), arrays[0], "the oldest length is still kept while there is room");
    recycle(arrays[0]);
    recycle(arrays[4]);
    assert.equal(uninitialized(lengths[4]), arrays[4], "a new length is kept once the pool is full");
    assert.notEqual(uninitialized(lengths[1]), arrays[1], "the least recently used length made room");
    assert.equal(uninitialized(lengths[0]), arrays[0], "a length just used again stays");
    assert.equal(uninitialized(lengths[2]), arrays[2]);
  });

  it("keeps neither small arrays nor views that share their buffer", () => {
    const small = new Float32Array(1000);
    recycle(small);
    assert.notEqual(uninitialized(1000), small);
    const view = new Float32Array(6004).subarray(0, 3002);
    recycle(view);
    assert.notEqual(uninitialized(3002), view);
  });

  it("is not taken from a tensor that a hook or a gradient could still hold", () => {
    const inner = new Linear(2, 2);
    const parent = new (class extends Container {
      readonly child = this.module("child", inner);
      readonly sibling = this.module("sibling", new Linear(2, 2));
    })();
    const consumer = tv.zeros([2]);
    const intermediate = () => new tv.Tensor(uninitialized(3003), [3003]);
    const recycledFrom = (t: tv.Tensor) => uninitialized(3003) === t.data;

    const handle = inner.addPostHook(() => undefined);
    const quietWhileHooked = quietSubmodules(parent, tv.zeros([1024]));
    assert.deepEqual([...quietWhileHooked], [parent.sibling]);
    const seenByHooked = intermediate();
    recycleIntermediate(seenByHooked, consumer, quietWhileHooked, parent.child);
    assert.ok(!recycledFrom(seenByHooked), "a hook below the module may hold it");
    handle.remove();
    const seenBeforeRemoval = intermediate();
    recycleIntermediate(seenBeforeRemoval, consumer, quietWhileHooked, parent.child);
    assert.ok(!recycledFrom(seenBeforeRemoval), "a hook removed during the pass may have kept it");

    assert.equal(quietSubmodules(parent, tv.zeros([1023])).size, 0, "a pass on inputs too small to recycle");
    const quiet = quietSubmodules(parent, tv.zeros([1024]));
    const needsGradient = intermediate();
    recycleIntermediate(needsGradient, tv.zeros([2]).requireGrad(), quiet, parent.child);
    assert.ok(!recycledFrom(needsGradient), "the consumer's gradient node holds it");
    const hookedLater = intermediate();
    const late = inner.addPreHook(() => undefined);
    recycleIntermediate(hookedLater, consumer, quiet, parent.child);
    late.remove();
    assert.ok(!recycledFrom(hookedLater), "a hook attached during the pass may hold it");
    const dead = intermediate();
    recycleIntermediate(dead, consumer, quiet, parent.child, parent.sibling);
    assert.ok(recycledFrom(dead));
  });
});

describe("a GPT-2 forward recycling its intermediates", async () => {
  const { model } = await tv.loadPretrained(fixtureFolder("gpt2_tiny"));
  // 4 × 16 positions of width 32: every activation is large enough to be recycled.
  const rows = Array.from({ length: 4 }, (_, b) => Array.from({ length: 16 }, (_, t) => (7 * b + 3 * t) % 100));
  const ids = tv.intTensor(rows);
  const mask = tv.intTensor(rows.map((row) => row.map(() => 1)));
  const logits = () => tv.noGrad(() => model.run({ inputIds: ids, attentionMask: mask }).logits);

  it("gives the same logits run after run", () => {
    const first = logits();
    assert.deepEqual(logits().data, first.data);
    assert.deepEqual(logits().data, first.data);
  });

  it("leaves every tensor a hook saw as it was, whichever module of a block has the hook", () => {
    const blockModules = [...model.namedModules()].filter(([path]) => /^transformer\.h\.1(\.|$)/.test(path));
    assert.ok(blockModules.length > 10);
    for (const [path, module] of blockModules) {
      const seen: { tensor: tv.Tensor; copy: Float32Array; what: string }[] = [];
      const keep = (tensor: unknown, what: string) => {
        if (tensor instanceof tv.Tensor) seen.push({ tensor, copy: tensor.data.slice(), what });
      };
      const handles = [
        module.addPreHook((_m: unknown, input: unknown) => keep(input, "input")),
        module.addPostHook((_m: unknown, _input: unknown, output: tv.Tensor) => keep(output, "output")),
      ];
      try {
        logits();
        logits();
      } finally {
        for (const h of handles) h.remove();
      }
      assert.ok(seen.length > 0, `${path} ran`);
      for (const { tensor, copy, what } of seen) assert.deepEqual(tensor.data, copy, `${path} ${what} was overwritten`);
    }
  });
});
