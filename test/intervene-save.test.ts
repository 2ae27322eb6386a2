/**
 * saveIntervenable / loadIntervenable / pushIntervenable: a trained IntervenableModel comes back
 * from its folder (and from a Hub repo) with the same weights and bit-identical outputs; pyvene's
 * own config.json loads; bad folders fail with errors that say what is wrong.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as tv from "../src/index.js";
import type { AnyModule } from "../src/nn/index.js";
import { fixtureFolder } from "./support/fixtures.js";
import { FakeHub } from "./support/hub-server.js";

const scratch = await mkdtemp(join(tmpdir(), "tsvene-intervene-save-"));
after(() => rm(scratch, { recursive: true, force: true }));

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
const labels = tv.intTensor([5, 17, 42, 99, 0, 63, 8, 21, 34, 55, 89, 44]);
const atPosition3 = { unitLocations: { "sources->base": 3 } };

async function gpt2(): Promise<tv.PretrainedModel> {
  return (await tv.loadPretrained(fixtureFolder("gpt2_tiny"))).model;
}

function weightsOf(m: AnyModule): Map<string, Float32Array> {
  return new Map(m.namedParameters().map(([name, p]) => [name, p.data.slice()]));
}

const TRAINABLE = [
  { layer: 0, component: "block_output", interventionType: tv.RotatedSpaceIntervention },
  { layer: 1, component: "block_output", interventionType: tv.LowRankRotatedSpaceIntervention, lowRankDimension: 4 },
  { layer: 2, component: "mlp_output", interventionType: tv.BoundlessRotatedSpaceIntervention },
  { layer: 3, component: "block_output", interventionType: tv.SigmoidMaskIntervention },
];

/** Four trainable interventions after two gradient steps, the rotation swapping only its first 20 dimensions. */
function trained(model: tv.PretrainedModel): tv.IntervenableModel {
  const im = new tv.IntervenableModel(TRAINABLE, model);
  im.interventions.get(im.keys[0])!.setInterchangeDim(20);
  const initial = [...im.interventions.values()].map(weightsOf);
  for (let step = 0; step < 2; step++) {
    const { intervened } = im.forward(base, [source], atPosition3);
    tv.crossEntropy(intervened.logits.reshape([12, 100]), labels).backward();
    for (const iv of im.interventions.values()) {
      for (const [, p] of iv.trainableParameters()) {
        if (p.grad) for (let i = 0; i < p.size; i++) p.data[i] -= 2 * p.grad.data[i];
        p.zeroGrad();
      }
    }
  }
  [...im.interventions.values()].forEach((iv, i) => {
    const changed = [...weightsOf(iv)].some(([name, w]) => w.some((v, j) => v !== initial[i].get(name)![j]));
    assert.ok(changed, `training changed the ${iv.typeName}`);
  });
  return im;
}

function logits(im: tv.IntervenableModel, sources: tv.RunInput[] | null, options: tv.ForwardOptions): Float32Array {
  return tv.noGrad(() => im.forward(base, sources, options).intervened.logits.data);
}

/** The saved and the loaded model have the same keys, classes, dimensions and weights, and the same outputs. */
function assertSame(
  loaded: tv.IntervenableModel,
  original: tv.IntervenableModel,
  sources: tv.RunInput[] | null,
  options: tv.ForwardOptions,
): void {
  assert.deepEqual(loaded.keys, original.keys);
  for (const key of original.keys) {
    const [a, b] = [original.interventions.get(key)!, loaded.interventions.get(key)!];
    assert.notEqual(b, a);
    assert.equal(b.constructor, a.constructor, key);
    assert.deepEqual(b.interchangeDim, a.interchangeDim, key);
    assert.deepEqual(weightsOf(b), weightsOf(a), key);
    assert.deepEqual(b.sourceRepresentation?.data, a.sourceRepresentation?.data, key);
  }
  assert.deepEqual(logits(loaded, sources, options), logits(original, sources, options));
}

