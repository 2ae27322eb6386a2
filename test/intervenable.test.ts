/**
 * IntervenableModel beyond the fixtures: bad input, hook hygiene, a custom module with its own
 * site map, unit "t" on a GRU, linked interventions, and pyvene's config JSON.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as tv from "../src/index.js";
import { Linear, Module, ModuleList, type AnyModule } from "../src/nn/index.js";
import { fixtureFolder } from "./support/fixtures.js";

function hookCount(model: AnyModule): number {
  let n = 0;
  for (const [, m] of model.namedModules()) n += m.hookCount;
  return n;
}

function snapshot(model: AnyModule): Float32Array[] {
  return model.parameters().map((p) => p.data.slice());
}

describe("IntervenableModel on GPT-2 (tiny fixture model)", () => {
  let model: tv.PretrainedModel;
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

  before(async () => {
    model = (await tv.loadPretrained(fixtureFolder("gpt2_tiny"))).model;
  });

  it("an interchange at one position changes only what follows it", () => {
    const im = new tv.IntervenableModel(
      { layer: 1, component: "block_output", interventionType: tv.VanillaIntervention },
      model,
    );
    const { intervened } = im.forward(base, [source], {
      unitLocations: { "sources->base": [[[[3], [3]]], [[[3], [3]]]] },
    });
    const clean = model.run(base).logits;
    const pos = (t: tv.Tensor, b: number, p: number) => t.data.subarray((b * 6 + p) * 100, (b * 6 + p + 1) * 100);
    for (let b = 0; b < 2; b++) {
      for (let p = 0; p < 3; p++) assert.deepEqual(pos(intervened.logits, b, p), pos(clean, b, p));
      assert.notDeepEqual(pos(intervened.logits, b, 3), pos(clean, b, 3));
    }
  });

  it("rejects bad input with errors that name the field, leaving model, hooks and inputs unchanged", () => {
    const params = snapshot(model);
    const ids = base.inputIds.data.slice();
    const bad: [() => unknown, RegExp][] = [
      [
        () => new tv.IntervenableModel({ layer: -1, component: "block_output" }, model),
        /representations\[0\]\.layer must be a non-negative integer/,
      ],
      [
        () => new tv.IntervenableModel({ layer: 0, component: "block_outptu" }, model),
        /component "block_outptu" is not available for gpt2 \(available: .*block_output/,
      ],
      [
        () => new tv.IntervenableModel({ layer: 9, component: "block_output" }, model),
        /layer 9 is out of range for gpt2 with 4 layers \(expected 0\.\.3\)/,
      ],
      [
        () => new tv.IntervenableModel({ layer: 0, component: "block_output", unit: "pos", colour: 3 }, model),
        /unknown option "colour"/,
      ],
      [
        () => new tv.IntervenableModel({ representations: [{ layer: 0 }], mode: "sideways" as "serial" }, model),
        /mode must be "parallel" or "serial"/,
      ],
    ];
    const im = new tv.IntervenableModel(
      { layer: 1, component: "block_output", interventionType: tv.VanillaIntervention },
      model,
    );
    const subspaced = new tv.IntervenableModel(
      {
        layer: 1,
        component: "block_output",
        interventionType: tv.VanillaIntervention,
        subspacePartition: [
          [0, 16],
          [16, 32],
        ],
      },
      model,
    );
    bad.push(
      [
        () => im.forward(base, [source], { unitLocations: { "sources->base": [[[3, 3]], [[3, 3]]] } }),
        /unitLocations\["sources->base"\]\[0\]\[0\] must be null, per-example unit lists/,
      ],
      [
        () => im.forward(base, [source], { unitLocations: { "sources->base": [[[[3], [9]]], [[[3], [3]]]] } }),
        /source side, intervention 0.*unit 9 is out of range \(expected 0\.\.5\)/,
      ],
      [
        () =>
          im.forward(base, [source], { unitLocations: { "sources->base": [[[[3], [3], [3]]], [[[3], [3], [3]]]] } }),
        /3 rows of units for a batch of 2/,
      ],
      [
        () => im.forward(base, [{ inputIds: tv.intTensor([[1, 2, 3, 4, 5, 6]]) }], { unitLocations: { base: 3 } }),
        /sources\[0\]: batch size 1 does not match the base's 2/,
      ],
      [
        () => im.forward(base, [source, source, source], { unitLocations: { base: 3 } }),
        /3 sources given for 1 intervention groups/,
      ],
      [
        () => im.forward(base, [source], { unitLocations: { "source_0->base": 3 } }),
        /key "source_0->base" is not valid in parallel mode/,
      ],
      [
        () => subspaced.forward(base, [source], { unitLocations: { "sources->base": 3 }, subspaces: [[[2], [0]]] }),
        /subspace.*2.*(range|partition)/i,
      ],
    );
    for (const [call, message] of bad) {
      assert.throws(call, message);
      assert.equal(hookCount(model), 0);
    }
    assert.deepEqual(base.inputIds.data, ids);
    snapshot(model).forEach((p, i) => assert.deepEqual(p, params[i]));
  });

  it("leaves no hook behind after 1,000 intervened forwards", () => {
    const im = new tv.IntervenableModel(
      [
        { layer: 0, component: "mlp_output", interventionType: tv.VanillaIntervention },
        { layer: 2, component: "head_attention_value_output", unit: "h.pos", interventionType: tv.CollectIntervention },
      ],
      model,
    );
    const side = [
      [[1], [2]],
      [
        [[0], [1]],
        [[2], [3]],
      ],
    ];
    const locations = { "sources->base": [side, side] };
    for (let i = 0; i < 1000; i++) {
      const { collected } = im.forward(base, [source, null], { unitLocations: locations });
      assert.equal(collected.length, 1);
    }
    assert.equal(hookCount(model), 0);
  });

  it("generates with pyvene's default gating: each new token is intervened, the prompt pass is not", () => {
    const steer = tv.full([32], 0.5);
    const im = new tv.IntervenableModel(
      { layer: 3, component: "block_output", interventionType: tv.AdditionIntervention },
      model,
    );
    const { original, generated } = im.generate(base, null, {
      sourceRepresentations: steer,
      maxNewTokens: 4,
      outputOriginalOutput: true,
      eosTokenId: 0,
    });
    assert.deepEqual(generated.scores[0].data, original!.scores[0].data);
    assert.notDeepEqual(generated.scores[1].data, original!.scores[1].data);
    assert.equal(hookCount(model), 0);
  });

  it("linked interventions share one object and its parameters", () => {
    const im = new tv.IntervenableModel(
      [
        { layer: 0, component: "block_output", interventionType: tv.RotatedSpaceIntervention, interventionLinkKey: 0 },
        { layer: 2, component: "block_output", interventionType: tv.RotatedSpaceIntervention, interventionLinkKey: 0 },
      ],
      model,
    );
    const [a, b] = [...im.interventions.values()];
    assert.equal(a, b);
  });

  it("writes pyvene's config JSON and reads it back, class strings included", () => {
    const im = new tv.IntervenableModel(
      {
        representations: [
          {
            layer: 1,
            component: "block_output",
            interventionType: tv.RotatedSpaceIntervention,
            subspacePartition: [
              [0, 8],
              [8, 32],
            ],
          },
          { layer: 3, component: "mlp_output", maxNumberOfUnits: 2, interventionType: tv.ZeroIntervention },
        ],
      },
      model,
    );
    im.interventions.get(im.keys[0])!.setInterchangeDim(8);
    const json = tv.toPyveneConfig(im);
    assert.deepEqual(json.intervention_types, [
      "<class 'pyvene.models.interventions.RotatedSpaceIntervention'>",
      "<class 'pyvene.models.interventions.ZeroIntervention'>",
    ]);
    assert.deepEqual(json.representations[0], [
      1,
      "block_output",
      "pos",
      1,
      null,
      null,
      null,
      [
        [0, 8],
        [8, 32],
      ],
      null,
      null,
      null,
      null,
      null,
      null,
    ]);
    assert.deepEqual(json.sorted_keys, [
      "layer_1_comp_block_output_unit_pos_nunit_1#0",
      "layer_3_comp_mlp_output_unit_pos_nunit_2#0",
    ]);
    assert.deepEqual(json.intervention_dimensions, [8, 64]);
    assert.deepEqual(json.intervention_constant_sources, [false, true]);
    const { config, saved } = tv.fromPyveneConfig(JSON.parse(JSON.stringify(json)));
    const again = new tv.IntervenableModel(config, model);
    assert.deepEqual(again.keys, im.keys);
    assert.ok(again.interventions.get(again.keys[0]) instanceof tv.RotatedSpaceIntervention);
    assert.ok(again.interventions.get(again.keys[1]) instanceof tv.ZeroIntervention);
    assert.deepEqual(saved.interchangeDims, [8, 64]);
  });
});

/** A network tsvene does not ship: x → relu(layers.0) → relu(layers.1) → head, on [B, S, 4] inputs. */
class ToyNet extends Module {
  readonly layers = this.module("layers", new ModuleList([new Linear(4, 4), new Linear(4, 4)]));
  readonly head = this.module("head", new Linear(4, 2));
  protected forward(x: tv.Tensor): tv.Tensor {
    let h = x;
    for (const layer of this.layers.items) h = tv.relu(layer.call(h));
    return this.head.call(h);
  }
}

