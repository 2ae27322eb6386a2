/**
 * The hooks pyreft builds on (InterventionOutput, interventionAdditionalKwargs, asAdaptor), useFast
 * and addIntervention / getCachedActivations, on the tiny GPT-2 fixture. The truths are built
 * independently of the hooks: hidden states of a plain run, edited by hand and run on from the
 * next block (resumeFrom), and pyvene's own golden values (spec §4.9, §4.10, §10).
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as tv from "../src/index.js";
import type { AnyModule } from "../src/nn/index.js";
import { fixtureFolder } from "./support/fixtures.js";

const D = 32;
const T = 6;
const base = {
  inputIds: tv.intTensor([
    [83, 54, 22, 99, 51, 27],
    [3, 74, 81, 8, 16, 20],
  ]),
};
const source = {
  inputIds: tv.intTensor([
    [54, 46, 23, 32, 54, 30],
    [0, 67, 14, 99, 95, 51],
  ]),
};

function hookCount(model: AnyModule): number {
  let n = 0;
  for (const [, m] of model.namedModules()) n += m.hookCount;
  return n;
}

/** The D values of example b at position p of a [B, T, D] tensor. */
function at(t: tv.Tensor, b: number, p: number): number[] {
  return Array.from(t.data.subarray((b * T + p) * D, (b * T + p + 1) * D));
}

/** A copy of `hidden` [B, T, D] with example b's position p replaced by `values`. */
function withRow(hidden: tv.Tensor, b: number, p: number, values: ArrayLike<number>): tv.Tensor {
  const data = hidden.data.slice();
  data.set(values, (b * T + p) * D);
  return new tv.Tensor(data, hidden.shape);
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-5): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < actual.length; i++)
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `index ${i}: ${actual[i]} vs ${expected[i]}`);
}

/** A source-constant intervention that doubles its units, with the units as latent, recording what it got. */
class DoublingWithLatent extends tv.Intervention {
  readonly typeName = "DoublingWithLatent";
  readonly seen: tv.InterventionInput[] = [];

  override get sourceConstant(): boolean {
    return true;
  }

  override apply(units: tv.Tensor, input: tv.InterventionInput): tv.InterventionOutput {
    this.seen.push(input);
    return new tv.InterventionOutput({ output: this.call(units, input), latent: units });
  }

  protected forward(units: tv.Tensor): tv.Tensor {
    return tv.mul(units, 2);
  }
}

/** A source-based interchange that records what it got. */
class RecordingVanilla extends tv.VanillaIntervention {
  readonly seen: tv.InterventionInput[] = [];

  override apply(units: tv.Tensor, input: tv.InterventionInput): tv.Tensor | null {
    this.seen.push(input);
    return super.apply(units, input) as tv.Tensor | null;
  }
}