describe("saveIntervenable and loadIntervenable", () => {
  it(`bring back trained RotatedSpace, LowRankRotatedSpace, BoundlessRotatedSpace and SigmoidMask interventions \
exactly`, async () => {
    const im = trained(await gpt2());
    const folder = join(scratch, "trained");
    await tv.saveIntervenable(im, folder);

    assert.deepEqual((await readdir(folder)).sort(), ["config.json", "interventions.safetensors"]);
    const { tensors } = await tv.readSafetensors(join(folder, "interventions.safetensors"));
    const [rotated, lowRank, boundless, mask] = im.keys;
    const rotation = ["rotate_layer.parametrizations.weight.original", "rotate_layer.parametrizations.weight.0.base"];
    assert.deepEqual(
      [...tensors.keys()].sort(),
      [
        ...rotation.map((n) => `${rotated}.${n}`),
        ...rotation.map((n) => `${lowRank}.${n}`),
        ...[...rotation, "intervention_boundaries", "temperature", "intervention_population"].map(
          (n) => `${boundless}.${n}`,
        ),
        `${mask}.mask`,
        `${mask}.temperature`,
      ].sort(),
    );
    assert.equal(rotated, "layer_0_comp_block_output_unit_pos_nunit_1#0");
    assert.deepEqual(tensors.get(`${lowRank}.rotate_layer.parametrizations.weight.original`)!.shape, [32, 4]);

    const config = JSON.parse(await readFile(join(folder, "config.json"), "utf8"));
    assert.deepEqual(config.representations[1], [
      1,
      "block_output",
      "pos",
      1,
      4,
      null,
      null,
      null,
      null,
      null,
      null,
      null,
      null,
      null,
    ]);
    assert.deepEqual(
      config.intervention_types,
      TRAINABLE.map((r) => `<class 'pyvene.models.interventions.${r.interventionType.name}'>`),
    );
    assert.deepEqual(config.sorted_keys, im.keys);
    assert.deepEqual(config.intervention_dimensions, [20, 32, 32, 32]);
    assert.deepEqual(config.intervention_constant_sources, [false, false, false, false]);

    const model = await gpt2();
    const loaded = await tv.loadIntervenable(folder, model);
    assertSame(loaded, im, [source], atPosition3);
    const fresh = new tv.IntervenableModel(TRAINABLE, model);
    assert.notDeepEqual(
      logits(fresh, [source], atPosition3),
      logits(im, [source], atPosition3),
      "freshly initialised interventions differ",
    );
  });

  it("bring back constant-source interventions (an Addition with its vector, a Zero) without source runs", async () => {
    const vector = tv.randn([32], { generator: new tv.Generator(5) });
    const config = [
      { layer: 1, component: "block_output", interventionType: tv.AdditionIntervention, sourceRepresentation: vector },
      { layer: 2, component: "head_attention_value_output", unit: "h.pos", interventionType: tv.ZeroIntervention },
    ];
    const model = await gpt2();
    const im = new tv.IntervenableModel(config, model);
    const folder = join(scratch, "constant");
    await tv.saveIntervenable(im, folder);

    const { tensors } = await tv.readSafetensors(join(folder, "interventions.safetensors"));
    assert.deepEqual([...tensors.keys()], [`${im.keys[0]}.source_representation`]);
    assert.deepEqual(tensors.get(`${im.keys[0]}.source_representation`)!.data, vector.data);
    const json = JSON.parse(await readFile(join(folder, "config.json"), "utf8"));
    assert.equal(json.representations[0][11], null, "the vector is not in the JSON");
    assert.equal(json.representations[0][12], true, "hidden_source_representation marks it");
    assert.deepEqual(json.intervention_constant_sources, [true, true]);

    const loaded = await tv.loadIntervenable(folder, await gpt2());
    assert.ok([...loaded.interventions.values()].every((iv) => iv.sourceConstant));
    const options = {
      unitLocations: {
        base: [
          [[3], [4]],
          [
            [[1], [2]],
            [[0], [5]],
          ],
        ],
      },
    };
    assertSame(loaded, im, null, options);
    assert.notDeepEqual(logits(loaded, null, options), model.run(base).logits.data);
  });

  it("with includeModel, save and restore the model's parameters that require a gradient", async () => {
    const model = await gpt2();
    const im = new tv.IntervenableModel(TRAINABLE.slice(0, 1), model);
    const lnF = model
      .namedParameters()
      .find(([name]) => name === "transformer.ln_f.weight")![1]
      .requireGrad();
    lnF.data.forEach((_, i) => (lnF.data[i] += 0.01 * i));
    const folder = join(scratch, "with-model");
    await tv.saveIntervenable(im, folder, { includeModel: true });
    const { tensors } = await tv.readSafetensors(join(folder, "model_parameters.safetensors"));
    assert.deepEqual([...tensors.keys()], ["transformer.ln_f.weight"]);

    const other = await gpt2();
    const loaded = await tv.loadIntervenable(folder, other);
    const restored = other.namedParameters().find(([name]) => name === "transformer.ln_f.weight")![1];
    assert.deepEqual(restored.data, lnF.data);
    assert.equal(restored.requiresGrad, true, "trainable again, as when saved");
    assertSame(loaded, im, [source], atPosition3);

    const untouched = await gpt2();
    await tv.loadIntervenable(folder, untouched, { includeModel: false });
    assert.deepEqual(weightsOf(untouched), weightsOf(await gpt2()));

    await tv.saveIntervenable(im, folder);
    assert.deepEqual(
      (await readdir(folder)).sort(),
      ["config.json", "interventions.safetensors"],
      "a save without includeModel removes the old model file",
    );
  });
});

