/**
 * runWithCache and runWithHooks against IntervenableModel: every cached site equals what a
 * CollectIntervention there collects, hook names give the same values in TransformerLens's layout,
 * and a hook that zeroes a site gives ZeroIntervention's logits. Errors leave no hook behind.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as tv from "../src/index.js";
import type { AnyModule } from "../src/nn/module.js";
import { fixtureFolder, maxAbsDiff } from "./support/fixtures.js";

const IDS = tv.intTensor([
  [83, 54, 22, 99, 51, 27],
  [5, 17, 64, 3, 88, 41],
]);

function hookCount(model: AnyModule): number {
  let n = 0;
  for (const [, m] of model.namedModules()) n += m.hookCount;
  return n;
}

function assertClose(actual: tv.Tensor, expected: tv.Tensor, what: string, tolerance = 0): void {
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  assert.ok(maxAbsDiff(actual, expected) <= tolerance, `${what}: max |Δ| ${maxAbsDiff(actual, expected)}`);
}

/** Every (layer, component) of the model's site map, each collected whole by a CollectIntervention. */
function collectEverySite(model: tv.PretrainedModel): { layer: number; component: string; value: tv.Tensor }[] {
  const sites = Object.keys(model.sites).flatMap((component) =>
    Array.from({ length: model.numLayers }, (_, layer) => ({ layer, component })),
  );
  const im = new tv.IntervenableModel(
    sites.map(({ layer, component }) => ({
      layer,
      component,
      unit: model.site(component, layer).heads ? "h.pos" : "pos",
      interventionType: tv.CollectIntervention,
    })),
    model,
  );
  const { collected } = im.forward({ inputIds: IDS });
  return sites.map((site, i) => ({ ...site, value: collected[i] }));
}

