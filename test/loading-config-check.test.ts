/**
 * loadPretrained checks config.json against the weights' headers before it builds the model: a
 * config that claims more (or other) layers or sizes than the weights hold is refused with the
 * field, its value and what the weights hold, without allocating what it claims. Every family's
 * shape plan covers every config size that changes its parameters.
 */
import assert from "node:assert/strict";
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import * as tv from "../src/index.js";
import { checkConfigFitsWeights, type WeightShapes } from "../src/models/weights-check.js";
import { fixtureFolder } from "./support/fixtures.js";

const scratch = await mkdtemp(join(tmpdir(), "tsvene-loading-config-"));
after(() => rm(scratch, { recursive: true, force: true }));

/**
 * gpt2_tiny's weights (4 layers, n_embd 32, vocab 100, 64 positions, n_inner 128) with its config
 * changed by `patch`.
 */
async function gpt2With(name: string, patch: Record<string, unknown>): Promise<string> {
  const folder = join(scratch, name);
  await mkdir(folder, { recursive: true });
  await copyFile(join(fixtureFolder("gpt2_tiny"), "model.safetensors"), join(folder, "model.safetensors"));
  const config = JSON.parse(await readFile(join(fixtureFolder("gpt2_tiny"), "config.json"), "utf8"));
  await writeFile(join(folder, "config.json"), JSON.stringify({ ...config, ...patch }));
  return folder;
}

/** Resident memory grows by less than 200 MB while `load` fails. */
async function rejectsWithoutAllocating(load: () => Promise<unknown>, message: RegExp): Promise<void> {
  const before = process.memoryUsage().rss;
  await assert.rejects(load, message);
  const grownMB = (process.memoryUsage().rss - before) / 2 ** 20;
  assert.ok(grownMB < 200, `resident memory grew by ${grownMB.toFixed(0)} MB`);
}

function shapesOf(model: tv.PretrainedModel): WeightShapes {
  return new Map(model.namedParameters().map(([name, p]) => [name, { shape: p.shape }]));
}

describe("a config that does not fit its weights", () => {
  it("claiming a million layers is refused from the headers, without allocating", async () => {
    const folder = await gpt2With("million-layers", { n_layer: 1_000_000 });
    await rejectsWithoutAllocating(
      () => tv.loadPretrained(folder),
      /model folder .*million-layers: config\.json n_layer is 1000000 but the weights hold layers 0\.\.3$/,
    );
  });

  it("names the field, its value, and the weight that holds the size", async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [
        { n_embd: 64 },
        /config\.json n_embd is 64 but the weights hold 32 \(transformer\.wte\.weight has shape \[100, 32\]\)/,
      ],
      [
        { n_inner: 1e9 },
        new RegExp(
          "config\\.json n_inner is 1000000000 but the weights hold 128 " +
            "\\(transformer\\.h\\.0\\.mlp\\.c_fc\\.weight has shape \\[32, 128\\]\\)",
        ),
      ],
      [{ vocab_size: 101 }, /config\.json vocab_size is 101 but the weights hold 100/],
      [
        { n_positions: undefined, max_position_embeddings: 65 },
        /config\.json max_position_embeddings is 65 but the weights hold 64 \(transformer\.wpe\.weight/,
      ],
      [{ n_layer: 2 }, /config\.json n_layer is 2 but the weights hold layers 0\.\.3/],
      [
        { n_layer: undefined },
        /config\.json n_layer \(not set: the default\) is 12 but the weights hold layers 0\.\.3/,
      ],
    ];
    for (const [[patch, message], i] of cases.map((c, i) => [c, i] as const)) {
      await rejectsWithoutAllocating(async () => tv.loadPretrained(await gpt2With(`size-${i}`, patch)), message);
    }
  });

  it("refuses layers that are not numbered 0, 1, 2, …", () => {
    const model = tv.modelFromConfig({
      model_type: "gpt2",
      n_embd: 8,
      n_head: 2,
      n_layer: 3,
      vocab_size: 11,
      n_positions: 6,
    });
    const weights = new Map([...shapesOf(model)].map(([name, w]) => [name.replace(".h.2.", ".h.5."), w]));
    assert.throws(
      () => checkConfigFitsWeights(tv.familyOf(model.config), model.config, weights, "folder"),
      new RegExp(
        "^RangeError: folder: config\\.json n_layer is 3 but the weights hold layers 0, 1, 5 " +
          "\\(not numbered 0, 1, 2, …\\)$",
      ),
    );
  });

  it("bounds the sizes a family's config reader allocates by (head_dim, attention_types) before reading it", () => {
    const llama = tv.modelFromConfig({
      model_type: "llama",
      hidden_size: 8,
      num_attention_heads: 2,
      num_hidden_layers: 2,
      vocab_size: 11,
      intermediate_size: 12,
    });
    const family = tv.familyOf(llama.config);
    const before = process.memoryUsage().rss;
    assert.throws(
      () => checkConfigFitsWeights(family, { ...llama.config, head_dim: 1e9 }, shapesOf(llama)),
      new RegExp(
        "config\\.json head_dim is 1000000000 but the weights hold 8 " +
          "\\(model\\.layers\\.0\\.self_attn\\.q_proj\\.weight has shape \\[8, 8\\]\\)",
      ),
    );
    const neoConfig = {
      model_type: "gpt_neo",
      hidden_size: 8,
      num_heads: 2,
      num_layers: 2,
      vocab_size: 11,
      max_position_embeddings: 6,
      attention_types: [[["global", "local"], 1]],
    };
    const neo = tv.modelFromConfig(neoConfig);
    assert.throws(
      () =>
        checkConfigFitsWeights(
          tv.familyOf(neoConfig),
          { ...neoConfig, attention_types: [[["global", "local"], 1e9]] },
          shapesOf(neo),
        ),
      /config\.json attention_types is 2000000000 but the weights hold layers 0\.\.1/,
    );
    assert.ok(process.memoryUsage().rss - before < 200 * 2 ** 20);
  });
});

