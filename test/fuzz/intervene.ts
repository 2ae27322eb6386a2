/**
 * Fuzzing IntervenableModel: scenarios of representations, locations, sources, masks and options,
 * mostly valid, some with one defect planted. A valid scenario must give what a hook-level
 * reference computes by hand (plain post/pre hooks and index loops, none of tsvene's gather or
 * scatter); a defective one must be refused with an error naming the planted field. Either way
 * the model keeps no hook, its weights and the caller's inputs stay byte-identical.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import * as tv from "../../src/index.js";
import type { AnyModule } from "../../src/nn/index.js";

/** Components whose value is a plain [B, T, d] at every layer of GPT-2 (no fused part, no heads). */
const PLAIN = [
  "block_input",
  "block_output",
  "mlp_output",
  "mlp_activation",
  "attention_output",
  "attention_value_output",
] as const;
const BASIC = [
  "VanillaIntervention",
  "AdditionIntervention",
  "SubtractionIntervention",
  "ZeroIntervention",
  "CollectIntervention",
] as const;
type Basic = (typeof BASIC)[number];

export interface Rep {
  layer: number;
  component: string;
  type: Basic;
  /** Per example: the source positions and the base positions, k each. */
  sourceRows: number[][];
  baseRows: number[][];
}

/** A defect planted in an otherwise valid scenario, and the word its error message must contain. */
export type Defect =
  | { kind: "optionTypo"; key: string }
  | { kind: "representationTypo"; key: string }
  | { kind: "unit"; unit: string }
  | { kind: "layer"; layer: number }
  | { kind: "component"; component: string }
  | { kind: "position"; position: number }
  | { kind: "nullSource" }
  | { kind: "maskValue"; value: number }
  | { kind: "tokenId"; id: number }
  | { kind: "subspacesLength" }
  | { kind: "interventionType" }
  | { kind: "duplicateSortedKeys" };

export interface Scenario {
  reps: Rep[];
  baseIds: number[][];
  sourceIds: number[][];
  /** Left padding of the base: how many leading positions of each row are masked out. */
  basePadding: number[];
  snakeCase: boolean;
  outputOriginal: boolean;
  defect: Defect | null;
}

const LAYERS = 4;
const VOCAB = 100;

const rowsOf = (batch: number, k: number, length: number) =>
  fc.array(fc.uniqueArray(fc.integer({ min: 0, max: length - 1 }), { minLength: k, maxLength: k }), {
    minLength: batch,
    maxLength: batch,
  });

const defect: fc.Arbitrary<Defect> = fc.oneof(
  fc
    .constantFrom("unitLocation", "unit_location", "sources->base", "subspace", "outputOriginal")
    .map((key): Defect => ({ kind: "optionTypo", key })),
  fc
    .constantFrom("layers", "compnent", "intervention_typ", "colour")
    .map((key): Defect => ({ kind: "representationTypo", key })),
  fc.constantFrom("h", "t", "bogus", "h.pos", "").map((unit): Defect => ({ kind: "unit", unit })),
  fc.constantFrom(-1, 4, 99, 1.5).map((layer): Defect => ({ kind: "layer", layer })),
  fc
    .constantFrom("toString", "constructor", "__proto__", "block_outptu", "mlp")
    .map((component): Defect => ({ kind: "component", component })),
  fc.constantFrom(-1, 64, 1000).map((position): Defect => ({ kind: "position", position })),
  fc.constant<Defect>({ kind: "nullSource" }),
  fc.constantFrom(2, -1, 7).map((value): Defect => ({ kind: "maskValue", value })),
  fc.constantFrom(-3, 100, 5000).map((id): Defect => ({ kind: "tokenId", id })),
  fc.constant<Defect>({ kind: "subspacesLength" }),
  fc.constant<Defect>({ kind: "interventionType" }),
  fc.constant<Defect>({ kind: "duplicateSortedKeys" }),
);

export const scenario: fc.Arbitrary<Scenario> = fc
  .record({
    batch: fc.integer({ min: 1, max: 2 }),
    length: fc.integer({ min: 3, max: 7 }),
    count: fc.integer({ min: 1, max: 3 }),
  })
  .chain(({ batch, length, count }) => {
    const ids = fc.array(fc.array(fc.integer({ min: 0, max: VOCAB - 1 }), { minLength: length, maxLength: length }), {
      minLength: batch,
      maxLength: batch,
    });
    const rep = fc.integer({ min: 1, max: 2 }).chain((k) =>
      fc.record({
        layer: fc.integer({ min: 0, max: LAYERS - 1 }),
        component: fc.constantFrom(...PLAIN),
        type: fc.constantFrom(...BASIC),
        sourceRows: rowsOf(batch, k, length),
        baseRows: rowsOf(batch, k, length),
      }),
    );
    return fc.record({
      reps: fc.array(rep, { minLength: count, maxLength: count }),
      baseIds: ids,
      sourceIds: ids,
      basePadding: fc.array(fc.integer({ min: 0, max: 1 }), { minLength: batch, maxLength: batch }),
      snakeCase: fc.boolean(),
      outputOriginal: fc.boolean(),
      defect: fc.oneof({ arbitrary: fc.constant(null), weight: 3 }, { arbitrary: defect, weight: 2 }),
    });
  });