for (const fixture of ["gpt2_tiny", "llama_tiny_gqa", "gpt_neox_tiny"]) {
  describe(`runWithCache on ${fixture}`, () => {
    let model: tv.PretrainedModel;
    before(async () => {
      model = (await tv.loadPretrained(fixtureFolder(fixture))).model;
    });

    it("keeps at every site what a CollectIntervention collects there, by component and by hook name", () => {
      const { output, cache } = tv.runWithCache(model, IDS);
      assertClose(output.logits, model.run({ inputIds: IDS }).logits, "logits");
      for (const { layer, component, value } of collectEverySite(model))
        assertClose(cache.site(layer, component), value, `layer ${layer} ${component}`);
      const swap = (t: tv.Tensor) => tv.permute(t, [0, 2, 1, 3]);
      for (let l = 0; l < model.numLayers; l++) {
        assertClose(cache.get(`blocks.${l}.hook_resid_pre`), cache.site(l, "block_input"), "hook_resid_pre");
        assertClose(cache.get(`blocks.${l}.hook_resid_post`), cache.site(l, "block_output"), "hook_resid_post");
        assertClose(cache.get(`blocks.${l}.hook_mlp_out`), cache.site(l, "mlp_output"), "hook_mlp_out");
        assertClose(cache.get(`blocks.${l}.hook_attn_out`), cache.site(l, "attention_output"), "hook_attn_out");
        const z = cache.get(`blocks.${l}.attn.hook_z`);
        assertClose(z, swap(cache.site(l, "head_attention_value_output")), "hook_z as [B, T, H, d]");
        assert.equal(z.shape[1], IDS.shape[1]);
        // GPT-NeoX has no q/k/v sites (its fused projection interleaves heads).
        if (!Object.hasOwn(model.sites, "head_query_output")) continue;
        for (const [q, c] of [
          ["q", "query"],
          ["k", "key"],
          ["v", "value"],
        ])
          assertClose(cache.get(`blocks.${l}.attn.hook_${q}`), swap(cache.site(l, `head_${c}_output`)), `hook_${q}`);
      }
      assert.equal(cache.names.length, tv.hookNames(model).length);
    });

    it("gives the hidden states at hook_resid_post, and the last layer's before the final norm", () => {
      const last = model.numLayers - 1;
      const { cache } = tv.runWithCache(model, IDS, {
        names: (name) => name.endsWith(".hook_resid_post") || name === "blocks.0.hook_resid_pre",
      });
      const { hiddenStates } = model.run({ inputIds: IDS, outputHiddenStates: true });
      for (let l = 0; l < last; l++)
        assertClose(cache.get(`blocks.${l}.hook_resid_post`), hiddenStates![l + 1], `layer ${l}`);
      const decoder = model as tv.DecoderModel<unknown>;
      assertClose(cache.get(`blocks.${last}.hook_resid_post`), decoder.runBlocks({ inputIds: IDS }, last), "last");
      assertClose(cache.get("blocks.0.hook_resid_pre"), hiddenStates![0], "hidden_states[0]", 0);
    });

    it("keeps only what was asked for", () => {
      const { cache } = tv.runWithCache(model, IDS, {
        names: ["blocks.1.hook_resid_post", "blocks.0.attn.hook_z", { layer: 0, component: "mlp_input" }],
      });
      assert.equal(cache.size, 3);
      assert.deepEqual(cache.names, ["blocks.0.attn.hook_z", "blocks.1.hook_resid_post"]);
      assert.ok(cache.has("blocks.1.hook_resid_post"));
      assert.ok(!cache.has("blocks.0.hook_resid_post"));
      assert.equal(cache.site(1, "block_output"), cache.get("blocks.1.hook_resid_post"));
      assert.deepEqual(cache.site(0, "mlp_input").shape, [2, 6, model.settings.hiddenSize]);
      assert.throws(() => cache.get("blocks.0.hook_resid_post"), /"blocks.0.hook_resid_post" was not kept/);
      assert.throws(() => cache.site(0, "block_output"), /layer 0 "block_output" was not kept/);
      assert.equal(tv.runWithCache(model, IDS, { names: () => false }).cache.size, 0);
    });

    it("zeroing a site with runWithHooks equals a ZeroIntervention run, and the hooks are gone after", () => {
      const zero = new tv.IntervenableModel(
        [
          { layer: 1, component: "attention_output", interventionType: tv.ZeroIntervention },
          { layer: 0, component: "head_attention_value_output", unit: "h", interventionType: tv.ZeroIntervention },
        ],
        model,
      );
      const expected = zero.forward({ inputIds: IDS }, null, { unitLocations: { base: [null, [[1], [1]]] } });
      const heads = model.site("head_attention_value_output", 0).heads!;
      const keepAllButHead1 = tv.tensor(
        Array.from({ length: heads }, (_, h) => (h === 1 ? 0 : 1)),
        [1, 1, heads, 1],
      );
      const seen: string[] = [];
      const output = tv.runWithHooks(model, IDS, {
        fwdHooks: [
          ["blocks.1.hook_attn_out", (value) => tv.zerosLike(value)],
          ["blocks.0.attn.hook_z", (value) => tv.mul(value, keepAllButHead1)],
          [(name) => name.endsWith("hook_resid_post"), (_value, name) => void seen.push(name)],
        ],
      });
      assertClose(output.logits, expected.intervened.logits, "logits", 1e-5);
      assert.ok(maxAbsDiff(output.logits, model.run({ inputIds: IDS }).logits) > 1e-3, "the hooks changed the logits");
      assert.deepEqual(
        seen,
        Array.from({ length: model.numLayers }, (_, l) => `blocks.${l}.hook_resid_post`),
      );
      assert.equal(hookCount(model), 0);
    });

    it("maps the MLP as TransformerLens does", () => {
      const { cache } = tv.runWithCache(model, IDS);
      const pre = cache.get("blocks.0.mlp.hook_pre");
      const post = cache.get("blocks.0.mlp.hook_post");
      assert.deepEqual(pre.shape, cache.site(0, "mlp_activation").shape);
      if (model.family === "llama") {
        // Gated: hook_post = act(hook_pre) · hook_pre_linear, the down projection's input.
        const gated = tv.mul(cache.site(0, "mlp_activation"), cache.get("blocks.0.mlp.hook_pre_linear"));
        assertClose(post, gated, "hook_post", 0);
      } else {
        assertClose(post, cache.site(0, "mlp_activation"), "hook_post");
        assert.throws(
          () => cache.get("blocks.0.mlp.hook_pre_linear"),
          new RegExp(`has no site in ${model.family}: only gated MLPs`),
        );
      }
    });
  });
}

describe("runWithCache on a random GPT-Neo", () => {
  it("reads the attention pattern at attn_dropout's input, local windows included, and can replace it", () => {
    const config = {
      architectures: ["GPTNeoForCausalLM"],
      model_type: "gpt_neo",
      attention_types: [[["global", "local"], 1]],
      hidden_size: 16,
      num_heads: 4,
      num_layers: 2,
      max_position_embeddings: 32,
      vocab_size: 128,
      window_size: 3,
    };
    const model = tv.modelFromConfig(config);
    const g = new tv.Generator(3);
    for (const [, p] of model.namedParameters()) p.data.set(tv.randn(p.shape, { std: 0.5, generator: g }).data);
    const { cache } = tv.runWithCache(model, IDS, { names: (name) => name.endsWith("hook_pattern") });
    const local = cache.get("blocks.1.attn.hook_pattern");
    assert.deepEqual(local.shape, [2, 4, 6, 6]);
    for (let row = 0; row < 2 * 4 * 6; row++) {
      const q = row % 6;
      const probs = [...local.data.subarray(row * 6, row * 6 + 6)];
      assert.ok(Math.abs(probs.reduce((a, b) => a + b) - 1) < 1e-5);
      probs.forEach((p, k) => assert.ok(k > q || k <= q - 3 ? p === 0 : p > 0, `row ${row} key ${k}`));
    }
    const clean = model.run({ inputIds: IDS }).logits;
    const uniform = tv.runWithHooks(model, IDS, {
      fwdHooks: [["blocks.0.attn.hook_pattern", (v) => tv.div(tv.onesLike(v), 6)]],
    });
    assert.ok(maxAbsDiff(uniform.logits, clean) > 1e-3);
    assert.equal(hookCount(model), 0);
  });
});