describe("a custom module with its own site map", () => {
  const net = new ToyNet();
  const g = new tv.Generator(5);
  for (const p of net.parameters()) p.data.set(tv.randn(p.shape, { generator: g }).data);
  const sites: tv.SiteMap = { hidden: (layer) => ({ module: `layers.${layer}`, hook: "output", dim: 4 }) };
  const base = tv.randn([2, 3, 4], { generator: g });
  const source = tv.randn([2, 3, 4], { generator: g });

  /** The network by hand, with layer 0's pre-activation output at (example, position) replaced. */
  function manual(x: tv.Tensor, replace: (h: tv.Tensor) => tv.Tensor): tv.Tensor {
    const [l0, l1] = net.layers.items;
    const h0 = replace(tv.linear(x, l0.weight, l0.bias));
    return tv.linear(tv.relu(tv.linear(tv.relu(h0), l1.weight, l1.bias)), net.head.weight, net.head.bias);
  }

  it("interchanges units at per-example positions", () => {
    const im = new tv.IntervenableModel<tv.Tensor>(
      { layer: 0, component: "hidden", interventionType: tv.VanillaIntervention },
      net,
      { sites },
    );
    const { intervened } = im.forward(base, [source], {
      unitLocations: { "sources->base": [[[[2], [0]]], [[[1], [2]]]] },
    });
    const [l0] = net.layers.items;
    const srcHidden = tv.linear(source, l0.weight, l0.bias);
    const expected = manual(base, (h) => {
      const out = h.data.slice();
      out.set(srcHidden.data.subarray((0 * 3 + 2) * 4, (0 * 3 + 3) * 4), (0 * 3 + 1) * 4);
      out.set(srcHidden.data.subarray((1 * 3 + 0) * 4, (1 * 3 + 1) * 4), (1 * 3 + 2) * 4);
      return new tv.Tensor(out, h.shape);
    });
    assert.deepEqual(intervened.data, expected.data);
  });

  it("collects units without changing the output", () => {
    const im = new tv.IntervenableModel<tv.Tensor>(
      { layer: 1, component: "hidden", maxNumberOfUnits: 2, interventionType: tv.CollectIntervention },
      net,
      { sites },
    );
    const { intervened, collected } = im.forward(base, null, {
      unitLocations: {
        base: [
          [
            [0, 2],
            [1, 1],
          ],
        ],
      },
    });
    assert.deepEqual(intervened.data, net.call(base).data);
    const [l0, l1] = net.layers.items;
    const h1 = tv.linear(tv.relu(tv.linear(base, l0.weight, l0.bias)), l1.weight, l1.bias);
    assert.deepEqual(collected[0].shape, [2, 2, 4]);
    assert.deepEqual(
      collected[0].data,
      tv.gatherAt(
        h1,
        1,
        tv.intTensor([
          [0, 2],
          [1, 1],
        ]),
      ).data,
    );
  });

  it("trains-shaped: a rotated-space intervention gives the hand-rotated swap and gradients to its rotation", () => {
    const im = new tv.IntervenableModel<tv.Tensor>(
      { layer: 0, component: "hidden", interventionType: tv.RotatedSpaceIntervention },
      net,
      { sites },
    );
    const rotation = im.interventions.get(im.keys[0]) as tv.RotatedSpaceIntervention;
    rotation.setInterchangeDim(2);
    const { intervened } = im.forward(base, [source], { unitLocations: { "sources->base": 1 } });
    const w = rotation.rotateLayer.weight().detach();
    const [l0] = net.layers.items;
    const srcHidden = tv.linear(source, l0.weight, l0.bias);
    const expected = manual(base, (h) => {
      const rb = tv.matmul(h, w).data.slice();
      const rs = tv.matmul(srcHidden, w).data;
      for (let b = 0; b < 2; b++) for (let j = 0; j < 2; j++) rb[(b * 3 + 1) * 4 + j] = rs[(b * 3 + 1) * 4 + j];
      return tv.matmul(new tv.Tensor(rb, h.shape), tv.transpose(w));
    });
    intervened.data.forEach((v, i) =>
      assert.ok(Math.abs(v - expected.data[i]) < 1e-5, `element ${i}: ${v} vs ${expected.data[i]}`),
    );
    tv.sum(intervened).backward();
    const theta = rotation.rotateLayer.original;
    assert.ok(
      theta.grad?.data.some((v) => v !== 0),
      "the rotation's parameter received a gradient",
    );
    assert.ok(
      net.parameters().every((p) => p.grad === null),
      "the wrapped model stays frozen",
    );
  });
});

