/**
 * A 7B model on this machine (issue 12): writes once, and caches, a Llama-2-7B-shaped checkpoint
 * in HF layout with deterministic bf16 weights (32 layers, hidden 4096, 32 heads, intermediate
 * 11008, vocab 32000: 13.5 GB in 2 GB shards), loads it in its own dtype, and prints the load
 * time, greedy generation with the KV cache in ms per token, a causal trace of 32 layers × 10
 * positions with the sweep engine, and the process's peak RSS.
 *
 *   npm run bench:big [-- --folder DIR] [-- --new-tokens N]
 */
import { existsSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as tv from "../src/index.js";

const CONFIG = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: 4096,
  intermediate_size: 11008,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  num_key_value_heads: 32,
  vocab_size: 32000,
  max_position_embeddings: 4096,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  hidden_act: "silu",
  tie_word_embeddings: false,
  bos_token_id: 1,
  eos_token_id: 2,
  torch_dtype: "bfloat16",
};
const SALT = "tsvene-bench-llama-7b-v1";
const SHARD_BYTES = 2e9;
const PROMPT = [1, 450, 382, 2593, 295, 23615, 338, 297, 278, 4272];
const GIB = 2 ** 30;

const { values } = parseArgs({
  options: {
    folder: { type: "string", default: join(tmpdir(), "tsvene-bench-llama-7b-bf16") },
    "new-tokens": { type: "string", default: "16" },
  },
});
const folder = values.folder!;
const newTokens = Number(values["new-tokens"]);

/** Every weight of the checkpoint: name, shape, and the constant its values centre on. */
function weightSpecs(): { name: string; shape: number[]; offset: number }[] {
  const d = CONFIG.hidden_size;
  const inner = CONFIG.intermediate_size;
  const specs = [{ name: "model.embed_tokens.weight", shape: [CONFIG.vocab_size, d], offset: 0 }];
  for (let l = 0; l < CONFIG.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    for (const proj of ["q", "k", "v", "o"])
      specs.push({ name: `${p}self_attn.${proj}_proj.weight`, shape: [d, d], offset: 0 });
    specs.push({ name: `${p}mlp.gate_proj.weight`, shape: [inner, d], offset: 0 });
    specs.push({ name: `${p}mlp.up_proj.weight`, shape: [inner, d], offset: 0 });
    specs.push({ name: `${p}mlp.down_proj.weight`, shape: [d, inner], offset: 0 });
    specs.push({ name: `${p}input_layernorm.weight`, shape: [d], offset: 1 });
    specs.push({ name: `${p}post_attention_layernorm.weight`, shape: [d], offset: 1 });
  }
  specs.push({ name: "model.norm.weight", shape: [d], offset: 1 });
  specs.push({ name: "lm_head.weight", shape: [CONFIG.vocab_size, d], offset: 0 });
  return specs;
}

/** Uniform values of std 0.02 around `offset` from a hash of name and index (bench/hashw-recipe.ts's), in bf16. */
function hashedBf16(name: string, shape: number[], offset: number): tv.Tensor {
  let seed = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(`${SALT}:${name}`)) seed = Math.imul(seed ^ byte, 0x01000193) >>> 0;
  const n = shape.reduce((a, b) => a * b, 1);
  const bits = new Uint16Array(n);
  const chunk = new Float32Array(Math.min(n, 1 << 20));
  const scale = (0.02 * Math.sqrt(3)) / 8388608;
  for (let start = 0; start < n; start += chunk.length) {
    const count = Math.min(chunk.length, n - start);
    for (let j = 0; j < count; j++) {
      let x = (seed + Math.imul(start + j, 0x9e3779b9)) >>> 0;
      x ^= x >>> 16;
      x = Math.imul(x, 0x85ebca6b) >>> 0;
      x ^= x >>> 13;
      x = Math.imul(x, 0xc2b2ae35) >>> 0;
      x ^= x >>> 16;
      chunk[j] = offset + ((x >>> 8) - 8388608) * scale;
    }
    bits.set(tv.roundToHalf(chunk.subarray(0, count), "bfloat16").bits, start);
  }
  return new tv.Tensor({ dtype: "bfloat16", bits }, shape);
}