describe("hook names: errors leave no hook behind", () => {
  let gpt2: tv.PretrainedModel;
  let neox: tv.PretrainedModel;
  let llama: tv.PretrainedModel;
  before(async () => {
    gpt2 = (await tv.loadPretrained(fixtureFolder("gpt2_tiny"))).model;
    neox = (await tv.loadPretrained(fixtureFolder("gpt_neox_tiny"))).model;
    llama = (await tv.loadPretrained(fixtureFolder("llama_tiny_gqa"))).model;
  });

  it("names the family and what exists for names without a site", () => {
    assert.throws(
      () => tv.runWithCache(neox, IDS, { names: ["blocks.0.attn.hook_q"] }),
      /"blocks.0.attn.hook_q" has no site in gpt_neox: GPT-NeoX's fused query_key_value/,
    );
    assert.throws(() => tv.runWithCache(gpt2, IDS, { names: ["blocks.0.hook_resid_mid"] }), /has no site in gpt2/);
    assert.throws(() => tv.runWithCache(llama, IDS, { names: ["hook_pos_embed"] }), /has no site in llama: rotary/);
    assert.throws(
      () => tv.runWithCache(gpt2, IDS, { names: ["blocks.0.hook_foo"] }),
      /names\[0\]: "blocks.0.hook_foo" is not a hook name tsvene maps; available for gpt2: hook_embed, hook_pos_embed/,
    );
    assert.throws(() => tv.runWithCache(gpt2, IDS, { names: ["blocks.9.hook_resid_post"] }), /layer 9 is out of range/);
    assert.throws(() => tv.runWithCache(gpt2, IDS, { names: [{ layer: 0, component: "nope" }] }), /not available/);
    assert.throws(() => tv.runWithCache(gpt2, IDS, { name: [] } as tv.CacheOptions), /did you mean "names"/);
    assert.throws(
      () => tv.runWithHooks(gpt2, IDS, { fwdHooks: [[() => false, (v) => v]] }),
      /fwdHooks\[0\]: the filter matched no hook name of gpt2/,
    );
    assert.equal(hookCount(gpt2) + hookCount(neox) + hookCount(llama), 0);
  });

  it("reads the embeddings, and refuses a listed site that did not run", () => {
    const { cache } = tv.runWithCache(gpt2, IDS, { names: ["hook_embed", "hook_pos_embed"] });
    assertClose(
      tv.add(cache.get("hook_embed"), cache.get("hook_pos_embed")),
      tv
        .runWithCache(gpt2, IDS, {
          names: ["blocks.0.hook_resid_pre"],
        })
        .cache.get("blocks.0.hook_resid_pre"),
      "embed + pos_embed",
      1e-6,
    );
    const inputsEmbeds = cache.get("hook_embed");
    assert.throws(
      () => tv.runWithCache(gpt2, { inputsEmbeds }, { names: ["hook_embed"] }),
      /"hook_embed" did not run in this forward/,
    );
    assert.equal(hookCount(gpt2), 0);
  });

  it("removes every hook when the model or a hook throws", () => {
    const bad = { inputIds: [[1, 2]] } as unknown as tv.ModelInputs;
    assert.throws(() => tv.runWithCache(gpt2, bad), /inputIds must be an IntTensor/);
    assert.throws(() => tv.runWithHooks(gpt2, bad, { fwdHooks: [["blocks.0.hook_resid_post", (v) => v]] }));
    assert.throws(
      () =>
        tv.runWithHooks(gpt2, IDS, {
          fwdHooks: [
            ["blocks.0.hook_resid_pre", (v) => v],
            [
              "blocks.1.attn.hook_z",
              () => {
                throw new Error("boom");
              },
            ],
          ],
        }),
      /boom/,
    );
    assert.throws(
      () => tv.runWithHooks(gpt2, IDS, { fwdHooks: [["blocks.0.attn.hook_z", (v) => tv.permute(v, [0, 2, 1, 3])]] }),
      /fwdHooks\[0\] at "blocks.0.attn.hook_z": the hook returned \[2, 4, 6, \d+\]; expected a Tensor \[2, 6, 4, \d+\]/,
    );
    assert.equal(hookCount(gpt2), 0);
  });
});
