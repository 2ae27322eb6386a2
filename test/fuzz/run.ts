/** The fuzz suite: each property over `runs` generated cases from `seed`, with the count of each outcome. */
import fc from "fast-check";
import * as tv from "../../src/index.js";
import { fixtureFolder } from "../support/fixtures.js";
import { checkEntry, entryCase } from "./entry-points.js";
import { checkScenario, scenario } from "./intervene.js";
import { checkModes, modeCase } from "./modes.js";
import { checkSafetensors, safetensorsCase } from "./safetensors.js";
import { checkSaved, savedCase } from "./saved-folders.js";

export interface FuzzSettings {
  runs: number;
  seed: number;
}

/** Outcome counts per property, e.g. { intervene: { ran: 120, rejected: 80 } }. */
export type FuzzCounts = Record<string, Record<string, number>>;

export async function runFuzz({ runs, seed }: FuzzSettings): Promise<FuzzCounts> {
  const { model } = await tv.loadPretrained(fixtureFolder("gpt2_tiny"));
  const counts: FuzzCounts = {};
  const tally = (property: string, outcome: string) => {
    const c = (counts[property] ??= {});
    c[outcome] = (c[outcome] ?? 0) + 1;
  };
  const settings = { numRuns: runs, seed, endOnFailure: true, includeErrorInReport: true };
  fc.assert(
    fc.property(scenario, (sc) => tally("intervene", checkScenario(model, sc))),
    settings,
  );
  fc.assert(
    fc.property(modeCase, (c) => tally("modes", checkModes(model, c))),
    settings,
  );
  fc.assert(
    fc.property(entryCase, (c) => tally("entry points", checkEntry(model, c))),
    { ...settings, numRuns: Math.ceil(runs / 4) },
  );
  fc.assert(
    fc.property(safetensorsCase, (c) => tally("safetensors", checkSafetensors(c))),
    settings,
  );
  // Each saved-folder case writes and reads a folder: a twentieth of the runs keeps the suite's time balanced.
  await fc.assert(
    fc.asyncProperty(savedCase, async (c) => tally("saved folders", await checkSaved(model, c))),
    { ...settings, numRuns: Math.ceil(runs / 20) },
  );
  return counts;
}
