/**
 * The fuzz suite, long: `npm run fuzz -- --runs 20000 --seed 7`. Prints each property's outcome
 * counts (ran: a valid case matched its reference; rejected: a planted defect was refused with an
 * error naming it). A failing case prints its seed and path: replay it, then keep it as a test.
 */
import { parseArgs } from "node:util";
import { runFuzz } from "../test/fuzz/run.js";

const { values } = parseArgs({
  options: { runs: { type: "string", default: "2000" }, seed: { type: "string" } },
  strict: true,
});
const runs = Number(values.runs);
const seed = values.seed === undefined ? Date.now() % 2 ** 31 : Number(values.seed);
if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(seed)) {
  console.error(`fuzz: --runs must be a positive integer and --seed an integer, got ${values.runs} and ${values.seed}`);
  process.exit(2);
}
const started = performance.now();
const counts = await runFuzz({ runs, seed });
console.log(
  `fuzz: --runs ${runs} --seed ${seed}, ${((performance.now() - started) / 1000).toFixed(1)} s ` +
    "(slower properties take a fraction of the runs)",
);
for (const [property, outcomes] of Object.entries(counts)) {
  const total = Object.values(outcomes).reduce((a, b) => a + b, 0);
  console.log(
    `  ${property.padEnd(14)} ${total} cases: ${Object.entries(outcomes)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}`,
  );
}
