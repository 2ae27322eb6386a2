/**
 * Model benchmark: load time and peak RSS of a GPT-2-small checkpoint (HASHW-v1 weights written
 * here, in F32 and sharded), and greedy generation tokens/s with the KV cache versus without.
 *
 *   npm run bench:models [-- --tokens 20]
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as tv from "../src/index.js";
import { hashwWeights, readManifest } from "./hashw.js";

const args = process.argv.slice(2);
const PROMPT = [15496, 995, 11, 262, 412, 733, 417, 8765, 318, 287];

if (args[0] === "--load-child") {
  const t0 = performance.now();
  const { model } = await tv.loadPretrained(args[1]);
  const loadMs = performance.now() - t0;
  console.log(
    JSON.stringify({
      loadMs,
      peakRssMiB: process.resourceUsage().maxRSS / 1024,
      parameters: model.parameters().reduce((n, p) => n + p.size, 0),
    }),
  );
  process.exit(0);
}

const newTokens = Number(args[args.indexOf("--tokens") + 1] ?? 20) || 20;

async function writeCheckpoint(folder: string, maxShardBytes?: number): Promise<void> {
  if (existsSync(join(folder, "config.json"))) return;
  const manifest = readManifest();
  const config = { ...manifest.config, model_type: "gpt2", architectures: ["GPT2LMHeadModel"] };
  await tv.saveCheckpoint(folder, hashwWeights(manifest), { config, maxShardBytes });
}

const root = join(tmpdir(), "tsvene-bench");
const single = join(root, "gpt2s-hashw-v1");
const sharded = join(root, "gpt2s-hashw-v1-sharded");
console.log(`writing HASHW-v1 GPT-2-small checkpoints under ${root} (once)…`);
await writeCheckpoint(single);
await writeCheckpoint(sharded, 100e6);

const self = fileURLToPath(import.meta.url);
for (const [label, folder] of [
  ["model.safetensors", single],
  ["5 shards", sharded],
]) {
  const run = spawnSync(process.execPath, [self, "--load-child", folder], { encoding: "utf8" });
  if (run.status !== 0) throw new Error(`load child failed: ${run.stderr}`);
  const r = JSON.parse(run.stdout.trim().split("\n").pop()!) as {
    loadMs: number;
    peakRssMiB: number;
    parameters: number;
  };
  console.log(
    `load ${label}: ${(r.loadMs / 1000).toFixed(2)} s, peak RSS ${r.peakRssMiB.toFixed(0)} MiB ` +
      `for ${(r.parameters / 1e6).toFixed(1)} M parameters ` +
      `(${((r.parameters * 4) / 2 ** 20).toFixed(0)} MiB of float32)`,
  );
}

const { model } = await tv.loadPretrained(single);
const ids = tv.intTensor([PROMPT]);
const generateSeconds = (useCache: boolean): number => {
  const t0 = performance.now();
  tv.generate(model, ids, { maxNewTokens: newTokens, useCache });
  return (performance.now() - t0) / 1000;
};
generateSeconds(true);
const cached = Math.min(generateSeconds(true), generateSeconds(true));
const uncached = Math.min(generateSeconds(false), generateSeconds(false));
console.log(
  `greedy generation of ${newTokens} tokens from a ${PROMPT.length}-token prompt: ` +
    `${(newTokens / cached).toFixed(1)} tokens/s with the KV cache, ` +
    `${(newTokens / uncached).toFixed(1)} tokens/s without (${(uncached / cached).toFixed(2)}×)`,
);