describe('unit "t" on a GRU', () => {
  let gru: tv.PretrainedModel;
  const base = { inputsEmbeds: tv.randn([1, 5, 4], { generator: new tv.Generator(1) }) };
  const source = { inputsEmbeds: tv.randn([1, 5, 4], { generator: new tv.Generator(2) }) };

  before(() => {
    gru = tv.modelFromConfig({
      model_type: "gru",
      architectures: ["GRUForClassification"],
      h_dim: 4,
      n_layer: 1,
      n_labels: 2,
      include_emb: false,
    });
    const g = new tv.Generator(3);
    for (const p of gru.parameters()) p.data.set(tv.randn(p.shape, { std: 0.5, generator: g }).data);
  });

  /** The cell outputs at every step, with `edit` applied to the output at each step. */
  function states(inputs: tv.ModelInputs, edit: (step: number, h: tv.Tensor) => tv.Tensor): tv.Tensor[] {
    const cell = gru.getModule(gru.site("cell_output", 0).module);
    const seen: tv.Tensor[] = [];
    const handle = cell.addPostHook((_m, _i, out, ctx) => {
      const edited = edit((ctx as { step: number }).step, out);
      seen.push(edited);
      return edited;
    });
    try {
      gru.run(inputs);
    } finally {
      handle.remove();
    }
    return seen;
  }

  it("swaps source step 3 into base step 1 only, leaving every other step's write alone", () => {
    const sourceStates = states(source, (_t, h) => h);
    const expected = states(base, (t, h) => (t === 1 ? sourceStates[3] : h));
    const im = new tv.IntervenableModel(
      { layer: 0, component: "cell_output", unit: "t", interventionType: tv.VanillaIntervention },
      gru,
    );
    const { intervened } = im.forward(base, [source], { unitLocations: { "sources->base": [[[[3]]], [[[1]]]] } });
    const manualLogits = (() => {
      const cell = gru.getModule(gru.site("cell_output", 0).module);
      const handle = cell.addPostHook((_m, _i, out, ctx) =>
        (ctx as { step: number }).step === 1 ? sourceStates[3] : out,
      );
      try {
        return gru.run(base).logits;
      } finally {
        handle.remove();
      }
    })();
    assert.deepEqual(intervened.logits.data, manualLogits.data);
    assert.equal(expected.length, 5);
  });

  it("zeroes only the listed steps and collects them as [B, k, d]", () => {
    const clean = states(base, (_t, h) => h);
    const zeroThenCollect = new tv.IntervenableModel(
      [
        { layer: 0, component: "cell_output", unit: "t", interventionType: tv.ZeroIntervention },
        {
          layer: 0,
          component: "cell_output",
          unit: "t",
          maxNumberOfUnits: 5,
          interventionType: tv.CollectIntervention,
        },
      ],
      gru,
    );
    const { collected: rows } = zeroThenCollect.forward(base, null, {
      unitLocations: { "sources->base": [null, [[[2, 4]], [[0, 1, 2, 3, 4]]]] },
    });
    const row = (j: number) => [...rows[0].data.subarray(j * 4, (j + 1) * 4)];
    assert.deepEqual(row(0), [...clean[0].data]);
    assert.deepEqual(row(1), [...clean[1].data]);
    assert.deepEqual(row(2), [0, 0, 0, 0]);
    assert.notDeepEqual(row(3), [...clean[3].data]);
    assert.deepEqual(row(4), [0, 0, 0, 0]);
    const collect = new tv.IntervenableModel(
      { layer: 0, component: "cell_output", unit: "t", maxNumberOfUnits: 2, interventionType: tv.CollectIntervention },
      gru,
    );
    const { collected } = collect.forward(base, null, { unitLocations: { base: [[[4, 0]]] } });
    assert.deepEqual(collected[0].shape, [1, 2, 4]);
    assert.deepEqual([...collected[0].data], [...clean[4].data, ...clean[0].data]);
  });
});