const TYPES: Record<Basic, tv.InterventionClass> = {
  VanillaIntervention: tv.VanillaIntervention,
  AdditionIntervention: tv.AdditionIntervention,
  SubtractionIntervention: tv.SubtractionIntervention,
  ZeroIntervention: tv.ZeroIntervention,
  CollectIntervention: tv.CollectIntervention,
};

const needsSource = (r: Rep) => r.type !== "ZeroIntervention" && r.type !== "CollectIntervention";

/** What the scenario's error message must name, or null when the defect cannot apply (then the scenario is valid). */
function expectedField(sc: Scenario): string | null {
  const d = sc.defect;
  if (d === null) return null;
  switch (d.kind) {
    case "optionTypo":
      return d.key;
    case "representationTypo":
      return d.key;
    case "unit":
      return "unit";
    case "layer":
      return "layer";
    case "component":
      return `component "${d.component}"`;
    case "position":
      return "unit";
    case "nullSource":
      return sc.reps.some(needsSource) ? "needs a source" : null;
    case "maskValue":
      return "attentionMask";
    case "tokenId":
      return "inputIds";
    case "subspacesLength":
      return "subspaces";
    case "interventionType":
      return "interventionType";
    case "duplicateSortedKeys":
      return sc.reps.length > 1 ? "sortedKeys" : null;
  }
}

export type Outcome = "ran" | "rejected";

/** Runs one scenario through tsvene and checks it against the reference or the expected refusal. */
export function checkScenario(model: tv.PretrainedModel, sc: Scenario): Outcome {
  const field = expectedField(sc);
  const weights = model.parameters().map((p) => p.data.slice());
  const call = buildCall(sc);
  const inputs = [call.base.inputIds.data.slice(), call.source.inputIds.data.slice()];
  let result: tv.ForwardResult<tv.ModelOutput> | undefined;
  let error: unknown;
  try {
    const im = new tv.IntervenableModel(call.config as tv.IntervenableConfigInput, model);
    result = im.forward(call.base, call.sources as tv.RunInput[] | null, call.options);
  } catch (e) {
    error = e;
  }
  assert.equal(hookCount(model), 0, "a hook was left on the model");
  model.parameters().forEach((p, i) => assert.ok(sameBytes(p.data, weights[i]), "the model's weights changed"));
  assert.ok(
    sameBytes(call.base.inputIds.data, inputs[0]) && sameBytes(call.source.inputIds.data, inputs[1]),
    "the caller's inputs changed",
  );
  if (field !== null) {
    assert.ok(error !== undefined, `defect ${JSON.stringify(sc.defect)} was not refused`);
    assert.ok(error instanceof Error, `a non-Error was thrown: ${String(error)}`);
    assert.ok(
      error.message.includes(field),
      `the error for ${JSON.stringify(sc.defect)} does not name "${field}": ${error.message}`,
    );
    return "rejected";
  }
  if (error !== undefined) throw error;
  const expected = reference(model, sc);
  assert.ok(
    maxDiff(result!.intervened.logits, expected.logits) <= 1e-5,
    "intervened logits differ from the hook-level reference",
  );
  assert.equal(result!.collected.length, expected.collected.length);
  result!.collected.forEach((t, i) =>
    assert.ok(maxDiff(t, expected.collected[i]) <= 1e-6, "collected activations differ from the reference"),
  );
  if (sc.outputOriginal) assert.ok(maxDiff(result!.original!.logits, model.run(expected.base).logits) === 0);
  return "ran";
}

interface Call {
  config: unknown;
  base: { inputIds: tv.IntTensor; attentionMask: tv.IntTensor };
  source: { inputIds: tv.IntTensor };
  sources: unknown;
  options: Record<string, unknown>;
}

function mask(sc: Scenario): number[][] {
  return sc.baseIds.map((row, b) => row.map((_, t) => (t < sc.basePadding[b] ? 0 : 1)));
}

