/** pyvene's DAS hierarchical-equality experiment, at reduced size (examples/das-hierarchical-equality.ts). */
import assert from "node:assert/strict";
import { it } from "node:test";
import { runExperiment } from "../examples/das-hierarchical-equality.js";

it(`trains the MLP to ≥ 0.99 and aligns WX/YZ at layer 0 to test IIA ≥ 0.95, \
far above an untrained rotation`, () => {
  const r = runExperiment({ networkSteps: 1500, dasSteps: 800, testSize: 2048 });
  assert.ok(r.factualTestAccuracy >= 0.99, `factual test accuracy ${r.factualTestAccuracy}`);
  assert.equal(r.dasParameters, 256);
  assert.ok(r.testIia >= 0.95, `test IIA ${r.testIia}`);
  assert.ok(r.controlIia <= 0.7, `control IIA ${r.controlIia}`);
});
