/** The fuzz suite at a size CI affords, with a fixed seed (`npm run fuzz -- --runs N --seed S` runs it longer). */
import assert from "node:assert/strict";
import { it } from "node:test";
import { runFuzz } from "./fuzz/run.js";

it(`fuzz: every generated case runs as the reference says or is refused naming its defect, \
leaving no trace`, async () => {
  const counts = await runFuzz({ runs: 400, seed: 20261202 });
  for (const [property, outcomes] of Object.entries(counts)) {
    assert.ok(
      (outcomes.ran ?? 0) > 0 && (outcomes.rejected ?? 0) > 0,
      `${property}: both valid and defective cases must be drawn (${JSON.stringify(outcomes)})`,
    );
  }
});
