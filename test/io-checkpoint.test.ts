/**
 * HF model folders: loading configs and (sharded) weights, writing sharded checkpoints, and the
 * errors for broken folders.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, it } from "node:test";
import * as tv from "../src/index.js";
import { readWeightHeaders } from "../src/io/checkpoint.js";

const FIXTURES = fileURLToPath(new URL("../../../shared/fixtures/pyvene-0.1.8/", import.meta.url));

const scratch = await mkdtemp(join(tmpdir(), "tsvene-io-checkpoint-"));
after(() => rm(scratch, { recursive: true, force: true }));
let folders = 0;
const freshFolder = (): string => join(scratch, `folder-${folders++}`);

function sampleTensors(): Map<string, tv.Tensor | tv.IntTensor> {
  const gen = new tv.Generator(7);
  return new Map<string, tv.Tensor | tv.IntTensor>([
    ["model.embed_tokens.weight", tv.randn([50, 16], { generator: gen })], // 3200 bytes
    ["model.layers.0.mlp.up_proj.weight", tv.randn([32, 16], { generator: gen })], // 2048
    ["model.layers.0.input_layernorm.weight", tv.randn([16], { generator: gen })], // 64
    ["model.layers.1.mlp.up_proj.weight", tv.randn([32, 16], { generator: gen })], // 2048
    ["position_ids", tv.intTensor([[0, 1, 2, 3, 4, 5, 6, 7]])], // 64 as I64
    ["lm_head.weight", tv.randn([50, 16], { generator: gen })], // 3200
  ]);
}

function assertSameTensors(
  actual: Map<string, tv.Tensor | tv.IntTensor>,
  expected: Map<string, tv.Tensor | tv.IntTensor>,
): void {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort());
  for (const [name, want] of expected) {
    const got = actual.get(name)!;
    assert.equal(got.constructor, want.constructor, name);
    assert.deepEqual(got.shape, want.shape, name);
    assert.ok(
      Buffer.from(got.data.buffer, got.data.byteOffset, got.data.byteLength).equals(
        Buffer.from(want.data.buffer, want.data.byteOffset, want.data.byteLength),
      ),
      `${name}: values differ`,
    );
  }
}

describe("loading HF model folders", () => {
  it("loads the pyvene fixture folders: config, generation config, weights", async () => {
    const gpt2 = await tv.loadCheckpoint(join(FIXTURES, "gpt2_tiny"));
    assert.equal(gpt2.config.model_type, "gpt2");
    assert.equal(gpt2.config.n_layer, 4);
    assert.deepEqual(gpt2.generationConfig, {
      _from_model_config: true,
      bos_token_id: 0,
      eos_token_id: 0,
      transformers_version: "4.45.0.dev0",
    });
    assert.equal(gpt2.tensors.size, 4 * 12 + 4);
    assert.deepEqual(gpt2.tensors.get("transformer.h.3.mlp.c_fc.weight")!.shape, [32, 128]);

    const mlp = await tv.loadCheckpoint(join(FIXTURES, "mlp_tiny"));
    assert.equal(mlp.generationConfig, undefined);
    assert.ok(!("generationConfig" in mlp));

    const neox = await tv.loadCheckpoint(join(FIXTURES, "gpt_neox_tiny"), {
      names: ["gpt_neox.embed_in.weight", "embed_out.weight"],
    });
    assert.deepEqual([...neox.tensors.keys()], ["gpt_neox.embed_in.weight", "embed_out.weight"]);
    await assert.rejects(
      tv.loadCheckpoint(join(FIXTURES, "gpt_neox_tiny"), { names: ["lm_head.weight"] }),
      /no weight named "lm_head.weight"/,
    );
  });

  it("explains a missing folder, a missing or broken config.json, and missing weights", async () => {
    await assert.rejects(tv.loadCheckpoint(join(scratch, "nowhere")), /model folder .*nowhere does not exist/);
    const folder = freshFolder();
    await mkdir(folder);
    await assert.rejects(tv.loadCheckpoint(folder), /no config\.json \(every HF model folder has one/);
    await writeFile(join(folder, "config.json"), "{ model_type: gpt2 }");
    await assert.rejects(tv.loadCheckpoint(folder), /config\.json: not valid JSON/);
    await writeFile(join(folder, "config.json"), "[1]");
    await assert.rejects(tv.loadCheckpoint(folder), /config\.json: expected a JSON object, got an array/);
    await writeFile(join(folder, "config.json"), "{}");
    await writeFile(join(folder, "pytorch_model.bin"), "");
    await assert.rejects(
      tv.loadCheckpoint(folder),
      new RegExp(
        "no model\\.safetensors or model\\.safetensors\\.index\\.json " +
          "\\(found pytorch_model\\.bin; tsvene reads safetensors weights only\\)",
      ),
    );
  });
});

describe("sharded checkpoints", () => {
  it("writes HF shards and index, and loads them back exactly", async () => {
    const folder = freshFolder();
    const tensors = sampleTensors();
    const config = { model_type: "llama", hidden_size: 16 };
    await tv.saveCheckpoint(folder, tensors, { maxShardBytes: 4000, config, generationConfig: { eos_token_id: 2 } });

    assert.deepEqual((await readdir(folder)).sort(), [
      "config.json",
      "generation_config.json",
      "model-00001-of-00004.safetensors",
      "model-00002-of-00004.safetensors",
      "model-00003-of-00004.safetensors",
      "model-00004-of-00004.safetensors",
      "model.safetensors.index.json",
    ]);
    const index = JSON.parse(await readFile(join(folder, "model.safetensors.index.json"), "utf8"));
    assert.deepEqual(index.metadata, { total_size: 3200 + 2048 + 64 + 2048 + 64 + 3200 });
    // In order, a shard closes when the next tensor would push it past 4000 bytes.
    assert.deepEqual(index.weight_map, {
      "lm_head.weight": "model-00004-of-00004.safetensors",
      "model.embed_tokens.weight": "model-00001-of-00004.safetensors",
      "model.layers.0.input_layernorm.weight": "model-00002-of-00004.safetensors",
      "model.layers.0.mlp.up_proj.weight": "model-00002-of-00004.safetensors",
      "model.layers.1.mlp.up_proj.weight": "model-00003-of-00004.safetensors",
      position_ids: "model-00003-of-00004.safetensors",
    });
    assert.deepEqual(Object.keys(index.weight_map), Object.keys(index.weight_map).sort());

    const loaded = await tv.loadCheckpoint(folder);
    assert.deepEqual(loaded.config, config);
    assert.deepEqual(loaded.generationConfig, { eos_token_id: 2 });
    assertSameTensors(loaded.tensors, tensors);
    assert.ok(loaded.tensors.get("position_ids") instanceof tv.IntTensor);
    const header = await tv.readSafetensorsHeader(join(folder, "model-00003-of-00004.safetensors"));
    assert.deepEqual(header.metadata, { format: "pt" });
    assert.equal(header.tensors.get("position_ids")!.dtype, "I64");

    const subset = await tv.loadCheckpoint(folder, { names: ["position_ids", "lm_head.weight"] });
    assert.deepEqual([...subset.tensors.keys()], ["position_ids", "lm_head.weight"]);
  });

  it("gives a weight larger than the limit a shard of its own", async () => {
    const folder = freshFolder();
    await tv.saveCheckpoint(
      folder,
      { small: tv.zeros([4]), big: tv.zeros([100]), tail: tv.zeros([4]) },
      { maxShardBytes: 64 },
    );
    const index = JSON.parse(await readFile(join(folder, "model.safetensors.index.json"), "utf8"));
    assert.deepEqual(index.weight_map, {
      big: "model-00002-of-00003.safetensors",
      small: "model-00001-of-00003.safetensors",
      tail: "model-00003-of-00003.safetensors",
    });
  });

  it(`writes one model.safetensors when everything fits, and replaces the weight files of an earlier \
save`, async () => {
    const folder = freshFolder();
    const tensors = sampleTensors();
    await tv.saveCheckpoint(folder, tensors, { maxShardBytes: 4000 });
    await writeFile(join(folder, "README.md"), "kept");
    await tv.saveCheckpoint(folder, tensors);
    assert.deepEqual((await readdir(folder)).sort(), ["README.md", "model.safetensors"]);
    assertSameTensors((await tv.readSafetensors(join(folder, "model.safetensors"))).tensors, tensors);

    await tv.saveCheckpoint(folder, tensors, { maxShardBytes: 9000 });
    assert.deepEqual((await readdir(folder)).sort(), [
      "README.md",
      "model-00001-of-00002.safetensors",
      "model-00002-of-00002.safetensors",
      "model.safetensors.index.json",
    ]);
  });

  it("stores BF16 weights within bf16 rounding of the float32 originals", async () => {
    const folder = freshFolder();
    const tensors = sampleTensors();
    await tv.saveCheckpoint(folder, tensors, { dtype: "BF16", maxShardBytes: 3000, config: {} });
    const index = JSON.parse(await readFile(join(folder, "model.safetensors.index.json"), "utf8"));
    assert.equal(index.metadata.total_size, (3200 + 2048 + 64 + 2048 + 3200) / 2 + 64);
    const loaded = (await tv.loadCheckpoint(folder)).tensors;
    for (const [name, original] of tensors) {
      const back = loaded.get(name)!;
      if (original instanceof tv.IntTensor) {
        assert.deepEqual([...back.data], [...original.data]);
        continue;
      }
      for (let i = 0; i < original.size; i++) {
        const tolerance = 2 ** -8 * Math.abs(original.data[i]);
        assert.ok(
          Math.abs(back.data[i] - original.data[i]) <= tolerance,
          `${name}[${i}]: ${back.data[i]} vs ${original.data[i]}`,
        );
      }
    }
  });

  it("round-trips a fixture model through a sharded save", async () => {
    const folder = freshFolder();
    const original = await tv.loadCheckpoint(join(FIXTURES, "llama_tiny_gqa"));
    await tv.saveCheckpoint(folder, original.tensors, {
      config: original.config,
      generationConfig: original.generationConfig,
      maxShardBytes: 40_000,
    });
    const loaded = await tv.loadCheckpoint(folder);
    assert.deepEqual(loaded.config, original.config);
    assertSameTensors(loaded.tensors, original.tensors);
    const shards = (await readdir(folder)).filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
    assert.ok(shards.length >= 3, `expected several shards, got ${shards.join(", ")}`);
  });

  it("removes what it wrote when a save fails part way", async () => {
    const folder = freshFolder();
    await mkdir(join(folder, "model-00002-of-00004.safetensors", "occupied"), { recursive: true });
    await assert.rejects(tv.saveCheckpoint(folder, sampleTensors(), { maxShardBytes: 4000, config: {} }));
    assert.deepEqual(await readdir(folder), ["model-00002-of-00004.safetensors"]);
    await assert.rejects(
      tv.saveCheckpoint(folder, sampleTensors(), { maxShardBytes: 0 }),
      /maxShardBytes must be a positive number of bytes, got 0/,
    );
  });
});

describe("broken sharded folders", () => {
  async function shardedFolder(): Promise<string> {
    const folder = freshFolder();
    await tv.saveCheckpoint(folder, sampleTensors(), { maxShardBytes: 4000, config: { model_type: "llama" } });
    return folder;
  }
  async function editIndex(
    folder: string,
    edit: (index: { weight_map: Record<string, string> }) => void,
  ): Promise<void> {
    const path = join(folder, "model.safetensors.index.json");
    const index = JSON.parse(await readFile(path, "utf8"));
    edit(index);
    await writeFile(path, JSON.stringify(index));
  }

  it("readWeightHeaders gives every weight's header entry without the data, and names a missing shard", async () => {
    const folder = await shardedFolder();
    const headers = await readWeightHeaders(folder);
    assert.deepEqual([...headers.keys()].sort(), [...sampleTensors().keys()].sort());
    assert.deepEqual(headers.get("model.layers.0.mlp.up_proj.weight")!.shape, [32, 16]);
    assert.equal(headers.get("position_ids")!.dtype, "I64");
    await rm(join(folder, "model-00003-of-00004.safetensors"));
    await assert.rejects(
      readWeightHeaders(folder),
      /names shard model-00003-of-00004\.safetensors \(for "model.layers.1.mlp.up_proj.weight"\), which is missing/,
    );
  });

  it("names a shard the index lists but the folder lacks", async () => {
    const folder = await shardedFolder();
    await rm(join(folder, "model-00003-of-00004.safetensors"));
    await assert.rejects(
      tv.loadCheckpoint(folder),
      /names shard model-00003-of-00004\.safetensors \(for "model.layers.1.mlp.up_proj.weight"\), which is missing/,
    );
  });

  it("names a weight that its shard does not contain", async () => {
    const folder = await shardedFolder();
    await editIndex(folder, (index) => {
      index.weight_map["lm_head.weight"] = "model-00001-of-00004.safetensors";
    });
    await assert.rejects(
      tv.loadCheckpoint(folder),
      /puts "lm_head.weight" in shard model-00001-of-00004\.safetensors, which does not contain it/,
    );
  });

  it("refuses shard names outside the folder and an index without a weight_map", async () => {
    const folder = await shardedFolder();
    await editIndex(folder, (index) => {
      index.weight_map["lm_head.weight"] = "../elsewhere.safetensors";
    });
    await assert.rejects(
      tv.loadCheckpoint(folder),
      /weight_map\["lm_head.weight"\] must be a file name in the same folder, got "..\/elsewhere.safetensors"/,
    );
    await writeFile(join(folder, "model.safetensors.index.json"), JSON.stringify({ metadata: {} }));
    await assert.rejects(
      tv.loadCheckpoint(folder),
      /expected an object with "weight_map": \{weight name: shard file\}/,
    );
  });
});
