/**
 * The checks every causal-LM family's tests run: HF's numbers from a pyvene fixture (logits,
 * hidden states, greedy generation), left padding, cached decoding, and the site map's hooks.
 */
import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import * as tv from "../../src/index.js";
import {
  fixtureFolder,
  maxAbsDiff,
  modelInputs,
  readCases,
  readFixtureTensors,
  type FixtureCases,
} from "./fixtures.js";

export type FixtureTensors = Map<string, tv.Tensor | tv.IntTensor>;

/** A fixture's model (through loadPretrained) and its cases and tensors, loading in the background. */
export function openFixture(fixture: string): {
  loaded: Promise<tv.Pretrained>;
  data: Promise<[FixtureCases, FixtureTensors]>;
} {
  return {
    loaded: tv.loadPretrained(fixtureFolder(fixture)),
    data: Promise.all([readCases(fixture), readFixtureTensors(fixture)]),
  };
}

/** The loaded model, asserting that loadPretrained picked `Class`, whose family is the config's model_type `family`. */
export async function loadedAs<T extends tv.PretrainedModel>(
  loaded: Promise<tv.Pretrained>,
  Class: abstract new (...args: never[]) => T,
  family: string,
): Promise<T> {
  const { model, config } = await loaded;
  assert.ok(model instanceof Class);
  assert.equal(model.family, family);
  assert.equal(config.model_type, family);
  return model;
}

/**
 * Registers a fixture family's tests, named `<fixture>: …`: HF's logits and hidden states, HF's
 * greedy generation, left padding, and token-by-token decoding through the cache.
 */
export function fixtureTests(
  fixture: string,
  { loaded, data }: ReturnType<typeof openFixture>,
  tolerance = 1e-4,
): void {
  test(`${fixture}: logits and every hidden state of each reference input match HF`, async (t) => {
    const [{ model }, [cases, tensors]] = await Promise.all([loaded, data]);
    checkReferences(t, model, cases, tensors, tolerance);
  });

  test(`${fixture}: greedy generation reproduces HF's sequences and scores, with and without the cache`, async (t) => {
    const [{ model, config }, [cases, tensors]] = await Promise.all([loaded, data]);
    checkGreedyGeneration(t, model, config.eos_token_id as number, cases, tensors, tolerance);
  });

  test(`${fixture}: a left-padded row gives the logits and generation of the unpadded prompt`, async () => {
    const [{ model, config }, [cases]] = await Promise.all([loaded, data]);
    checkLeftPadding(model, config.eos_token_id as number, cases);
  });

  test(`${fixture}: decoding token by token with the cache equals one full pass`, async () => {
    const [{ model }, [cases]] = await Promise.all([loaded, data]);
    checkCachedDecoding(model, cases.inputs.src_long.input_ids!);
  });
}

/** A float fixture tensor, asserting that it is one. */
export function floatTensor(tensors: FixtureTensors, key: string): tv.Tensor {
  const t = tensors.get(key);
  assert.ok(t instanceof tv.Tensor, `fixture tensor ${key} is float`);
  return t;
}

/** For each reference input: HF's logits and every hidden state, within `tolerance` at the unmasked positions. */
export function checkReferences(
  t: TestContext,
  model: tv.PretrainedModel,
  cases: FixtureCases,
  tensors: FixtureTensors,
  tolerance: number,
): void {
  for (const [name, ref] of Object.entries(cases.references)) {
    const inputs = modelInputs(cases, tensors, name);
    const out = tv.noGrad(() => model.run({ ...inputs, outputHiddenStates: true }));
    const mask = inputs.attentionMask ?? null;
    const logitDiff = maxAbsDiff(out.logits, floatTensor(tensors, ref.logits), mask);
    assert.ok(logitDiff < tolerance, `${name}: logits differ by ${logitDiff}`);
    assert.equal(out.hiddenStates!.length, ref.hidden_states.length);
    const hiddenDiffs = ref.hidden_states.map((key, i) => {
      const d = maxAbsDiff(out.hiddenStates![i], floatTensor(tensors, key), mask);
      assert.ok(d < tolerance, `${name}: hidden state ${i} differs by ${d}`);
      return d;
    });
    t.diagnostic(
      `${name}: logits ${logitDiff.toExponential(2)}, ` +
        `hidden states ${hiddenDiffs.map((d) => d.toExponential(2)).join(" ")}`,
    );
  }
}