describe("adaptor hooks and pyvene's helpers on IntervenableModel (tiny GPT-2)", () => {
  let model: tv.PretrainedModel;
  let clean: tv.Tensor[];
  let sourceStates: tv.Tensor[];
  /** Logits of the base run resumed at block `layer` from `hidden`. */
  const resume = (layer: number, hidden: tv.Tensor) => model.run({ ...base, resumeFrom: { layer, hidden } }).logits;

  before(async () => {
    model = (await tv.loadPretrained(fixtureFolder("gpt2_tiny"))).model;
    clean = model.run({ ...base, outputHiddenStates: true }).hiddenStates!;
    sourceStates = model.run({ ...source, outputHiddenStates: true }).hiddenStates!;
  });

  describe("InterventionOutput", () => {
    it("writes the output, lists the object with its latent, and starts a new list each call", () => {
      const doubling = new DoublingWithLatent();
      const im = new tv.IntervenableModel({ layer: 1, component: "block_output", intervention: doubling }, model);
      const first = im.forward(base, null, { unitLocations: { base: [[[2], [4]]] } });
      assert.equal(first.fullInterventionOutputs.length, 1);
      const { latent, output } = first.fullInterventionOutputs[0] as tv.InterventionOutput<tv.Tensor>;
      // The latent is the gathered block-1 output: example 0 at position 2, example 1 at position 4.
      assert.deepEqual(latent!.shape, [2, 1, D]);
      assertClose(latent!.data.subarray(0, D), at(clean[2], 0, 2));
      assertClose(latent!.data.subarray(D), at(clean[2], 1, 4));
      assertClose(output.data, tv.mul(latent!, 2).data);
      // Downstream the doubled units are what block 2 reads.
      let edited = withRow(clean[2], 0, 2, tv.mul(tv.tensor(at(clean[2], 0, 2)), 2).data);
      edited = withRow(edited, 1, 4, tv.mul(tv.tensor(at(clean[2], 1, 4)), 2).data);
      assertClose(first.intervened.logits.data, resume(2, edited).data, 1e-4);

      const second = im.forward(base, null, { unitLocations: { base: 3 } });
      assert.equal(second.fullInterventionOutputs.length, 1);
      assertClose((second.fullInterventionOutputs[0].latent as tv.Tensor).data.subarray(0, D), at(clean[2], 0, 3));
      assert.equal(first.fullInterventionOutputs.length, 1, "the first call's list is its own");
      assert.equal(hookCount(model), 0);
    });

    it("is also unwrapped for a source-based intervention (pyvene fails there) and for Collect", () => {
      class VanillaWithLatent extends tv.VanillaIntervention {
        override apply(units: tv.Tensor, input: tv.InterventionInput): tv.InterventionOutput {
          return new tv.InterventionOutput({ output: super.apply(units, input) as tv.Tensor, latent: "swapped" });
        }
      }
      const im = new tv.IntervenableModel(
        { layer: 1, component: "block_output", intervention: new VanillaWithLatent() },
        model,
      );
      const { intervened, fullInterventionOutputs } = im.forward(base, [source], {
        unitLocations: { "sources->base": 3 },
      });
      assert.deepEqual(
        fullInterventionOutputs.map((o) => o.latent),
        ["swapped"],
      );
      const patched = withRow(withRow(clean[2], 0, 3, at(sourceStates[2], 0, 3)), 1, 3, at(sourceStates[2], 1, 3));
      assertClose(intervened.logits.data, resume(2, patched).data, 1e-4);

      class CollectWithLatent extends tv.CollectIntervention {
        override apply(units: tv.Tensor, input: tv.InterventionInput): tv.InterventionOutput {
          return new tv.InterventionOutput({ output: super.apply(units, input) as tv.Tensor, latent: 7 });
        }
      }
      const collector = new tv.IntervenableModel(
        { layer: 2, component: "block_output", intervention: new CollectWithLatent() },
        model,
      );
      const collected = collector.forward(base, null, { unitLocations: { base: 5 } });
      assert.deepEqual(collected.collected[0].shape, [2, 1, D]);
      assertClose(collected.collected[0].data.subarray(0, D), at(clean[3], 0, 5));
      assert.equal(collected.fullInterventionOutputs[0].latent, 7);
    });

    it("a distributed intervention's latent is as it returned it (flat) and its output is unflattened", () => {
      class FlatLatent extends tv.DistributedTrainableIntervention {
        readonly typeName = "FlatLatent";
        override get sourceConstant(): boolean {
          return true;
        }
        override apply(units: tv.Tensor, input: tv.InterventionInput): tv.InterventionOutput {
          return new tv.InterventionOutput({ output: this.call(units, input), latent: units });
        }
        protected forward(units: tv.Tensor): tv.Tensor {
          return units;
        }
      }
      const im = new tv.IntervenableModel(
        { layer: 1, component: "block_output", maxNumberOfUnits: 2, intervention: new FlatLatent() },
        model,
      );
      const { intervened, fullInterventionOutputs } = im.forward(base, null, {
        unitLocations: {
          base: [
            [
              [1, 2],
              [3, 4],
            ],
          ],
        },
      });
      const [{ output, latent }] = fullInterventionOutputs as tv.InterventionOutput<tv.Tensor>[];
      assert.deepEqual(latent!.shape, [2, 2 * D]);
      assert.deepEqual(output.shape, [2, 2, D]);
      assertClose(latent!.data, [
        ...at(clean[2], 0, 1),
        ...at(clean[2], 0, 2),
        ...at(clean[2], 1, 3),
        ...at(clean[2], 1, 4),
      ]);
      assertClose(intervened.logits.data, model.run(base).logits.data);
    });

    it("an apply that returns something else is an error naming the intervention", () => {
      class Broken extends tv.ZeroIntervention {
        override apply(): tv.Tensor {
          return [1, 2] as unknown as tv.Tensor;
        }
      }
      const im = new tv.IntervenableModel({ layer: 0, component: "block_output", intervention: new Broken() }, model);
      assert.throws(
        () => im.forward(base, null, { unitLocations: { base: 1 } }),
        /ZeroIntervention\.apply must return/,
      );
      assert.equal(hookCount(model), 0);
    });
  });

  describe("interventionAdditionalKwargs and asAdaptor", () => {
    it("reach source-constant and Collect interventions only (pyvene's paths); the caller's object stays", () => {
      const constant = new DoublingWithLatent();
      const swapped = new RecordingVanilla();
      const im = new tv.IntervenableModel(
        [
          { layer: 0, component: "block_output", intervention: constant },
          { layer: 1, component: "block_output", intervention: swapped },
        ],
        model,
      );
      const extra = { scale: 3 };
      im.forward(base, [null, source], {
        unitLocations: { "sources->base": 1 },
        intervention_additional_kwargs: extra,
      } as tv.ForwardOptions);
      assert.deepEqual(constant.seen[0].kwargs, { scale: 3 });
      assert.equal(swapped.seen[0].kwargs, undefined);
      assert.deepEqual(extra, { scale: 3 });
    });

    it("with asAdaptor, args is the site module's input at the same units (block_output: the block's input)", () => {
      const constant = new DoublingWithLatent();
      const im = new tv.IntervenableModel({ layer: 2, component: "block_output", intervention: constant }, model, {
        as_adaptor: true,
      } as tv.IntervenableOptions);
      const extra = { scale: 3 };
      im.forward(base, null, {
        unitLocations: { base: [[[1], [5]]] },
        interventionAdditionalKwargs: extra,
      });
      const { args, scale } = constant.seen[0].kwargs as { args: tv.Tensor; scale: number };
      assert.equal(scale, 3);
      assert.deepEqual(args.shape, [2, 1, D]);
      assertClose(args.data.subarray(0, D), at(clean[2], 0, 1));
      assertClose(args.data.subarray(D), at(clean[2], 1, 5));
      assert.deepEqual(extra, { scale: 3 }, "pyvene writes args into the caller's dict; tsvene does not");

      const atInput = new DoublingWithLatent();
      const inputSite = new tv.IntervenableModel({ layer: 2, component: "block_input", intervention: atInput }, model, {
        asAdaptor: true,
      });
      inputSite.forward(base, null, { unitLocations: { base: 4 } });
      const inputArgs = (atInput.seen[0].kwargs as { args: tv.Tensor }).args;
      assertClose(inputArgs.data.subarray(0, D), at(clean[2], 0, 4));
      assert.equal(hookCount(model), 0);
    });

    it("refuses extra arguments no intervention gets, a caller's args under asAdaptor, and non-objects", () => {
      const sourceBased = new tv.IntervenableModel({ layer: 1, component: "block_output" }, model);
      assert.throws(
        () =>
          sourceBased.forward(base, [source], { unitLocations: { base: 1 }, interventionAdditionalKwargs: { a: 1 } }),
        /interventionAdditionalKwargs: the extra arguments reach only Collect and source-constant/,
      );
      const adaptorOfNothing = new tv.IntervenableModel({ layer: 1, component: "block_output" }, model, {
        asAdaptor: true,
      });
      assert.throws(() => adaptorOfNothing.forward(base, [source], { unitLocations: { base: 1 } }), /asAdaptor: /);
      const adaptor = new tv.IntervenableModel(
        { layer: 1, component: "block_output", interventionType: tv.ZeroIntervention },
        model,
        { asAdaptor: true },
      );
      assert.throws(
        () => adaptor.forward(base, null, { unitLocations: { base: 1 }, interventionAdditionalKwargs: { args: 1 } }),
        /interventionAdditionalKwargs\.args: asAdaptor passes the module's input as args/,
      );
      assert.throws(
        () =>
          adaptor.forward(base, null, {
            unitLocations: { base: 1 },
            interventionAdditionalKwargs: [1] as unknown as Record<string, unknown>,
          }),
        /interventionAdditionalKwargs must be a plain object/,
      );
      assert.throws(
        () => new tv.IntervenableModel({ layer: 1 }, model, { asAdaptor: "yes" as unknown as boolean }),
        /asAdaptor must be true or false/,
      );
      assert.equal(hookCount(model), 0);
    });
  });

  describe("useFast", () => {
    it("every example takes example 0's positions (checked against a hand-made interchange)", () => {
      const locations = { "sources->base": [[[[2], [4]]], [[[1], [3]]]] };
      const fast = new tv.IntervenableModel({ layer: 1, component: "block_output" }, model, { useFast: true });
      const { intervened } = fast.forward(base, [source], { unitLocations: locations });
      // Example 1 reads source position 2 and writes base position 1, as example 0 does.
      const patched = withRow(withRow(clean[2], 0, 1, at(sourceStates[2], 0, 2)), 1, 1, at(sourceStates[2], 1, 2));
      assertClose(intervened.logits.data, resume(2, patched).data, 1e-4);

      const perExample = new tv.IntervenableModel({ layer: 1, component: "block_output" }, model);
      const ownPositions = perExample.forward(base, [source], { unitLocations: locations }).intervened;
      const expected = withRow(withRow(clean[2], 0, 1, at(sourceStates[2], 0, 2)), 1, 3, at(sourceStates[2], 1, 4));
      assertClose(ownPositions.logits.data, resume(2, expected).data, 1e-4);
    });

    it("pyvene's test_scatter_neurons_gpt2_batch_diff_fast: [[1,2],[0,1]] writes at [1,2] in both examples", () => {
      const r = tv.arange(0, 2 * 2 * D).reshape([2, 2, D]);
      const readBack = new tv.CollectIntervention();
      const im = new tv.IntervenableModel(
        [
          { layer: 1, component: "block_output", intervention: () => r },
          { layer: 1, component: "block_output", intervention: readBack },
        ],
        model,
        { use_fast: true } as tv.IntervenableOptions,
      );
      const { collected } = im.forward(base, null, {
        unitLocations: {
          base: [
            [
              [1, 2],
              [0, 1],
            ],
            null,
          ],
        },
      });
      const value = collected[0];
      for (let b = 0; b < 2; b++) {
        for (let p = 0; p < T; p++) {
          const expected =
            p === 1 || p === 2 ? Array.from(r.data.subarray((b * 2 + p - 1) * D, (b * 2 + p) * D)) : at(clean[2], b, p);
          assertClose(at(value, b, p), expected);
        }
      }
    });

    it("every example takes example 0's subspaces, in the model and in pyvene's swap golden (spec §4.10)", () => {
      const fast = new tv.IntervenableModel({ layer: 1, component: "block_output" }, model, { useFast: true });
      const given = fast.forward(base, [source], { unitLocations: { "sources->base": 3 }, subspaces: [[[0, 1], [5]]] });
      const first = new tv.IntervenableModel({ layer: 1, component: "block_output" }, model);
      const expected = first.forward(base, [source], { unitLocations: { "sources->base": 3 }, subspaces: [0, 1] });
      assert.deepEqual(given.intervened.logits.data, expected.intervened.logits.data);

      const swapBase = tv.arange(0, 36).reshape([2, 3, 6]);
      const swap = new tv.VanillaIntervention({
        subspacePartition: [
          [0, 2],
          [2, 4],
          [4, 6],
        ],
        useFast: true,
      });
      const out = swap.apply(swapBase, {
        source: tv.arange(36, 42),
        subspaces: [
          [1, 0],
          [0, 1],
          [1, 2],
        ],
      }) as tv.Tensor;
      const row = (i: number) => Array.from(out.data.subarray(i * 6, i * 6 + 6));
      for (let i = 0; i < 6; i++) assert.deepEqual(row(i), [36, 37, 38, 39, 6 * i + 4, 6 * i + 5]);
      assert.throws(
        () =>
          swap.apply(swapBase, {
            source: tv.arange(36, 42),
            subspaces: [
              [1, 0],
              [0, 1],
              [1, 2],
            ],
            useFast: false,
          }),
        /3 per-example lists but the base batch has 2 examples/,
      );
    });
  });

  describe("addIntervention and getCachedActivations", () => {
    const locations = { unitLocations: { "sources->base": 3 } };

    it("pyvene's test_reprs_collection_after_intervention: Vanilla, Collect added, equals both built at once", () => {
      const im = new tv.IntervenableModel(
        { layer: 1, component: "block_output", interventionType: tv.VanillaIntervention },
        model,
      );
      im.addIntervention({ layer: 3, component: "block_output", intervention_type: tv.CollectIntervention });
      assert.deepEqual(im.keys, [
        "layer_1_comp_block_output_unit_pos_nunit_1#0",
        "layer_3_comp_block_output_unit_pos_nunit_1#0",
      ]);
      const added = im.forward(base, [source, null], locations);
      const together = new tv.IntervenableModel(
        [
          { layer: 1, component: "block_output", interventionType: tv.VanillaIntervention },
          { layer: 3, component: "block_output", interventionType: tv.CollectIntervention },
        ],
        model,
      );
      const expected = together.forward(base, [source, null], locations);
      assert.deepEqual(added.collected[0].data, expected.collected[0].data);
      assert.deepEqual(added.intervened.logits.data, expected.intervened.logits.data);
      // And the collected layer-3 input of the patched run, by hand: block 2 and 3 run on the patched stream.
      const patched = withRow(withRow(clean[2], 0, 3, at(sourceStates[2], 0, 3)), 1, 3, at(sourceStates[2], 1, 3));
      const stream = (model as tv.DecoderModel).runBlocks({ ...base, resumeFrom: { layer: 2, hidden: patched } }, 3);
      assertClose(added.collected[0].data.subarray(0, D), at(stream, 0, 3));
      assertClose(added.collected[0].data.subarray(D), at(stream, 1, 3));
    });

    it("keeps the existing interventions and their weights, also under a config-wide interventionTypes", () => {
      const im = new tv.IntervenableModel(
        {
          representations: [{ layer: 0, component: "block_output", lowRankDimension: 2 }],
          interventionTypes: tv.LowRankRotatedSpaceIntervention,
        },
        model,
      );
      const before = im.interventions.get(im.keys[0])!;
      const weights = im.getTrainableParameters().map((p) => p.data.slice());
      im.addIntervention([[2, "block_output", "pos", 1, null, tv.ZeroIntervention]]);
      assert.equal(im.interventions.get(im.keys[0]), before);
      assert.equal(im.interventions.get(im.keys[1])!.typeName, "ZeroIntervention");
      assert.deepEqual(
        im.getTrainableParameters().map((p) => p.data),
        weights,
      );
    });

    it("refuses a bad addition and leaves the model as it was", () => {
      const im = new tv.IntervenableModel({ layer: 1, component: "block_output" }, model);
      const keys = [...im.keys];
      const bad: [unknown, RegExp][] = [
        [{ layer: 3, component: "block_output" }, /representations\[1\] must give interventionType or intervention/],
        [
          [
            { layer: 2, interventionType: tv.ZeroIntervention },
            { layer: 99, interventionType: tv.ZeroIntervention },
          ],
          /layer/,
        ],
        [{ layer: 2, interventionType: tv.ZeroIntervention, groupKey: 0 }, /groupKey must be given for every/],
        [{ layer: 2, intervention_typ: tv.ZeroIntervention }, /unknown option "intervention_typ"/],
        [[], /at least one representation/],
      ];
      for (const [input, message] of bad) {
        assert.throws(() => im.addIntervention(input as tv.RepresentationInput), message);
        assert.deepEqual(im.keys, keys);
      }
      const { intervened } = im.forward(base, [source], locations);
      const patched = withRow(withRow(clean[2], 0, 3, at(sourceStates[2], 0, 3)), 1, 3, at(sourceStates[2], 1, 3));
      assertClose(intervened.logits.data, resume(2, patched).data, 1e-4);
    });

    it("getCachedActivations: gathered sources and collected lists of the call under way, then of the last", () => {
      let seenDuringCall: Map<string, tv.Tensor | tv.Tensor[]> | null = null;
      const im: tv.IntervenableModel = new tv.IntervenableModel(
        [
          { layer: 1, component: "block_output", interventionType: tv.VanillaIntervention },
          { layer: 2, component: "block_output", interventionType: tv.CollectIntervention },
          {
            layer: 3,
            component: "block_output",
            intervention: (units: tv.Tensor) => {
              seenDuringCall = im.getCachedActivations();
              return units;
            },
          },
        ],
        model,
      );
      assert.deepEqual(im.getCachedActivations(), new Map());
      im.forward(base, [source, null, null], locations);
      const [vanillaKey, collectKey] = im.keys;
      const cached = im.getCachedActivations();
      assert.deepEqual([...cached.keys()].sort(), [vanillaKey, collectKey].sort());
      const gathered = cached.get(vanillaKey) as tv.Tensor;
      assertClose(gathered.data.subarray(0, D), at(sourceStates[2], 0, 3));
      assertClose(gathered.data.subarray(D), at(sourceStates[2], 1, 3));
      assert.equal((cached.get(collectKey) as tv.Tensor[]).length, 1);
      assert.deepEqual((seenDuringCall as unknown as Map<string, unknown>).get(vanillaKey), gathered);
      cached.clear();
      assert.equal(im.getCachedActivations().size, 2, "the returned map is a copy");
    });
  });
});
