/**
 * W3 (collect 12 layers over 64×32 tokens) and W4 (20 steered tokens) of ../shared/bench, for
 * comparing builds of the forward pass on a shared, noisy machine: every package root given is
 * loaded into this one process (its dist/ and its addon), and the rounds alternate between them, so
 * each sees the same load; prints min and median per root, the load average before and after, and
 * whether each root's results match pyvene's check values.
 *
 *   node dist/bench/forward.js [root …] [--rounds N] [--only W3|W4]
 *
 * A root is a package folder holding dist/ and build/ (e.g. a copy of this checkout built before a
 * change); with none given, this checkout alone. OPENBLAS_NUM_THREADS=1 makes the figures
 * single-core, which other jobs on the machine disturb less.
 */
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type * as TsveneModule from "../src/index.js";
import type * as HashwModule from "./hashw.js";
import { W1_PROMPT as PROMPT } from "./w1.js";

interface Workloads {
  root: string;
  W3: () => Float32Array[];
  W4: () => number[];
}

const SHARED_BENCH = fileURLToPath(new URL("../../../shared/bench/", import.meta.url));
const OWN_ROOT = fileURLToPath(new URL("../..", import.meta.url));

function parseArguments(argv: string[]): { roots: string[]; rounds: number; only: string[] } {
  const roots: string[] = [];
  let rounds = 5;
  let only = ["W3", "W4"];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--rounds") {
      rounds = Number(argv[++i]);
      if (!Number.isInteger(rounds) || rounds < 1) throw new RangeError(`--rounds must be a positive integer`);
    } else if (argv[i] === "--only") {
      const name = argv[++i];
      if (name !== "W3" && name !== "W4") throw new RangeError(`--only must be W3 or W4, got ${name}`);
      only = [name];
    } else if (argv[i].startsWith("--")) {
      throw new RangeError(`unknown option ${argv[i]} (expected --rounds N or --only W3|W4)`);
    } else {
      roots.push(resolve(argv[i]));
    }
  }
  return { roots: roots.length > 0 ? roots : [OWN_ROOT], rounds, only };
}

async function loadWorkloads(root: string): Promise<Workloads> {
  const tv = (await import(join(root, "dist/src/index.js"))) as typeof TsveneModule;
  const hashw = (await import(join(root, "dist/bench/hashw.js"))) as typeof HashwModule;
  const manifest = hashw.readManifest();
  const model = hashw.hashwModel(manifest);
  model.loadStateDict(hashw.hashwWeights(manifest));
  const prompts = JSON.parse(readFileSync(join(SHARED_BENCH, "weights/w3_prompts.json"), "utf8")) as {
    input_ids: number[][];
  };
  const inputIds = tv.intTensor(prompts.input_ids);
  const attentionMask = tv.intTensor(prompts.input_ids.map((row) => row.map(() => 1)));
  const steer = (await tv.readSafetensors(join(SHARED_BENCH, "weights/w4_steer.safetensors"))).tensors.get(
    "steer",
  ) as TsveneModule.Tensor;
  return {
    root,
    W3: () => tv.collectActivations(model, { inputIds, attentionMask, batchSize: 8 }).activations.map((a) => a.values),
    W4: () => {
      const im = new tv.IntervenableModel(
        Array.from({ length: 12 }, (_, layer) => ({
          layer,
          component: "mlp_output",
          interventionType: tv.AdditionIntervention,
        })),
        model,
      );
      const prompt = { inputIds: tv.intTensor([PROMPT]), attentionMask: tv.intTensor([PROMPT.map(() => 1)]) };
      const { generated } = im.generate(prompt, null, {
        sourceRepresentations: steer,
        maxNewTokens: 20,
        padTokenId: 50256,
      });
      return [...generated.sequences.data];
    },
  };
}

function checks(w: Workloads): string {
  const reference = JSON.parse(readFileSync(join(SHARED_BENCH, "pyvene_cpu.json"), "utf8")).configs.t1.checks as {
    W3: { sum_f64_per_layer: number[] };
    W4: { sequence: number[] };
  };
  const sums = w.W3().map((values) => values.reduce((s, v) => s + v, 0));
  const worst = Math.max(
    ...sums.map((s, l) => Math.abs(s - reference.W3.sum_f64_per_layer[l]) / Math.max(1, Math.abs(s))),
  );
  const same = JSON.stringify(w.W4()) === JSON.stringify(reference.W4.sequence);
  const sequence = same ? "identical" : "DIFFERS";
  return `W3 per-layer sums within ${worst.toExponential(1)} (relative) of pyvene's; W4 sequence ${sequence}`;
}

const { roots, rounds, only } = parseArguments(process.argv.slice(2));
const loads: Workloads[] = [];
for (const root of roots) loads.push(await loadWorkloads(root));
for (const w of loads) console.log(`${w.root}: ${checks(w)}`);
const before = loadavg()[0];
const seconds = loads.map(() => new Map<string, number[]>(only.map((name) => [name, []])));
for (let round = 0; round < rounds; round++) {
  loads.forEach((w, i) => {
    for (const name of only) {
      const start = performance.now();
      w[name as "W3" | "W4"]();
      seconds[i].get(name)?.push((performance.now() - start) / 1000);
    }
  });
}
console.log(`load average ${before.toFixed(2)} before, ${loadavg()[0].toFixed(2)} after; ${rounds} alternated rounds`);
loads.forEach((w, i) => {
  for (const name of only) {
    const runs = [...(seconds[i].get(name) ?? [])].sort((a, b) => a - b);
    console.log(
      `${name} ${w.root}: min ${runs[0].toFixed(3)} s, median ${runs[Math.floor(runs.length / 2)].toFixed(3)} s`,
    );
  }
});
