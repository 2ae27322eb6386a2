/**
 * loadIntervenable on corrupt or hostile folders: the config is checked against the weights
 * file's header before any intervention is built (so a config cannot make it allocate more than
 * the file holds), saved values that no training produces are refused, and nothing is changed
 * when it fails. Options objects and config.json keys are read strictly.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as tv from "../src/index.js";
import type { AnyModule } from "../src/nn/index.js";
import { fixtureFolder } from "./support/fixtures.js";

const scratch = await mkdtemp(join(tmpdir(), "tsvene-loading-intervenable-"));
after(() => rm(scratch, { recursive: true, force: true }));

const ROTATED = { layer: 0, component: "block_output", interventionType: tv.RotatedSpaceIntervention };
const BOUNDLESS = { layer: 1, component: "block_output", interventionType: tv.BoundlessRotatedSpaceIntervention };
const BASE = "rotate_layer.parametrizations.weight.0.base";
const ORIGINAL = "rotate_layer.parametrizations.weight.original";

async function gpt2(): Promise<tv.PretrainedModel> {
  return (await tv.loadPretrained(fixtureFolder("gpt2_tiny"))).model;
}

function weightsOf(m: AnyModule): Map<string, Float32Array> {
  return new Map(m.namedParameters().map(([name, p]) => [name, p.data.slice()]));
}

let folders = 0;
/** A folder saved from `representations` on gpt2_tiny, with its config.json and weights. */
async function savedFolder(representations: object[], options: tv.SaveIntervenableOptions = {}) {
  const model = await gpt2();
  const im = new tv.IntervenableModel(representations, model);
  const folder = join(scratch, `saved-${folders++}`);
  await tv.saveIntervenable(im, folder, options);
  const config = JSON.parse(await readFile(join(folder, "config.json"), "utf8"));
  const weights = (await tv.readSafetensors(join(folder, "interventions.safetensors"))).tensors;
  return { folder, config, weights, keys: im.keys };
}

async function rewrite(
  folder: string,
  config: object,
  weights?: ReadonlyMap<string, tv.Tensor | tv.IntTensor>,
): Promise<void> {
  await writeFile(join(folder, "config.json"), JSON.stringify(config));
  if (weights === undefined) await rm(join(folder, "interventions.safetensors"), { force: true });
  else await tv.writeSafetensors(join(folder, "interventions.safetensors"), weights);
}

/** `load` fails with `message`, leaving the model's weights and hooks as they were and memory barely grown. */
async function refuses(load: (model: tv.PretrainedModel) => Promise<unknown>, message: RegExp): Promise<void> {
  const model = await gpt2();
  const weights = weightsOf(model);
  const rss = process.memoryUsage().rss;
  await assert.rejects(load(model), message);
  const grownMB = (process.memoryUsage().rss - rss) / 2 ** 20;
  assert.ok(grownMB < 200, `resident memory grew by ${grownMB.toFixed(0)} MB`);
  assert.deepEqual(weightsOf(model), weights);
  assert.equal(
    [...model.namedModules()].reduce((n, [, m]) => n + m.hookCount, 0),
    0,
  );
}

