/** pyvene parity: every case of the shared fixtures through the parity command's runner. */
import assert from "node:assert/strict";
import { it } from "node:test";
import { runParity } from "../src/cli/parity.js";
import { FIXTURE_ROOT } from "./support/fixtures.js";

it("reproduces all 129 pyvene 0.1.8 cases within 1e-4 (divergent ones against *_intended)", async () => {
  const lines: string[] = [];
  const report = await runParity(FIXTURE_ROOT, (line) => lines.push(line));
  assert.deepEqual(report.failures, []);
  assert.equal(report.passed, 129);
  assert.equal(report.failed, 0);
  assert.equal(report.intended, 3);
  assert.equal(lines.at(-1), "129 passed, 0 failed");
});
