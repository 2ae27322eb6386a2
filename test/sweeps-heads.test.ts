/**
 * Head patching against brute force (every cell recomputed on its own with a plain
 * IntervenableModel, a VanillaIntervention at that head, or head and position), and path patching
 * against the two runs written out with raw module hooks, on GPT-2 and on Llama with grouped
 * key/value heads.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as tv from "../src/index.js";
import { fixtureFolder } from "./support/fixtures.js";

const BASE = [83, 54, 22, 99, 51, 27];
const SOURCE = [54, 46, 23, 32, 54, 30];
const PAIR = {
  base: tv.intTensor([BASE]),
  source: tv.intTensor([SOURCE]),
  baseTokens: BASE.map(String),
  sourceTokens: SOURCE.map(String),
};

function hookCount(model: tv.PretrainedModel): number {
  let hooks = 0;
  for (const [, m] of model.namedModules()) hooks += m.hookCount;
  return hooks;
}

function logitOf(logits: tv.Tensor, target: number): number {
  return tv.measure(logits, target, "logit")[0];
}

/** The base run with head h of `component` at `layer` (at position p, or every position) from the source run. */
function vanillaHeadCell(
  model: tv.PretrainedModel,
  component: string,
  layer: number,
  head: number,
  p: number | null,
  target: number,
): number {
  const unit = p === null ? "h" : "h.pos";
  const im = new tv.IntervenableModel([{ layer, component, unit, interventionType: tv.VanillaIntervention }], model);
  const side = p === null ? [[[head]]] : [[[[head]], [[p]]]];
  const { intervened } = im.forward({ inputIds: tv.intTensor([BASE]) }, [{ inputIds: tv.intTensor([SOURCE]) }], {
    unitLocations: { "sources->base": [side, side] },
  });
  return logitOf(intervened.logits, target);
}

function assertHeadGrids(
  model: tv.PretrainedModel,
  result: tv.HeadPatchResult,
  heads: number,
  positions: (number | null)[],
): void {
  assert.deepEqual(
    result.grids.map((g) => [g.rows, g.cols, g.position]),
    positions.map((p) => [model.numLayers, heads, p]),
  );
  for (const grid of result.grids) {
    for (let l = 0; l < grid.rows; l++) {
      for (let h = 0; h < grid.cols; h++) {
        const expected = vanillaHeadCell(model, result.component, l, h, grid.position, result.target);
        const actual = grid.values[l * grid.cols + h];
        const cell = `(${l}, ${h}, ${grid.position})`;
        assert.ok(Math.abs(actual - expected) <= 1e-5, `cell ${cell}: ${actual} vs brute force ${expected}`);
      }
    }
  }
  assert.equal(hookCount(model), 0);
}

const EACH = BASE.map((_, p) => p);

describe("head patching", () => {
  let gpt2: tv.PretrainedModel;
  let llama: tv.PretrainedModel;
  before(async () => {
    gpt2 = (await tv.loadPretrained(fixtureFolder("gpt2_tiny"))).model;
    llama = (await tv.loadPretrained(fixtureFolder("llama_tiny_gqa"))).model;
  });

  it("GPT-2: each head at all positions, and at each position, equals patching that cell on its own", () => {
    const all = tv.headPatching(gpt2, { ...PAIR, metric: "logit" });
    assert.equal(all.component, "head_attention_value_output");
    assertHeadGrids(gpt2, all, 4, [null]);
    const progress: number[] = [];
    const each = tv.headPatching(gpt2, {
      ...PAIR,
      positions: "each",
      metric: "logit",
      onProgress: (done) => progress.push(done),
    });
    assert.deepEqual(progress, [1, 2, 3, 4]);
    assertHeadGrids(gpt2, each, 4, EACH);
  });

  it("Llama (GQA): query heads of the output, and the two key/value heads of head_value_output", () => {
    const each = tv.headPatching(llama, { ...PAIR, positions: "each", metric: "logit" });
    assertHeadGrids(llama, each, 4, EACH);
    const values = tv.headPatching(llama, { ...PAIR, component: "head_value_output", metric: "logit" });
    assertHeadGrids(llama, values, 2, [null]);
  });

  it("refuses per-position components, bad positions and unknown options, leaving no hook", () => {
    assert.throws(
      () => tv.headPatching(gpt2, { ...PAIR, component: "mlp_output" }),
      /headPatching: component must be a head component \(.*head_query_output.*\), got "mlp_output"/,
    );
    assert.throws(
      () => tv.headPatching(gpt2, { ...PAIR, positions: "some" as "all" }),
      /headPatching: positions must be "all" .* or "each" .*, got "some"/,
    );
    assert.throws(() => tv.headPatching(gpt2, { ...PAIR, head: 1 } as tv.HeadPatchOptions), /unknown|not an option/i);
    assert.equal(hookCount(gpt2), 0);
  });
});