/** Writes the checkpoint shard by shard (never more than one shard in memory), config.json last. */
async function writeCheckpoint(): Promise<void> {
  await rm(folder, { recursive: true, force: true });
  await mkdir(folder, { recursive: true });
  const shards: { name: string; shape: number[]; offset: number }[][] = [[]];
  let bytes = 0;
  let total = 0;
  for (const spec of weightSpecs()) {
    const size = 2 * spec.shape.reduce((a, b) => a * b, 1);
    if (bytes + size > SHARD_BYTES && shards[shards.length - 1].length > 0) {
      shards.push([]);
      bytes = 0;
    }
    shards[shards.length - 1].push(spec);
    bytes += size;
    total += size;
  }
  const weightMap: Record<string, string> = {};
  for (const [i, specs] of shards.entries()) {
    const file = `model-${String(i + 1).padStart(5, "0")}-of-${String(shards.length).padStart(5, "0")}.safetensors`;
    const tensors = new Map(specs.map((s) => [s.name, hashedBf16(s.name, s.shape, s.offset)]));
    await tv.writeSafetensors(join(folder, file), tensors, { dtype: "BF16", metadata: { format: "pt" } });
    for (const s of specs) weightMap[s.name] = file;
    console.log(`  wrote ${file} (${specs.length} tensors)`);
  }
  const index = { metadata: { total_size: total }, weight_map: weightMap };
  await writeFile(join(folder, "model.safetensors.index.json"), JSON.stringify(index, null, 2));
  await writeFile(join(folder, "config.json"), JSON.stringify(CONFIG, null, 2));
}

function rssGiB(): string {
  return (process.memoryUsage().rss / GIB).toFixed(2);
}

if (!existsSync(join(folder, "config.json"))) {
  console.log(`writing the Llama-2-7B-shaped bf16 checkpoint to ${folder} (once; cached)…`);
  const started = performance.now();
  await writeCheckpoint();
  console.log(`  written in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

console.log(`tsvene on a Llama-2-7B-shaped bf16 checkpoint (${folder}); kernels: ${tv.kernels().name}`);
let started = performance.now();
const { model } = await tv.loadPretrained(folder, { dtype: "auto" });
const loadSeconds = (performance.now() - started) / 1000;
const parameters = model.parameters().reduce((n, p) => n + p.size, 0);
console.log(`load: ${loadSeconds.toFixed(2)} s, ${(parameters / 1e9).toFixed(2)} B parameters, RSS ${rssGiB()} GiB`);

const prompt = tv.intTensor([PROMPT]);
// The first pass pages the mapped weights in from the file (or the page cache).
started = performance.now();
tv.noGrad(() => tv.generate(model, prompt, { maxNewTokens: 1 }));
console.log(`first forward pass (pages the weights in): ${((performance.now() - started) / 1000).toFixed(2)} s`);
started = performance.now();
tv.noGrad(() => tv.generate(model, prompt, { maxNewTokens: 1 }));
const firstToken = performance.now() - started;
started = performance.now();
const generated = tv.noGrad(() => tv.generate(model, prompt, { maxNewTokens: newTokens }));
const allTokens = performance.now() - started;
const perToken = (allTokens - firstToken) / (newTokens - 1);
console.log(
  `greedy generation with the KV cache: ${perToken.toFixed(0)} ms per token ` +
    `(prompt of ${PROMPT.length} + first token ${(firstToken / 1000).toFixed(2)} s; ${newTokens} tokens ` +
    `${(allTokens / 1000).toFixed(2)} s; sequence ${generated.sequences.data.slice(PROMPT.length).join(" ")}), ` +
    `RSS ${rssGiB()} GiB`,
);

started = performance.now();
const trace = tv.noGrad(() =>
  tv.causalTrace(model, {
    inputIds: prompt,
    tokens: PROMPT.map(String),
    corruptedPositions: [1, 2, 3],
    samples: 1,
    seed: 0,
  }),
);
const traceSeconds = (performance.now() - started) / 1000;
console.log(
  `causal trace, ${trace.grid.rows} layers × ${trace.grid.cols} positions (block_output, 1 noise draw): ` +
    `${traceSeconds.toFixed(1)} s (clean p ${trace.clean.toPrecision(3)}, ` +
    `corrupted ${trace.corrupted.toPrecision(3)}), ` +
    `RSS ${rssGiB()} GiB`,
);
const peak = (process.resourceUsage().maxRSS * 1024) / GIB;
console.log(`peak RSS: ${peak.toFixed(2)} GiB (limit 16 GiB: ${peak < 16 ? "met" : "NOT met"})`);
