/**
 * Fuzzing the other entry points (generation, tracing, patching, collection) with valid options
 * or one planted defect. Greedy generation must equal the argmax of full reruns without the cache
 * (an independent reference); sweeps must give a layers × positions grid; a defect must be refused
 * naming its field; no hook may stay behind.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import * as tv from "../../src/index.js";
import { hookCount } from "./intervene.js";

type Entry = "generate" | "causalTrace" | "activationPatching" | "collectActivations";

export interface EntryCase {
  entry: Entry;
  prompt: number[];
  other: number[];
  steps: number;
  layer: number;
  /** [field, value, the text the error must contain]; null for a valid call. */
  defect: [string, unknown, string] | null;
}

const DEFECTS: Record<Entry, [string, unknown, string][]> = {
  generate: [
    ["maxNewTokens", 1.5, "maxNewTokens"],
    ["topK", -2, "topK"],
    ["max_new_token", 2, "max_new_token"],
    ["eosTokenId", 0.5, "eosTokenId"],
    ["temperature", 0, "temperature"],
  ],
  causalTrace: [
    ["windw", 3, "windw"],
    ["window", 0, "window"],
    ["component", "mlp", "component"],
    ["target", 100, "target"],
    ["corruptedPositions", [0, 0], "corruptedPositions"],
    ["metric", "prob", "metric"],
    ["noiseStd", -1, "noiseStd"],
  ],
  activationPatching: [
    ["sourceTokns", [], "sourceTokns"],
    ["window", 9, "window"],
    ["target", -1, "target"],
    ["component", "toString", "component"],
  ],
  collectActivations: [
    ["layers", [1, 1], "layers"],
    ["layers", [7], "layer 7"],
    ["batchSize", 0, "batchSize"],
    ["components", "mlp_output", "components"],
  ],
};

export const entryCase: fc.Arbitrary<EntryCase> = fc
  .constantFrom<Entry>("generate", "causalTrace", "activationPatching", "collectActivations")
  .chain((entry) =>
    fc.integer({ min: 2, max: 6 }).chain((length) =>
      fc.record({
        entry: fc.constant(entry),
        prompt: fc.array(fc.integer({ min: 0, max: 99 }), { minLength: length, maxLength: length }),
        other: fc.array(fc.integer({ min: 0, max: 99 }), { minLength: length, maxLength: length }),
        steps: fc.integer({ min: 0, max: 4 }),
        layer: fc.integer({ min: 0, max: 3 }),
        defect: fc.oneof(
          { arbitrary: fc.constant(null), weight: 2 },
          { arbitrary: fc.constantFrom(...DEFECTS[entry]), weight: 1 },
        ),
      }),
    ),
  );

export function checkEntry(model: tv.PretrainedModel, c: EntryCase): "ran" | "rejected" {
  const options = optionsFor(c);
  if (c.defect !== null) options[c.defect[0]] = c.defect[1];
  let result: unknown;
  let error: unknown;
  try {
    result = call(model, c, options);
  } catch (e) {
    error = e;
  }
  assert.equal(hookCount(model), 0, `${c.entry} left a hook on the model`);
  if (c.defect !== null) {
    assert.ok(
      error instanceof Error,
      `${c.entry}: defect ${JSON.stringify(c.defect)} was not refused with an Error (${String(error)})`,
    );
    assert.ok(
      error.message.includes(c.defect[2]),
      `${c.entry}: the error does not name "${c.defect[2]}": ${error.message}`,
    );
    return "rejected";
  }
  if (error !== undefined) throw error;
  checkResult(model, c, result);
  return "ran";
}

function optionsFor(c: EntryCase): Record<string, unknown> {
  const ids = tv.intTensor([c.prompt]);
  const labels = c.prompt.map(String);
  switch (c.entry) {
    case "generate":
      return { maxNewTokens: c.steps };
    case "causalTrace":
      return { inputIds: ids, tokens: labels, corruptedPositions: [0], seed: c.steps };
    case "activationPatching":
      return { base: ids, source: tv.intTensor([c.other]), baseTokens: labels, sourceTokens: c.other.map(String) };
    case "collectActivations":
      return { inputIds: tv.intTensor([c.prompt, c.other]), layers: [c.layer], batchSize: 1 + (c.steps % 2) };
  }
}

function call(model: tv.PretrainedModel, c: EntryCase, options: Record<string, unknown>): unknown {
  switch (c.entry) {
    case "generate":
      return tv.generate(model, tv.intTensor([c.prompt]), options as never);
    case "causalTrace":
      return tv.causalTrace(model, options as never);
    case "activationPatching":
      return tv.activationPatching(model, options as never);
    case "collectActivations":
      return tv.collectActivations(model, options as never);
  }
}

function checkResult(model: tv.PretrainedModel, c: EntryCase, result: unknown): void {
  if (c.entry === "generate") {
    const { sequences } = result as tv.GenerateOutput;
    const tokens = [...c.prompt];
    for (let s = 0; s < c.steps; s++) {
      const logits = model.run({ inputIds: tv.intTensor([tokens]) }).logits;
      tokens.push(tv.argmax(tv.slice(logits, 1, -1), -1).data[0]);
    }
    assert.deepEqual([...sequences.data], tokens, "greedy generation differs from full reruns without the cache");
    return;
  }
  if (c.entry === "collectActivations") {
    const collected = result as tv.CollectResult;
    const site = model.site("block_output", c.layer);
    let hidden: tv.Tensor | undefined;
    const handle = model.getModule(site.module).addPostHook((_m, _i, output) => void (hidden = output));
    try {
      model.run({ inputIds: tv.intTensor([c.prompt, c.other]) });
    } finally {
      handle.remove();
    }
    assert.ok(
      collected.activations[0].values.every((v, i) => Math.abs(v - hidden!.data[i]) <= 1e-5),
      "collected block outputs differ from the block's output",
    );
    return;
  }
  const grid = (result as tv.TraceResult | tv.PatchResult).grid;
  assert.deepEqual([grid.rows, grid.cols], [model.numLayers, c.prompt.length]);
}