function buildCall(sc: Scenario): Call {
  const d = sc.defect;
  const representations: Record<string, unknown>[] = sc.reps.map((r) => ({
    layer: r.layer,
    component: r.component,
    unit: "pos",
    maxNumberOfUnits: r.baseRows[0].length,
    interventionType: TYPES[r.type],
  }));
  const first = representations[0];
  if (d?.kind === "representationTypo") first[d.key] = 1;
  if (d?.kind === "unit") first.unit = d.unit;
  if (d?.kind === "layer") first.layer = d.layer;
  if (d?.kind === "component") first.component = d.component;
  if (d?.kind === "interventionType") first.interventionType = { name: "VanillaIntervention" };
  const config: Record<string, unknown> = { representations };
  if (d?.kind === "duplicateSortedKeys") {
    const keys = tv.representationKeys(representations.map((r, i) => tv.representationConfig(r, i)));
    config.sortedKeys = keys.map(() => keys[0]);
  }
  const baseIds = sc.baseIds.map((row) => [...row]);
  if (d?.kind === "tokenId") baseIds[0][0] = d.id;
  const maskRows = mask(sc);
  if (d?.kind === "maskValue") maskRows[0][maskRows[0].length - 1] = d.value;
  const sourceRows = sc.reps.map((r) => r.sourceRows.map((row) => [...row]));
  if (d?.kind === "position") sourceRows[0][0][0] = d.position;
  const locations = { "sources->base": [sourceRows, sc.reps.map((r) => r.baseRows)] };
  const options: Record<string, unknown> = { [sc.snakeCase ? "unit_locations" : "unitLocations"]: locations };
  if (sc.outputOriginal) options[sc.snakeCase ? "output_original_output" : "outputOriginalOutput"] = true;
  if (d?.kind === "optionTypo") options[d.key] = 1;
  if (d?.kind === "subspacesLength") options.subspaces = sc.reps.map(() => null).concat([null]);
  const base = {
    inputIds: new tv.IntTensor(baseIds.flat(), [baseIds.length, baseIds[0].length]),
    attentionMask: tv.intTensor(maskRows),
  };
  const source = { inputIds: tv.intTensor(sc.sourceIds) };
  const sources = d?.kind === "nullSource" ? null : [source];
  return { config, base, source, sources, options };
}

/** The expected run, by hand: plain hooks capture the source values and rewrite the base ones, position by position. */
function reference(
  model: tv.PretrainedModel,
  sc: Scenario,
): { logits: tv.Tensor; collected: tv.Tensor[]; base: tv.ModelInputs } {
  const base = { inputIds: tv.intTensor(sc.baseIds), attentionMask: tv.intTensor(mask(sc)) };
  const sourceValues = sc.reps.map(() => null as tv.Tensor | null);
  const capture = sc.reps.map((r, i) =>
    hookSite(model, r, (value) => {
      sourceValues[i] = value;
      return undefined;
    }),
  );
  try {
    model.run({ inputIds: tv.intTensor(sc.sourceIds) });
  } finally {
    for (const h of capture) h.remove();
  }
  const collected: tv.Tensor[][] = sc.reps.map(() => []);
  const setters = sc.reps.map((r, i) =>
    hookSite(model, r, (value) => {
      const out = value.data.slice();
      const [batch, length, width] = value.shape;
      const rows: number[] = [];
      for (let b = 0; b < batch; b++) {
        r.baseRows[b].forEach((p, j) => {
          const at = (b * length + p) * width;
          const from = (b * length + r.sourceRows[b][j]) * width;
          for (let x = 0; x < width; x++) {
            const src = sourceValues[i]?.data[from + x] ?? 0;
            if (r.type === "CollectIntervention") rows.push(value.data[at + x]);
            else
              out[at + x] =
                r.type === "VanillaIntervention"
                  ? src
                  : r.type === "AdditionIntervention"
                    ? Math.fround(value.data[at + x] + src)
                    : r.type === "SubtractionIntervention"
                      ? Math.fround(value.data[at + x] - src)
                      : 0;
          }
        });
      }
      if (r.type === "CollectIntervention")
        collected[i].push(new tv.Tensor(Float32Array.from(rows), [batch, r.baseRows[0].length, width]));
      return new tv.Tensor(out, value.shape);
    }),
  );
  try {
    return { logits: model.run(base).logits, collected: collected.flat(), base };
  } finally {
    for (const h of setters) h.remove();
  }
}

function hookSite(model: tv.PretrainedModel, r: Rep, fn: (value: tv.Tensor) => tv.Tensor | undefined) {
  const site = model.site(r.component, r.layer);
  const module = model.getModule(site.module);
  return site.hook === "input"
    ? module.addPreHook((_m, input) => fn(input as tv.Tensor))
    : module.addPostHook((_m, _i, output) => fn(output));
}

export function hookCount(model: AnyModule): number {
  let n = 0;
  for (const [, m] of model.namedModules()) n += m.hookCount;
  return n;
}

function sameBytes(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

function maxDiff(a: tv.Tensor, b: tv.Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  let worst = 0;
  for (let i = 0; i < a.size; i++) worst = Math.max(worst, Math.abs(a.data[i] - b.data[i]));
  return worst;
}