describe("a saved config is checked against the weights' header before anything is built", () => {
  it("refuses a config whose embed_dim the weights do not hold, naming the key and both shapes", async () => {
    const { folder, config, weights } = await savedFolder([ROTATED]);
    const key = "layer_0_comp_block_output_unit_pos_nunit_1000000#0";
    config.representations[0][3] = 1_000_000;
    config.sorted_keys = [key];
    const renamed = new Map([...weights].map(([name, t]) => [name.replace(/^[^.]*\./, `${key}.`), t]));
    await rewrite(folder, config, renamed);
    await refuses(
      (model) => tv.loadIntervenable(folder, model),
      new RegExp(
        `interventions\\.safetensors: intervention "${key.replace(/[#]/g, "\\$&")}" ` +
          "\\(RotatedSpaceIntervention, embed_dim 32000000 " +
          `\\(site width 32 × max_number_of_units 1000000\\)\\) does not fit the saved weights: ` +
          `${ORIGINAL.replaceAll(".", "\\.")} has shape \\[32, 32\\], expected \\[32000000, 32000000\\]`,
      ),
    );

    await rewrite(folder, config);
    await refuses(
      (model) => tv.loadIntervenable(folder, model),
      new RegExp(
        "has no weights for layer_0_comp_block_output_unit_pos_nunit_1000000#0 " +
          "\\(its RotatedSpaceIntervention parameters\\)",
      ),
    );
  });

  it("refuses a low_rank_dimension the weights do not hold", async () => {
    const { folder, config, weights, keys } = await savedFolder([
      { ...ROTATED, interventionType: tv.LowRankRotatedSpaceIntervention, lowRankDimension: 4 },
    ]);
    config.representations[0][4] = 100_000;
    await rewrite(folder, config, weights);
    await refuses(
      (model) => tv.loadIntervenable(folder, model),
      new RegExp(
        `"${keys[0]}" \\(LowRankRotatedSpaceIntervention.*${ORIGINAL.replaceAll(".", "\\.")} ` +
          "has shape \\[32, 4\\], expected \\[32, 100000\\]",
      ),
    );
  });

  it("refuses a subspace partition past embed_dim", async () => {
    const { folder, config, weights } = await savedFolder([ROTATED]);
    config.representations[0][7] = [
      [0, 8],
      [8, 5e9],
    ];
    await rewrite(folder, config, weights);
    await refuses(
      (model) => tv.loadIntervenable(folder, model),
      new RegExp(
        "config\\.json: representations\\[0\\]\\.subspace_partition\\[1\\] \\[8,5000000000\\] " +
          "reaches past embed_dim 32 \\(expected features 0\\.\\.31\\)",
      ),
    );
  });
});

describe("saved values that no training produces", () => {
  it("refuses NaN and infinite weights, naming the tensor and the value", async () => {
    const { folder, config, weights, keys } = await savedFolder([ROTATED, BOUNDLESS]);
    const original = weights.get(`${keys[0]}.${ORIGINAL}`) as tv.Tensor;
    original.data[5] = NaN;
    await rewrite(folder, config, weights);
    await refuses(
      (model) => tv.loadIntervenable(folder, model),
      new RegExp(
        `"${keys[0]}\\.${ORIGINAL.replaceAll(".", "\\.")}" holds NaN at flat index 5 ` +
          "\\(saved weights must be finite numbers\\)",
      ),
    );
    original.data[5] = 0;
    weights.set(`${keys[1]}.intervention_boundaries`, tv.tensor([Infinity]));
    await rewrite(folder, config, weights);
    await refuses(
      (model) => tv.loadIntervenable(folder, model),
      new RegExp(`"${keys[1]}\\.intervention_boundaries" holds Infinity at flat index 0`),
    );
  });

  it("refuses a rotation whose base is not orthonormal, as setWeight does", async () => {
    const { folder, config, weights, keys } = await savedFolder([ROTATED]);
    const base = weights.get(`${keys[0]}.${BASE}`) as tv.Tensor;
    weights.set(`${keys[0]}.${BASE}`, tv.mul(base, 1.1));
    await rewrite(folder, config, weights);
    await refuses(
      (model) => tv.loadIntervenable(folder, model),
      new RegExp(
        `"${keys[0]}\\.${BASE.replaceAll(".", "\\.")}" is not orthonormal ` +
          "\\(max \\|BᵀB − I\\| = 2\\.1\\de-1, tolerance 0\\.0001\\)",
      ),
    );
  });

  it("refuses NaN model parameters", async () => {
    const model = await gpt2();
    const im = new tv.IntervenableModel([ROTATED], model);
    model
      .namedParameters()
      .find(([name]) => name === "transformer.ln_f.weight")![1]
      .requireGrad();
    const folder = join(scratch, "nan-model");
    await tv.saveIntervenable(im, folder, { includeModel: true });
    await tv.writeSafetensors(
      join(folder, "model_parameters.safetensors"),
      new Map([["transformer.ln_f.weight", tv.full([32], NaN)]]),
    );
    await refuses(
      (m) => tv.loadIntervenable(folder, m),
      /model_parameters\.safetensors: "transformer\.ln_f\.weight" holds NaN at flat index 0/,
    );
  });
});