/**
 * Each generate case: HF's greedy sequences exactly and its scores within `tolerance`, with and
 * without the KV cache.
 */
export function checkGreedyGeneration(
  t: TestContext,
  model: tv.PretrainedModel,
  eos: number,
  cases: FixtureCases,
  tensors: FixtureTensors,
  tolerance: number,
): void {
  const generateCases = cases.cases.filter((c) => c.method === "generate");
  assert.ok(generateCases.length > 0);
  for (const c of generateCases) {
    const inputs = modelInputs(cases, tensors, (c.base as string | undefined) ?? "base");
    const { max_new_tokens } = c.generate_kwargs as { max_new_tokens: number };
    const expected = tensors.get(`case/${c.name}/original_sequences`) as tv.IntTensor;
    const expectedScores = floatTensor(tensors, `case/${c.name}/original_scores`);
    for (const useCache of [true, false]) {
      const { sequences, scores } = tv.generate(model, inputs.inputIds!, {
        maxNewTokens: max_new_tokens,
        attentionMask: inputs.attentionMask,
        eosTokenId: eos,
        padTokenId: eos,
        useCache,
      });
      assert.deepEqual(sequences.shape, expected.shape);
      assert.deepEqual([...sequences.data], [...expected.data], `${c.name} (cache ${useCache}): sequences`);
      assert.equal(scores.length, expectedScores.shape[0]);
      const scoreDiff = maxAbsDiff(tv.stack(scores, 0), expectedScores);
      assert.ok(scoreDiff < tolerance, `${c.name} (cache ${useCache}): scores differ by ${scoreDiff}`);
      t.diagnostic(`${c.name} cache=${useCache}: scores ${scoreDiff.toExponential(2)}`);
    }
  }
}

/**
 * `short` left-padded with `padId` to the length of `long`, batched with `long` as row `paddedRow`
 * (0 or 1): with mask-based positions, the padded row gives `short`'s logits at its real positions
 * and the other row `long`'s. Returns the batch, its attention mask and the padding length.
 */
export function checkLeftPaddedLogits(
  model: tv.PretrainedModel,
  short: number[],
  long: number[],
  padId: number,
  paddedRow: 0 | 1,
): { ids: tv.IntTensor; mask: tv.IntTensor; pad: number } {
  const pad = long.length - short.length;
  assert.ok(pad > 0);
  const padded = {
    ids: [...new Array(pad).fill(padId), ...short],
    mask: [...new Array(pad).fill(0), ...short.map(() => 1)],
  };
  const full = { ids: long, mask: long.map(() => 1) };
  const rows = paddedRow === 0 ? [padded, full] : [full, padded];
  const ids = tv.intTensor(rows.map((r) => r.ids));
  const mask = tv.intTensor(rows.map((r) => r.mask));
  const batched = tv.noGrad(
    () =>
      model.run({ inputIds: ids, attentionMask: mask, positionIds: tv.nn.positionIds(mask, 2, long.length) }).logits,
  );
  const alone = tv.noGrad(() => model.run({ inputIds: tv.intTensor([short]) }).logits);
  const paddedLogits = tv.slice(tv.slice(batched, 0, paddedRow, paddedRow + 1), 1, pad);
  assert.ok(maxAbsDiff(paddedLogits, alone) < 1e-5, `padded row differs by ${maxAbsDiff(paddedLogits, alone)}`);
  const longAlone = tv.noGrad(() => model.run({ inputIds: tv.intTensor([long]) }).logits);
  assert.ok(maxAbsDiff(tv.slice(batched, 0, 1 - paddedRow, 2 - paddedRow), longAlone) < 1e-5);
  return { ids, mask, pad };
}

/**
 * The fixture's `base` prompt left-padded (with 0) to `src_long`'s length as row 1 after that row:
 * checkLeftPaddedLogits, and the padded row's greedy generation (with and without the cache) is the
 * unpadded prompt's.
 */