/** A small config of every family and model class. */
const SMALL_CONFIGS: Record<string, unknown>[] = [
  { model_type: "gpt2", n_embd: 8, n_head: 2, n_layer: 2, vocab_size: 11, n_positions: 6, n_inner: 12 },
  {
    model_type: "gpt_neo",
    hidden_size: 8,
    num_heads: 2,
    num_layers: 2,
    vocab_size: 11,
    max_position_embeddings: 6,
    intermediate_size: 12,
    attention_types: [[["global", "local"], 1]],
  },
  {
    model_type: "gpt_neox",
    hidden_size: 8,
    num_attention_heads: 2,
    num_hidden_layers: 2,
    vocab_size: 11,
    intermediate_size: 12,
    rotary_pct: 0.5,
  },
  ...["llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "olmo", "olmo2"].map((type) => ({
    model_type: type,
    hidden_size: 8,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    head_dim: 4,
    num_hidden_layers: 2,
    vocab_size: 11,
    intermediate_size: 12,
  })),
  {
    model_type: "gpt_oss",
    hidden_size: 8,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    head_dim: 4,
    num_hidden_layers: 2,
    vocab_size: 11,
    intermediate_size: 12,
    num_local_experts: 4,
    num_experts_per_tok: 2,
    sliding_window: 3,
    rope_scaling: null,
  },
  ...["MLPForClassification", "MLPModel"].map((a) => ({
    model_type: "mlp",
    architectures: [a],
    h_dim: 8,
    n_layer: 2,
    num_classes: 3,
    include_emb: true,
    vocab_size: 11,
    max_position_embeddings: 6,
  })),
  ...["GRUForClassification", "GRULMHeadModel", "GRUModel"].map((a) => ({
    model_type: "gru",
    architectures: [a],
    h_dim: 8,
    n_layer: 2,
    n_labels: 3,
    include_emb: true,
    vocab_size: 11,
    max_position_embeddings: 6,
  })),
];

describe("every family's shape plan", () => {
  it("covers every family", () => {
    const covered = new Set(SMALL_CONFIGS.map((c) => tv.familyOf(c).name));
    assert.deepEqual([...covered].sort(), tv.FAMILIES.map((f) => f.name).sort());
  });

  it("accepts each config with its own weights, and refuses every size change that changes the weights", () => {
    for (const config of SMALL_CONFIGS) {
      const family = tv.familyOf(config);
      const model = family.create(config);
      const weights = shapesOf(model);
      checkConfigFitsWeights(family, config, weights);
      let refused = 0;
      for (const [field, value] of Object.entries(config)) {
        if (typeof value !== "number") continue;
        const changed = { ...config, [field]: value * 2 };
        let other: tv.PretrainedModel;
        try {
          other = family.create(changed);
        } catch {
          continue; // not a valid config: the family's own reader refuses it
        }
        const same =
          [...shapesOf(other)].every(
            ([name, { shape }]) => weights.has(name) && `${weights.get(name)!.shape}` === `${shape}`,
          ) && shapesOf(other).size === weights.size;
        if (same) continue;
        assert.throws(
          () => checkConfigFitsWeights(family, changed, weights),
          (error: Error) => {
            assert.ok(
              error instanceof RangeError && error.message.includes(field),
              `${config.model_type} ${field}: ${error.message}`,
            );
            return true;
          },
          `${config.model_type} (${JSON.stringify(config.architectures)}): ${field} ${value} → ${value * 2}`,
        );
        refused++;
      }
      assert.ok(refused >= 3, `${config.model_type}: only ${refused} size fields were tried`);
    }
  });
});

describe("loadPretrained options", () => {
  it("refuse unknown keys with a suggestion and accept pyvene's snake_case names", async () => {
    const folder = fixtureFolder("gpt2_tiny");
    await assert.rejects(
      tv.loadPretrained(folder, { revison: "main" } as tv.ResolveModelOptions),
      /loadPretrained options: unknown option "revison" \(did you mean "revision"\?\)/,
    );
    const { model } = await tv.loadPretrained(folder, { cache_dir: join(scratch, "cache") } as tv.ResolveModelOptions);
    assert.equal(model.numLayers, 4);
  });
});