/** A copy of `value` [1, T, H·d] with head h's columns taken from `from` for each h of `heads`. */
function withHeads(value: tv.Tensor, from: tv.Tensor, heads: number[], headDim: number): tv.Tensor {
  const data = Float32Array.from(value.data);
  const width = value.shape[2];
  for (let t = 0; t < value.shape[1]; t++)
    for (const h of heads)
      for (let k = h * headDim; k < (h + 1) * headDim; k++) data[t * width + k] = from.data[t * width + k];
  return new tv.Tensor(data, value.shape);
}

/**
 * IOI path patching written out with raw hooks: record every layer's o_proj input on both prompts;
 * run the base prompt with every layer's o_proj input frozen to the base value except the
 * senders' columns (from the source), capturing the receivers' module outputs; then run the base
 * prompt with only the receivers replaced (`receive` maps a captured output onto the live one).
 */
function handPathPatch(
  model: tv.PretrainedModel,
  outProj: (layer: number) => string,
  headDim: number,
  senders: tv.HeadSite[],
  receivers: { module: string; receive: (live: tv.Tensor, captured: tv.Tensor) => tv.Tensor }[],
  target: number,
): number {
  const record = (ids: number[]) => {
    const inputs: tv.Tensor[] = [];
    const handles = Array.from({ length: model.numLayers }, (_, l) =>
      model.getModule(outProj(l)).addPreHook((_m, input) => void (inputs[l] = input as tv.Tensor)),
    );
    model.run({ inputIds: tv.intTensor([ids]) });
    for (const handle of handles) handle.remove();
    return inputs;
  };
  const base = record(BASE);
  const source = record(SOURCE);
  const frozen = base.map((value, l) =>
    withHeads(
      value,
      source[l],
      senders.filter((s) => s.layer === l).map((s) => s.head),
      headDim,
    ),
  );
  const captured: tv.Tensor[] = [];
  const first = [
    ...frozen.map((value, l) => model.getModule(outProj(l)).addPreHook(() => value)),
    ...receivers.map((r, i) => model.getModule(r.module).addPostHook((_m, _x, y) => void (captured[i] = y))),
  ];
  model.run({ inputIds: tv.intTensor([BASE]) });
  for (const handle of first) handle.remove();
  const second = receivers.map((r, i) =>
    model.getModule(r.module).addPostHook((_m, _x, y) => r.receive(y, captured[i])),
  );
  try {
    return logitOf(model.run({ inputIds: tv.intTensor([BASE]) }).logits, target);
  } finally {
    for (const handle of second) handle.remove();
  }
}