describe("pyvene's config.json", () => {
  const keys = [
    "layer_0_comp_block_output_unit_pos_nunit_1#0",
    "layer_1_comp_mlp_output_unit_pos_nunit_1#0",
    "layer_2_comp_head_attention_value_output_unit_h_pos_nunit_1#0",
  ];
  const rotatedKey = keys[1];

  /** config.json as pyvene's save writes it (HF save_pretrained: sorted keys, 2-space indent). */
  function pyveneConfig(types: string[]): string {
    return `${JSON.stringify(
      {
        intervention_constant_sources: [false, false, true],
        intervention_dimensions: [32, 8, 8],
        intervention_types: types.map((t) => `<class 'pyvene.models.interventions.${t}'>`),
        mode: "parallel",
        representations: [
          [0, "block_output", "pos", 1, null, null, null, null, null, null, null, null, null, null],
          [
            1,
            "mlp_output",
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
          ],
          [2, "head_attention_value_output", "h.pos", 1, null, null, null, null, null, null, null, null, null, null],
        ],
        sorted_keys: keys,
        transformers_version: "4.45.0.dev0",
      },
      null,
      2,
    )}\n`;
  }

  async function pyveneFolder(name: string, types: string[], files: Record<string, Buffer> = {}): Promise<string> {
    const folder = join(scratch, name);
    await mkdir(folder, { recursive: true });
    await writeFile(join(folder, "config.json"), pyveneConfig(types));
    for (const [file, bytes] of Object.entries(files)) await writeFile(join(folder, file), bytes);
    return folder;
  }

  it("loads into the interventions, keys, dimensions and partitions it names", async () => {
    const folder = await pyveneFolder("pyvene-vanilla", [
      "VanillaIntervention",
      "VanillaIntervention",
      "ZeroIntervention",
    ]);
    const loaded = await tv.loadIntervenable(folder, await gpt2());
    assert.deepEqual(loaded.keys, keys);
    assert.deepEqual(
      [...loaded.interventions.values()].map((iv) => iv.constructor),
      [tv.VanillaIntervention, tv.VanillaIntervention, tv.ZeroIntervention],
    );
    assert.deepEqual(
      [...loaded.interventions.values()].map((iv) => iv.interchangeDim),
      [32, 8, 8],
    );
    assert.deepEqual(loaded.interventions.get(keys[1])!.subspacePartition, [
      [0, 1, 2, 3, 4, 5, 6, 7],
      Array.from({ length: 24 }, (_, i) => 8 + i),
    ]);
    assert.equal(loaded.config.representations[2].unit, "h.pos");
    assert.equal(loaded.config.mode, "parallel");
  });

  it(`says that pyvene's .bin weights need converting, or with allowMissingWeights warns and keeps fresh \
weights`, async () => {
    const types = ["VanillaIntervention", "RotatedSpaceIntervention", "ZeroIntervention"];
    const folder = await pyveneFolder("pyvene-bin", types, {
      [`intkey_${rotatedKey}.bin`]: Buffer.from("PK\x03\x04 a torch pickle"),
    });
    await assert.rejects(tv.loadIntervenable(folder, await gpt2()), (error: Error) => {
      assert.match(
        error.message,
        new RegExp(
          `has no weights for ${rotatedKey} \\(its RotatedSpaceIntervention parameters\\), ` +
            `only pyvene's intkey_${rotatedKey}\\.bin`,
        ),
      );
      assert.match(error.message, /cannot read PyTorch's pickled \.bin files; convert them once with Python/);
      assert.match(
        error.message,
        /save_file\(\{f"\{p\[7:-4\]\}\.\{k\}": v\.contiguous\(\) for p in glob\.glob\("intkey_\*\.bin"\)/,
      );
      return true;
    });

    const warned = once(process, "warning");
    const loaded = await tv.loadIntervenable(folder, await gpt2(), { allowMissingWeights: true });
    const [warning] = (await warned) as [Error & { code?: string }];
    assert.equal(warning.code, "TSVENE_MISSING_WEIGHTS");
    assert.match(warning.message, new RegExp(`no weights for ${rotatedKey}.*keep their fresh initial weights`));
    assert.ok(loaded.interventions.get(rotatedKey) instanceof tv.RotatedSpaceIntervention);
    assert.equal(loaded.interventions.get(rotatedKey)!.interchangeDim, 8);
  });

  it("loads weights converted from pyvene's .bin files, pyvene's int64 buffers included", async () => {
    const types = ["VanillaIntervention", "RotatedSpaceIntervention", "ZeroIntervention"];
    const folder = await pyveneFolder("pyvene-converted", types);
    const rotation = tv.orthogonal(32, 32, new tv.Generator(3));
    const converted = new Map<string, tv.Tensor | tv.IntTensor>([
      [`${rotatedKey}.embed_dim`, tv.intTensor(32)],
      [`${rotatedKey}.interchange_dim`, tv.intTensor(8)],
      [
        `${rotatedKey}.rotate_layer.parametrizations.weight.original`,
        tv.tensor(
          Array.from({ length: 32 * 32 }, (_, i) => (i % 33 === 0 ? -1 : 0)),
          [32, 32],
        ),
      ],
      [`${rotatedKey}.rotate_layer.parametrizations.weight.0.base`, rotation],
    ]);
    await tv.writeSafetensors(join(folder, "interventions.safetensors"), converted);
    const loaded = await tv.loadIntervenable(folder, await gpt2());
    const iv = loaded.interventions.get(rotatedKey) as tv.RotatedSpaceIntervention;
    assert.deepEqual(iv.rotateLayer.weight().data, rotation.data, "θ = −I gives W = B exactly");
    assert.equal(iv.interchangeDim, 8);

    converted.set(`${rotatedKey}.embed_dim`, tv.intTensor(64));
    await tv.writeSafetensors(join(folder, "interventions.safetensors"), converted);
    await assert.rejects(
      tv.loadIntervenable(folder, await gpt2()),
      /the weights were saved with embed_dim 64, but this intervention has embedDim 32/,
    );
  });
});

describe("bad folders", () => {
  let folder: string;
  let weights: Map<string, tv.Tensor | tv.IntTensor>;
  let key: string;

  before(async () => {
    const im = new tv.IntervenableModel(TRAINABLE.slice(0, 1), await gpt2());
    key = im.keys[0];
    folder = join(scratch, "bad");
    await tv.saveIntervenable(im, folder);
    weights = (await tv.readSafetensors(join(folder, "interventions.safetensors"))).tensors;
  });

  async function withWeights(tensors: Map<string, tv.Tensor | tv.IntTensor>): Promise<string> {
    await tv.writeSafetensors(join(folder, "interventions.safetensors"), tensors);
    return folder;
  }

  it("fail with errors that say what is wrong, leaving the model as it was", async () => {
    const model = await gpt2();
    const [trainableName, trainable] = model.namedParameters()[0];
    trainable.requireGrad();
    const before = weightsOf(model);
    const original = `${key}.rotate_layer.parametrizations.weight.original`;
    const cases: [() => Promise<unknown>, RegExp][] = [
      [
        () => tv.loadIntervenable(join(scratch, "no-such-folder"), model),
        /"\/.*no-such-folder": no such folder, and not a Hub repo id/,
      ],
      [
        async () => tv.loadIntervenable(await mkdtemp(join(scratch, "empty-")), model),
        /has no config\.json, so it is not a saved IntervenableModel/,
      ],
      [
        async () => tv.loadIntervenable(join(folder, "config.json"), model),
        /is a file; expected a folder written by saveIntervenable/,
      ],
      [
        async () =>
          tv.loadIntervenable(await withWeights(new Map([...weights, [original, tv.zeros([16, 16])]])), model),
        new RegExp(
          `intervention "${key}" \\(RotatedSpaceIntervention, ` +
            "embed_dim 32 \\(site width 32 × max_number_of_units 1\\)\\) does not fit the saved weights: " +
            "rotate_layer\\.parametrizations\\.weight\\.original has shape \\[16, 16\\], expected \\[32, 32\\]",
        ),
      ],
      [
        async () =>
          tv.loadIntervenable(await withWeights(new Map([...weights].filter(([name]) => name !== original))), model),
        /rotate_layer\.parametrizations\.weight\.original is missing/,
      ],
      [
        async () =>
          tv.loadIntervenable(await withWeights(new Map([...weights, [`${key}.mask`, tv.zeros([32])]])), model),
        /mask is not a parameter of it/,
      ],
      [
        async () =>
          tv.loadIntervenable(
            await withWeights(
              new Map([...weights, ["layer_3_comp_block_output_unit_pos_nunit_1#0.mask", tv.zeros([32])]]),
            ),
            model,
          ),
        new RegExp(
          "has tensors of no intervention here: layer_3_comp_block_output_unit_pos_nunit_1#0\\.mask " +
            "\\(intervention keys: layer_0_comp_block_output_unit_pos_nunit_1#0\\)",
        ),
      ],
      [
        async () => tv.loadIntervenable(await withWeights(new Map()), model),
        new RegExp(
          `has no weights for ${key} \\(its RotatedSpaceIntervention parameters\\) in interventions\\.safetensors\\. ` +
            "Pass allowMissingWeights to load the config with fresh initial weights",
        ),
      ],
      [
        async () => tv.loadIntervenable(await withWeights(weights), model, { includeModel: true }),
        /includeModel is set, but .* has no model_parameters\.safetensors \(it was saved without includeModel\)/,
      ],
    ];
    for (const [load, message] of cases) {
      await assert.rejects(load, message);
      assert.deepEqual(weightsOf(model), before);
      assert.equal(trainable.requiresGrad, true, `${trainableName} keeps its gradient flag`);
      assert.equal(
        [...model.namedModules()].reduce((n, [, m]) => n + m.hookCount, 0),
        0,
      );
    }
  });

  it("name the config entry that names an unknown intervention class", async () => {
    const config = JSON.parse(await readFile(join(folder, "config.json"), "utf8"));
    config.intervention_types[0] = "<class 'pyvene.models.interventions.FancyIntervention'>";
    const bad = join(scratch, "unknown-class");
    await mkdir(bad, { recursive: true });
    await writeFile(join(bad, "config.json"), JSON.stringify(config));
    await assert.rejects(
      tv.loadIntervenable(bad, await gpt2()),
      new RegExp(
        "unknown-class/config\\.json: pyvene config: intervention_types\\[0\\]: unknown intervention type " +
          `"<class 'pyvene\\.models\\.interventions\\.FancyIntervention'>" \\(known: VanillaIntervention, `,
      ),
    );
    config.intervention_types[0] = "<class 'pyvene.models.interventions.RotatedSpaceIntervention'>";
    config.intervention_dimensions = [];
    await writeFile(join(bad, "config.json"), JSON.stringify(config));
    await assert.rejects(
      tv.loadIntervenable(bad, await gpt2()),
      /intervention_dimensions has 0 entries for 1 representations/,
    );
  });

  it("saving refuses interventions that could not be rebuilt", async () => {
    const im = new tv.IntervenableModel(
      { layer: 0, component: "block_output", intervention: (b: tv.Tensor) => b },
      await gpt2(),
    );
    await assert.rejects(
      tv.saveIntervenable(im, join(scratch, "lambda")),
      new RegExp(
        'intervention "layer_0_comp_block_output_unit_pos_nunit_1#0" \\(LambdaIntervention\\) is not rebuilt ' +
          "from a config alone \\(a function, or fitted from data\\), so loadIntervenable could not rebuild it",
      ),
    );
  });
});

describe("the Hugging Face Hub", () => {
  const TOKEN = "hf_fake_write_token";
  const REPO = "tsvene-test/das-gpt2-tiny";
  let hub: FakeHub;
  let endpoint: string;

  before(async () => {
    hub = new FakeHub(TOKEN);
    endpoint = await hub.start();
  });
  after(() => hub.stop());

  it("pushIntervenable uploads the folder as one commit and loadIntervenable reads it back by repo id", async () => {
    const im = trained(await gpt2());
    const pushed = await tv.pushIntervenable(im, REPO, { endpoint, accessToken: TOKEN });
    assert.match(pushed.commit, /^[0-9a-f]{40}$/);
    assert.equal(pushed.url, `${endpoint}/${REPO}/commit/${pushed.commit}`);
    assert.deepEqual([...hub.files(REPO)!.keys()].sort(), [
      ".gitattributes",
      "config.json",
      "interventions.safetensors",
    ]);
    const uploads = hub.requests.filter((r) => !r.startsWith("PUT"));
    assert.deepEqual(uploads, [
      "POST /api/repos/create",
      `POST /api/models/${REPO}/preupload/main`,
      `POST /${REPO}.git/info/lfs/objects/batch`,
      `POST /api/models/${REPO}/commit/main`,
    ]);
    assert.equal(
      hub.requests.filter((r) => r.startsWith("PUT /lfs-objects/")).length,
      1,
      "the safetensors file goes through LFS",
    );

    const cacheDir = join(scratch, "hub-cache");
    const loaded = await tv.loadIntervenable(REPO, await gpt2(), { endpoint, cacheDir });
    assertSame(loaded, im, [source], atPosition3);
    const snapshot = join(cacheDir, "models--tsvene-test--das-gpt2-tiny", "snapshots", pushed.commit);
    assert.deepEqual((await readdir(snapshot)).sort(), ["config.json", "interventions.safetensors"]);

    // A second push to the existing repo makes a new commit, which a later load follows.
    const boundless = im.interventions.get(im.keys[2]) as tv.BoundlessRotatedSpaceIntervention;
    boundless.setInterventionBoundaries(0.25);
    const again = await tv.pushIntervenable(im, REPO, { endpoint, accessToken: TOKEN });
    assert.notEqual(again.commit, pushed.commit);
    const reloaded = await tv.loadIntervenable(REPO, await gpt2(), { endpoint, cacheDir });
    assertSame(reloaded, im, [source], atPosition3);
    const offline = await tv.loadIntervenable(REPO, await gpt2(), { cacheDir, offline: true });
    assertSame(offline, im, [source], atPosition3);
  });

  it("pushIntervenable needs a token with write access", async () => {
    const im = new tv.IntervenableModel(TRAINABLE.slice(0, 1), await gpt2());
    const saved = process.env.HF_TOKEN;
    delete process.env.HF_TOKEN;
    try {
      await assert.rejects(
        tv.pushIntervenable(im, REPO, { endpoint }),
        new RegExp(
          'uploading to "tsvene-test/das-gpt2-tiny" needs an access token with write access ' +
            "\\(option accessToken, or HF_TOKEN\\)",
        ),
      );
    } finally {
      if (saved !== undefined) process.env.HF_TOKEN = saved;
    }
    await assert.rejects(
      tv.pushIntervenable(im, "tsvene-test/other", { endpoint, accessToken: "hf_wrong" }),
      new RegExp(
        'pushIntervenable to "tsvene-test/other" at http://127\\.0\\.0\\.1:\\d+: ' +
          "the Hub refused the upload \\(HTTP 401: Invalid credentials.*needs write access",
      ),
    );
    await assert.rejects(
      tv.pushIntervenable(im, "no-owner", { endpoint, accessToken: TOKEN }),
      /repo id must be "owner\/name", got "no-owner"/,
    );
  });

  it("a Hub repo with only pyvene's .bin weights fetches them; an unreadable one says how to convert it", async () => {
    const folder = join(scratch, "trained-for-pyvene");
    await tv.saveIntervenable(new tv.IntervenableModel(TRAINABLE.slice(0, 1), await gpt2()), folder);
    const key = "layer_0_comp_block_output_unit_pos_nunit_1#0";
    hub.addRepo(
      "pyvene-user/das",
      new Map([
        ["config.json", await readFile(join(folder, "config.json"))],
        [`intkey_${key}.bin`, Buffer.from("PK\x03\x04 a torch pickle")],
      ]),
    );
    hub.requests.length = 0;
    const error = await tv
      .loadIntervenable("pyvene-user/das", await gpt2(), { endpoint, cacheDir: join(scratch, "hub-cache-pyvene") })
      .catch((e: unknown) => e);
    assert.ok(error instanceof Error, String(error));
    assert.match(
      error.message,
      new RegExp(
        `has no weights for ${key.replace("#", "\\#")} .*only pyvene's intkey_${key.replace("#", "\\#")}\\.bin, ` +
          "which could not be read: .*not a readable PyTorch zip archive",
      ),
    );
    assert.match(error.message, /convert them once with Python/);
    assert.ok(
      hub.requests.some((r) => r.includes(`/resolve/`) && r.includes("intkey_")),
      "the .bin file was downloaded",
    );

    const missing = await tv
      .loadIntervenable("pyvene-user/no-such-repo", await gpt2(), {
        endpoint,
        cacheDir: join(scratch, "hub-cache-pyvene"),
      })
      .catch((e: unknown) => e);
    assert.ok(missing instanceof tv.HubError && missing.code === "not_found", String(missing));
    assert.match(
      missing.message,
      new RegExp(
        'there is no folder "pyvene-user/no-such-repo", so it was taken as a Hub repo id: ' +
          'IntervenableModel "pyvene-user/no-such-repo" \\(revision "main"\\) ' +
          "was not found on http://127\\.0\\.0\\.1:\\d+ \\(HTTP 404: Repository not found",
      ),
    );
  });
});
