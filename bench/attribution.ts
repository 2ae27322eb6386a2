/**
 * Attribution patching beside activation patching on the same grid: all 12 layers × 10 positions of
 * block_output on the GPT-2-small-shaped HASHW-v1 weights (../shared/bench) and W1's prompt, with
 * its first four tokens swapped for the corrupted run (W1 corrupts them with embedding noise; the
 * patching sweeps take token prompts). Timed as the workloads are (3 runs after a warm-up).
 *
 *   npm run bench:attribution
 */
import * as tv from "../src/index.js";
import { hashwWeights, readManifest } from "./hashw.js";
import { timed } from "./timing.js";

const PROMPT = [15496, 995, 11, 262, 412, 733, 417, 8765, 318, 287];
const TARGET = 39619;

const manifest = readManifest();
const gpt2 = tv.modelFromConfig({ ...manifest.config, model_type: "gpt2", architectures: ["GPT2LMHeadModel"] });
gpt2.loadStateDict(hashwWeights(manifest));
const vocabulary = gpt2.config.vocab_size as number;
const corrupted = PROMPT.map((id, p) => (p < 4 ? (id + 1000) % vocabulary : id));
const clean = tv.intTensor([PROMPT]);
const base = tv.intTensor([corrupted]);

const attribution = timed(() =>
  tv.attributionPatching(gpt2, { clean, corrupted: base, component: "block_output", metric: "logit", target: TARGET }),
);
const patching = timed(() =>
  tv.activationPatching(gpt2, {
    base,
    source: clean,
    baseTokens: corrupted.map(String),
    sourceTokens: PROMPT.map(String),
    component: "block_output",
    metric: "logit",
    target: TARGET,
  }),
);

/** Spearman's ρ, to show how far the estimate ranks cells as patching does on these weights. */
function spearman(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const ranks = (v: ArrayLike<number>) => {
    const order = Array.from(v, (_, i) => i).sort((i, j) => v[i] - v[j]);
    const out = new Float64Array(v.length);
    order.forEach((i, rank) => {
      out[i] = rank;
    });
    return out;
  };
  const [x, y] = [ranks(a), ranks(b)];
  const mean = (x.length - 1) / 2;
  let [sxy, sxx, syy] = [0, 0, 0];
  for (let i = 0; i < x.length; i++) {
    sxy += (x[i] - mean) * (y[i] - mean);
    sxx += (x[i] - mean) ** 2;
    syy += (y[i] - mean) ** 2;
  }
  return sxy / Math.sqrt(sxx * syy);
}

const seconds = (t: { min: number; median: number }) =>
  `${t.min.toFixed(3)} s (min) / ${t.median.toFixed(3)} s (median)`;
const { grid } = patching.result;
console.log(`attribution patching (12 × 10 block_output, 1 forward + 1 backward): ${seconds(attribution)}`);
console.log(`activation patching (same grid, 120 patched runs, staircase): ${seconds(patching)}`);
console.log(
  `  ratio ${(patching.min / attribution.min).toFixed(1)}× (activation / attribution, min vs min); ` +
    `Spearman ρ of the grids ${spearman(
      attribution.result.grid.values,
      grid.values.map((v) => v - patching.result.base),
    ).toFixed(3)}`,
);