describe("config.json keys", () => {
  let saved: Awaited<ReturnType<typeof savedFolder>>;
  before(async () => {
    saved = await savedFolder([ROTATED]);
  });

  it("an unknown top-level key is an error naming it, with a suggestion", async () => {
    const { folder, config, weights } = saved;
    const { intervention_types: types, ...rest } = config;
    await rewrite(folder, { ...rest, intervention_type: types }, weights);
    await refuses(
      (model) => tv.loadIntervenable(folder, model),
      new RegExp(
        "config\\.json: pyvene config: " +
          'unknown key "intervention_type" \\(did you mean "intervention_types"\\?\\); ' +
          "a saved IntervenableModel config has representations, ",
      ),
    );
    await rewrite(folder, { ...config, _name_or_path: "./saved", torch_dtype: "float32" }, weights);
    await tv.loadIntervenable(folder, await gpt2());
  });

  it("representations and per-intervention lists of the wrong kind are errors, not defaults", async () => {
    const { folder, config, weights } = saved;
    await rewrite(folder, { ...config, representations: [5] }, weights);
    await refuses(
      (model) => tv.loadIntervenable(folder, model),
      /representations\[0\] must be a list of 14 fields or an object, got 5/,
    );
    await rewrite(folder, { ...config, intervention_dimensions: 32 }, weights);
    await refuses((model) => tv.loadIntervenable(folder, model), /"intervention_dimensions" must be a list, got 32/);
    await rewrite(folder, config, weights);
  });
});

describe("options objects", () => {
  it("loadIntervenable refuses unknown keys with a suggestion and accepts snake_case", async () => {
    const { folder, config } = await savedFolder([ROTATED]);
    await rewrite(folder, config);
    await refuses(
      (model) => tv.loadIntervenable(folder, model, { allowMissingWeight: true } as tv.LoadIntervenableOptions),
      /loadIntervenable options: unknown option "allowMissingWeight" \(did you mean "allowMissingWeights"\?\)/,
    );
    const warned = new Promise((resolve) => process.once("warning", resolve));
    const loaded = await tv.loadIntervenable(folder, await gpt2(), {
      allow_missing_weights: true,
    } as tv.LoadIntervenableOptions);
    assert.match(String(await warned), /keep their fresh initial weights/);
    assert.ok(loaded.interventions.get(loaded.keys[0]) instanceof tv.RotatedSpaceIntervention);
  });

  it("saveIntervenable and pushIntervenable refuse unknown keys before writing or connecting", async () => {
    const model = await gpt2();
    const im = new tv.IntervenableModel([ROTATED], model);
    model.namedParameters()[0][1].requireGrad();
    const folder = join(scratch, "strict-save");
    await assert.rejects(
      tv.saveIntervenable(im, folder, { includeModels: true } as tv.SaveIntervenableOptions),
      /saveIntervenable options: unknown option "includeModels" \(did you mean "includeModel"\?\)/,
    );
    await assert.rejects(stat(folder), /ENOENT/);
    await tv.saveIntervenable(im, folder, { include_model: true } as tv.SaveIntervenableOptions);
    await stat(join(folder, "model_parameters.safetensors")).catch(() => assert.fail("include_model is includeModel"));
    await assert.rejects(
      tv.pushIntervenable(im, "owner/name", { acessToken: "hf_x" } as tv.PushIntervenableOptions),
      /pushIntervenable options: unknown option "acessToken" \(did you mean "accessToken"\?\)/,
    );
  });
});