export function checkLeftPadding(model: tv.PretrainedModel, eos: number, cases: FixtureCases): void {
  const long = cases.inputs.src_long.input_ids![0];
  const short = cases.inputs.base.input_ids![0];
  const { ids, mask, pad } = checkLeftPaddedLogits(model, short, long, 0, 1);
  for (const useCache of [true, false]) {
    const options = { maxNewTokens: 6, eosTokenId: eos, padTokenId: eos, useCache };
    const both = tv.generate(model, ids, { ...options, attentionMask: mask });
    const single = tv.generate(model, tv.intTensor([short]), options);
    const row = [...both.sequences.data.subarray(both.sequences.shape[1] + pad, 2 * both.sequences.shape[1])];
    const newTokens = single.sequences.shape[1] - short.length;
    assert.deepEqual(row.slice(0, short.length + newTokens), [...single.sequences.data], `cache ${useCache}`);
    single.scores.forEach((s, step) => assert.ok(maxAbsDiff(tv.slice(both.scores[step], 0, 1, 2), s) < 1e-5));
  }
}

/** Two rows of ids decoded one token at a time through the KV cache give one full pass's logits. */
export function checkCachedDecoding(model: tv.PretrainedModel, rows: number[][]): void {
  const ids = tv.intTensor(rows);
  const full = tv.noGrad(() => model.run({ inputIds: ids }).logits);
  const cache = model.newCache()!;
  const steps = tv.noGrad(() =>
    Array.from({ length: ids.shape[1] }, (_, t) => {
      const step = tv.intTensor([[ids.data[t]], [ids.data[ids.shape[1] + t]]]);
      return model.run({ inputIds: step, cache }).logits;
    }),
  );
  assert.equal(cache.length, ids.shape[1]);
  assert.ok(maxAbsDiff(tv.concat(steps, 1), full) < 1e-5);
}

/**
 * A hook at every site of layer 1 fires on a forward pass and sees a value as wide as the site says
 * (dim, or dim·heads).
 */
export function checkSiteHooks(model: tv.PretrainedModel): void {
  const seen: string[] = [];
  const handles = Object.keys(model.sites).map((component) => {
    const site = model.site(component, 1);
    const m = model.getModule(site.module);
    const record = (value: tv.Tensor) => {
      assert.equal(value.shape[value.rank - 1], site.heads ? site.dim * site.heads : site.dim, component);
      seen.push(component);
    };
    return site.hook === "input"
      ? m.addPreHook((_m, x) => record(x as tv.Tensor))
      : m.addPostHook((_m, _x, y) => record(y));
  });
  tv.noGrad(() => model.run({ inputIds: tv.intTensor([[1, 2, 3]]) }));
  handles.forEach((h) => h.remove());
  assert.deepEqual(new Set(seen), new Set(Object.keys(model.sites)));
}

/** Expected sites by component: [path below the layer, hook, dim, view (fused part, heads)]. */
export type SiteTable = Record<string, [string, "input" | "output", number, object?]>;

/** The block and MLP rows of a GPT-2-layout family's site table (GPT-2, GPT-Neo): the same paths in both. */
export function gptLayoutRows(dim: number, inner: number): SiteTable {
  return {
    block_input: ["", "input", dim],
    block_output: ["", "output", dim],
    mlp_activation: [".mlp.act", "output", inner],
    mlp_output: [".mlp", "output", dim],
    mlp_input: [".mlp", "input", dim],
  };
}

/**
 * A family's site table: exactly these components, each at `<prefix><layer><path>` with its hook,
 * dim and view, at a module that exists.
 */
export function checkSiteTable(model: tv.PretrainedModel, prefix: string, layer: number, expected: SiteTable): void {
  assert.deepEqual(Object.keys(model.sites).sort(), Object.keys(expected).sort());
  for (const [component, [path, hook, dim, view]] of Object.entries(expected)) {
    const site = model.site(component, layer);
    assert.deepEqual(site, { module: `${prefix}${layer}${path}`, hook, dim, ...view }, component);
    model.getModule(site.module);
  }
}
