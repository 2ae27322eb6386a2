/**
 * Intervention overhead and hygiene: 1,000 intervened forwards (interchange + collection) on the
 * tiny GPT-2 of the shared fixtures, printing time per call, the hooks left on the model, and
 * resident and heap memory before and after.
 *
 *   npm run bench:intervene [-- --iterations 1000]
 */
import { fileURLToPath } from "node:url";
import * as tv from "../src/index.js";

const args = process.argv.slice(2);
const iterations = Number(args[args.indexOf("--iterations") + 1] ?? 1000) || 1000;
const folder = fileURLToPath(new URL("../../../shared/fixtures/pyvene-0.1.8/gpt2_tiny", import.meta.url));

function memory(): { rss: number; heap: number } {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss / 2 ** 20, heap: m.heapUsed / 2 ** 20 };
}

const { model } = await tv.loadPretrained(folder);
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
const im = new tv.IntervenableModel(
  [
    { layer: 1, component: "block_output", interventionType: tv.VanillaIntervention },
    { layer: 2, component: "head_attention_value_output", unit: "h.pos", interventionType: tv.CollectIntervention },
  ],
  model,
);
const side = [
  [[3], [3]],
  [
    [[0], [1]],
    [[2], [3]],
  ],
];
const call = () =>
  tv.noGrad(() => im.forward(base, [source, null], { unitLocations: { "sources->base": [side, side] } }));

for (let i = 0; i < 50; i++) call();
const before = memory();
const t0 = performance.now();
for (let i = 0; i < iterations; i++) call();
const ms = (performance.now() - t0) / iterations;
const after = memory();
let hooks = 0;
for (const [, m] of model.namedModules()) hooks += m.hookCount;
console.log(`${iterations} intervened forwards (source run + base run, batch 2, 6 tokens): ${ms.toFixed(3)} ms each`);
console.log(`hooks left on the model: ${hooks}`);
console.log(
  `RSS ${before.rss.toFixed(1)} → ${after.rss.toFixed(1)} MiB, ` +
    `heap ${before.heap.toFixed(1)} → ${after.heap.toFixed(1)} MiB`,
);