describe("path patching", () => {
  let gpt2: tv.PretrainedModel;
  let llama: tv.PretrainedModel;
  before(async () => {
    gpt2 = (await tv.loadPretrained(fixtureFolder("gpt2_tiny"))).model;
    llama = (await tv.loadPretrained(fixtureFolder("llama_tiny_gqa"))).model;
  });

  it("GPT-2: senders → a later head's queries and values (thirds of c_attn) and an MLP, as hand-written runs", () => {
    const senders = [
      { layer: 0, head: 1 },
      { layer: 2, head: 3 },
    ];
    const result = tv.pathPatching(gpt2, {
      ...PAIR,
      senders,
      receivers: [
        { layer: 3, component: "head_query_output" },
        { layer: 3, component: "head_value_output" },
        { layer: 2, component: "mlp_output" },
      ],
      metric: "logit",
    });
    // c_attn's output is q | k | v (32 columns each): the keys stay live.
    const queriesAndValues = (live: tv.Tensor, captured: tv.Tensor) =>
      tv.concat([tv.slice(captured, -1, 0, 32), tv.slice(live, -1, 32, 64), tv.slice(captured, -1, 64)], -1);
    const expected = handPathPatch(
      gpt2,
      (l) => `transformer.h.${l}.attn.c_proj`,
      8,
      senders,
      [
        { module: "transformer.h.3.attn.c_attn", receive: queriesAndValues },
        { module: "transformer.h.2.mlp", receive: (_live, captured) => captured },
      ],
      result.target,
    );
    assert.ok(Math.abs(result.patched - expected) <= 1e-5, `${result.patched} vs hand-written ${expected}`);
    assert.ok(Math.abs(result.patched - result.base) > 1e-4, "the path carries an effect");
    assert.equal(hookCount(gpt2), 0);
  });

  it("Llama (GQA): senders → the key/value heads of the last layer's values", () => {
    const senders = [
      { layer: 0, head: 3 },
      { layer: 1, head: 0 },
    ];
    const result = tv.pathPatching(llama, {
      ...PAIR,
      senders,
      receivers: [{ layer: 2, component: "head_value_output" }],
      metric: "logit",
    });
    const expected = handPathPatch(
      llama,
      (l) => `model.layers.${l}.self_attn.o_proj`,
      8,
      senders,
      [{ module: "model.layers.2.self_attn.v_proj", receive: (_live, captured) => captured }],
      result.target,
    );
    assert.ok(Math.abs(result.patched - expected) <= 1e-5, `${result.patched} vs hand-written ${expected}`);
    assert.ok(Math.abs(result.patched - result.base) > 1e-3, "the path carries an effect");
    assert.equal(hookCount(llama), 0);
  });

  it("a receiver the senders cannot reach keeps the base value; bad senders and receivers are refused", () => {
    const late = tv.pathPatching(gpt2, {
      ...PAIR,
      senders: [{ layer: 2, head: 0 }],
      receivers: [{ layer: 2, component: "head_key_output" }],
    });
    assert.ok(Math.abs(late.patched - late.base) <= 1e-6);
    const call = (senders: unknown, receivers: unknown) => () =>
      tv.pathPatching(gpt2, { ...PAIR, senders, receivers } as tv.PathPatchOptions);
    const receivers = [{ layer: 3, component: "block_output" }];
    assert.throws(call([], receivers), /pathPatching: senders must be a non-empty list of distinct \{layer: 0\.\.3/);
    assert.throws(call([{ layer: 0, head: 4 }], receivers), /senders\[0\] must be one of .*head: 0\.\.3/);
    assert.throws(call([{ layer: 0, head: 0, pos: 1 }], receivers), /senders\[0\]/);
    const senders = [{ layer: 0, head: 0 }];
    assert.throws(
      call(senders, [{ layer: 3, component: "attention_value_output" }]),
      /receivers\[0\]: "attention_value_output" is the heads' output that step 1 freezes/,
    );
    assert.throws(
      call(senders, [{ layer: 3, component: "nope" }]),
      /receivers\[0\]: component "nope" is not available/,
    );
    assert.throws(call(senders, [receivers[0], receivers[0]]), /receivers\[1\] must be one of distinct/);
    assert.equal(hookCount(gpt2), 0);
  });
});
