/**
 * No silent wrong experiment: every options object refuses unknown keys (with a suggestion) and
 * reads pyvene's snake_case names; units fit their component; a source-reading intervention
 * without a source is an error; serial mode leaves no hook behind and reads each hop's lists per
 * group; prototype names are not components; malformed ids, masks and keys are refused.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as tv from "../src/index.js";
import type { AnyModule } from "../src/nn/index.js";
import { fixtureFolder, maxAbsDiff } from "./support/fixtures.js";

function hookCount(model: AnyModule): number {
  let n = 0;
  for (const [, m] of model.namedModules()) n += m.hookCount;
  return n;
}

let model: tv.PretrainedModel;
const base = { inputIds: tv.intTensor([[83, 54, 22, 99, 51, 27]]) };
const source = { inputIds: tv.intTensor([[54, 46, 23, 32, 54, 30]]) };
const vanilla = (layer = 1, component = "block_output") => ({
  layer,
  component,
  interventionType: tv.VanillaIntervention,
});

before(async () => {
  model = (await tv.loadPretrained(fixtureFolder("gpt2_tiny"))).model;
});

describe("unknown option keys are errors; snake_case names are read", () => {
  it("refuses a unit-locations key passed as an option, pointing at unitLocations", () => {
    const im = new tv.IntervenableModel(vanilla(), model);
    assert.throws(
      () => im.forward(base, [source], { "sources->base": 1 } as never),
      /unknown option "sources->base": unit locations go under unitLocations/,
    );
    assert.throws(
      () => im.forward(base, [source], { unitLocation: { base: 1 } } as never),
      /unknown option "unitLocation" \(did you mean "unitLocations"\?\)/,
    );
    assert.equal(hookCount(model), 0);
  });

  it("reads unit_locations exactly as unitLocations", () => {
    const im = new tv.IntervenableModel(vanilla(), model);
    const camel = im.forward(base, [source], { unitLocations: { "sources->base": 3 } }).intervened.logits;
    const snake = im.forward(base, [source], { unit_locations: { "sources->base": 3 } } as never).intervened.logits;
    const everywhere = im.forward(base, [source]).intervened.logits;
    assert.equal(maxAbsDiff(camel, snake), 0);
    assert.ok(maxAbsDiff(camel, everywhere) > 1e-3, "locations must restrict the intervention");
  });

  it("reads a pyvene-style config: top-level intervention_types applies", () => {
    const im = new tv.IntervenableModel(
      { representations: [{ layer: 1, component: "block_output" }], intervention_types: tv.ZeroIntervention } as never,
      model,
    );
    const { intervened } = im.forward(base, null, { unitLocations: { base: 2 } });
    const zeroed = new tv.IntervenableModel(
      { layer: 1, component: "block_output", interventionType: tv.ZeroIntervention },
      model,
    );
    assert.equal(
      maxAbsDiff(intervened.logits, zeroed.forward(base, null, { unitLocations: { base: 2 } }).intervened.logits),
      0,
    );
    assert.ok(maxAbsDiff(intervened.logits, model.run(base).logits) > 1e-3);
    assert.throws(
      () => new tv.IntervenableModel({ representations: [vanilla()], mdoe: "serial" } as never, model),
      /unknown option "mdoe" \(did you mean "mode"\?\)/,
    );
  });

  it("refuses unknown keys in model inputs, sweeps, training, optimisers and generation", () => {
    const im = new tv.IntervenableModel(vanilla(), model);
    assert.throws(
      () => im.forward({ inputIds: base.inputIds, attention_mak: null } as never, [source]),
      /base: unknown option "attention_mak" \(did you mean "attentionMask"\?\)/,
    );
    assert.throws(
      () => model.run({ input_ids: base.inputIds } as never),
      /model inputs: unknown option "input_ids" \(did you mean "inputIds"\?\)/,
    );
    const trace = { inputIds: base.inputIds, tokens: ["a", "b", "c", "d", "e", "f"], corruptedPositions: [0] };
    assert.throws(
      () => tv.causalTrace(model, { ...trace, windw: 3 } as never),
      /causalTrace options: unknown option "windw" \(did you mean "window"\?\)/,
    );
    const p = tv.zeros([2]).requireGrad();
    assert.throws(
      () => new tv.Adam([p], { weight_decy: 0.1 } as never),
      /Adam options: unknown option "weight_decy" \(did you mean "weightDecay"\?\)/,
    );
    assert.equal(new tv.Adam([p], { weight_decay: 0.25 } as never).paramGroups[0].weightDecay, 0.25);
    const rotated = new tv.IntervenableModel(
      { layer: 1, component: "block_output", interventionType: tv.RotatedSpaceIntervention },
      model,
    );
    const batches = [{ base, source, labels: null, unitLocations: { "sources->base": 3 } }];
    assert.throws(
      () => tv.trainAlignment(rotated, batches, { computeLoss: (l: tv.Tensor) => l.sum(), epoch: 2 } as never),
      /unknown option "epoch" \(did you mean "epochs"\?\)/,
    );
    assert.throws(
      () => tv.generate(model, base.inputIds, { maxNewTokens: 2, top_kk: 3 } as never),
      /unknown option "top_kk" \(did you mean "topK"\?\)/,
    );
    const a = tv.generate(model, base.inputIds, { max_new_tokens: 2 } as never);
    assert.deepEqual(a.sequences.shape, [1, 8]);
  });
});

describe("units fit their component", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [
      { layer: 0, component: "block_output", unit: "bogus" },
      /unit must be one of "pos", "h", "h\.pos", "t", got "bogus"/,
    ],
    [
      { layer: 0, component: "block_output", unit: "h" },
      /unit "h" does not fit component "block_output", a per-position component: expected "pos"/,
    ],
    [
      { layer: 0, component: "head_attention_value_output", unit: "pos" },
      /unit "pos" does not fit component "head_attention_value_output", a head component.*expected "h" or "h\.pos"/,
    ],
    [{ layer: 0, component: "block_output", unit: "t" }, /unit "t" does not fit component "block_output"/],
  ];
  for (const [representation, message] of cases) {
    it(`refuses unit ${JSON.stringify(representation.unit)} on ${representation.component}`, () => {
      assert.throws(
        () => new tv.IntervenableModel({ ...representation, interventionType: tv.VanillaIntervention }, model),
        message,
      );
    });
  }

  it("refuses empty location lists instead of intervening nowhere", () => {
    const im = new tv.IntervenableModel(vanilla(), model);
    assert.throws(
      () => im.forward(base, [source], { unitLocations: { "sources->base": [] } }),
      /is an empty list: it names no units/,
    );
    assert.throws(
      () => im.forward(base, [source], { unitLocations: { "sources->base": [[[[]]], [[[]]]] } }),
      /lists no units/,
    );
  });
});

describe("a source-reading intervention needs a source", () => {
  it("refuses RotatedSpace with a null source, and runs it from sourceRepresentations", () => {
    const im = new tv.IntervenableModel(
      { layer: 1, component: "block_output", interventionType: tv.RotatedSpaceIntervention },
      model,
    );
    assert.throws(
      () => im.forward(base, null, { unitLocations: { base: 3 } }),
      /sources\[0\] is null, but intervention .* \(RotatedSpaceIntervention\) needs a source/,
    );
    const given = im.forward(base, null, { unitLocations: { base: 3 }, sourceRepresentations: tv.zeros([1, 1, 32]) });
    assert.ok(maxAbsDiff(given.intervened.logits, model.run(base).logits) > 1e-4);
    assert.throws(
      () => im.forward(base, [source], { unitLocations: { base: 3 }, sourceRepresentations: tv.zeros([1, 1, 32]) }),
      /give sources or sourceRepresentations, not both/,
    );
  });

  it("runs sourceless interventions without a source", () => {
    const im = new tv.IntervenableModel(
      { layer: 1, component: "block_output", interventionType: tv.ZeroIntervention },
      model,
    );
    assert.ok(
      maxAbsDiff(im.forward(base, null, { unitLocations: { base: 3 } }).intervened.logits, model.run(base).logits) >
        1e-4,
    );
  });
});

describe("serial mode", () => {
  it("leaves no hook behind when a group has no source run, and the plain model stays plain", () => {
    const clean = model.run(base).logits;
    const im = new tv.IntervenableModel(
      {
        representations: [
          { ...vanilla(0), groupKey: 0 },
          { layer: 2, component: "block_output", interventionType: tv.ZeroIntervention, groupKey: 1 },
        ],
        mode: "serial",
      },
      model,
    );
    const locations = { "source_0->source_1": [[[[1]]], [[[1]]]], "source_1->base": [[[[4]]], [[[4]]]] };
    for (let i = 0; i < 50; i++) im.forward(base, [source, null], { unitLocations: locations });
    assert.equal(hookCount(model), 0);
    assert.equal(maxAbsDiff(model.run(base).logits, clean), 0);
    assert.deepEqual(tv.generate(model, base.inputIds, { maxNewTokens: 2 }).sequences.shape, [1, 8]);
  });

  it("asks for locations when generating in serial mode rather than guessing them", () => {
    const im = new tv.IntervenableModel({ representations: [{ ...vanilla(0), groupKey: 0 }], mode: "serial" }, model);
    assert.throws(
      () => im.generate(base, [source], { maxNewTokens: 1 }),
      new RegExp(
        "generate: give unitLocations \\(the default, each new token's position, " +
          'is defined for parallel mode with unit "pos"\\)',
      ),
    );
    assert.equal(hookCount(model), 0);
  });

  it("reads each hop's lists per intervention of its group (three sources), matching a chain of single swaps", () => {
    const s = [
      source,
      { inputIds: tv.intTensor([[1, 2, 3, 4, 5, 6]]) },
      { inputIds: tv.intTensor([[9, 8, 7, 6, 5, 4]]) },
    ];
    const im = new tv.IntervenableModel(
      {
        representations: [0, 1, 2].map((g) => ({ ...vanilla(g), groupKey: g })),
        mode: "serial",
      },
      model,
    );
    const serial = im.forward(base, s, {
      unitLocations: {
        "source_0->source_1": [[[[1]]], [[[2]]]],
        "source_1->source_2": [[[[3]]], [[[0]]]],
        "source_2->base": [[[[5]]], [[[4]]]],
      },
    }).intervened.logits;

    const hidden = (out: tv.ModelOutput, layer: number, position: number) =>
      tv.slice(out.hiddenStates![layer + 1], 1, position, position + 1);
    const swap = (layer: number) => new tv.IntervenableModel(vanilla(layer), model);
    const first = swap(0).forward({ ...s[1], outputHiddenStates: true }, [s[0]], {
      unitLocations: { "sources->base": [[[[1]]], [[[2]]]] },
    }).intervened;
    const second = swap(1).forward({ ...s[2], outputHiddenStates: true }, null, {
      unitLocations: { base: 0 },
      sourceRepresentations: hidden(first, 1, 3),
    }).intervened;
    const chain = swap(2).forward(base, null, {
      unitLocations: { base: 4 },
      sourceRepresentations: hidden(second, 2, 5),
    }).intervened.logits;
    assert.equal(maxAbsDiff(serial, chain), 0);
    assert.ok(maxAbsDiff(serial, model.run(base).logits) > 1e-4);
    assert.throws(
      () => im.forward(base, s, { unitLocations: { "source_2->base": 4 } }),
      /locations for "source_0->source_1", "source_1->source_2" are missing/,
    );
  });
});

describe("malformed names, keys, ids and masks", () => {
  for (const name of ["toString", "constructor", "__proto__", "hasOwnProperty"]) {
    it(`refuses the component ${name} with the list of components`, () => {
      assert.throws(
        () => new tv.IntervenableModel({ layer: 0, component: name, interventionType: tv.VanillaIntervention }, model),
        new RegExp(`component "${name}" is not available for gpt2 \\(available: .*block_output`),
      );
    });
  }

  it("refuses duplicate sortedKeys, non-class intervention types, fractional token ids and non-binary masks", () => {
    const reps = [vanilla(0), vanilla(1)];
    const keys = tv.representationKeys(reps.map((r, i) => tv.representationConfig(r, i)));
    assert.throws(
      () => new tv.IntervenableModel({ representations: reps, sortedKeys: [keys[0], keys[0]] }, model),
      /sortedKeys .* must list each of the keys .* exactly once/,
    );
    assert.throws(
      () => new tv.IntervenableModel({ representations: [{ layer: 0 }], interventionTypes: [42] } as never, model),
      /interventionTypes\[0\] must be an intervention class .*got 42/,
    );
    assert.throws(() => new tv.IntTensor([5.7]), /value 5\.7 at index 0 is not a 32-bit integer/);
    const mask = tv.intTensor([[1, 1, 2, 1, 1, 1]]);
    assert.throws(
      () => tv.generate(model, base.inputIds, { maxNewTokens: 1, attentionMask: mask }),
      /attentionMask holds 2 at flat index 2; expected only 1 .* and 0/,
    );
    assert.throws(() => model.run({ inputIds: base.inputIds, attentionMask: mask }), /attentionMask holds 2/);
  });
});

describe("constructors and tensor options", () => {
  it("refuse unknown keys: interventions, random draws, losses", () => {
    assert.throws(
      () => new tv.VanillaIntervention({ embed_dim: 8 } as never),
      /VanillaIntervention options: unknown option "embed_dim" \(did you mean "embedDim"\?\)/,
    );
    assert.throws(
      () => new tv.NoiseIntervention({ embedDim: 4, noiseLvl: 2 } as never),
      /unknown option "noiseLvl" \(did you mean "noiseLevel"\?\)/,
    );
    assert.throws(() => tv.randn([2], { stdev: 2 } as never), /randn options: unknown option "stdev"/);
    assert.throws(
      () => tv.crossEntropy(tv.zeros([1, 3]), tv.intTensor([0]), { ignore_indx: 1 } as never),
      /did you mean "ignoreIndex"/,
    );
    assert.equal(
      tv.crossEntropy(tv.zeros([1, 3]), tv.intTensor([0]), { ignore_index: 0 } as never).item(),
      tv.crossEntropy(tv.zeros([1, 3]), tv.intTensor([0]), { ignoreIndex: 0 }).item(),
    );
  });
});
