/**
 * The parity runner beyond the shared fixtures: it reads pyvene's integer parameters (a case whose
 * BoundlessRotatedSpace keeps `intervention_population` as int64, as pyvene's state dict does, runs
 * and matches logits computed through the API), and a model folder it cannot load counts as failed
 * cases with the reason instead of stopping the run.
 */
import assert from "node:assert/strict";
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, it } from "node:test";
import { runParity } from "../src/cli/parity.js";
import * as tv from "../src/index.js";
import { fixtureFolder } from "./support/fixtures.js";

const scratch = await mkdtemp(join(tmpdir(), "tsvene-parity-int-"));
after(() => rm(scratch, { recursive: true, force: true }));

it("runs a Boundless case whose intervention_population is an integer tensor", async () => {
  const folder = join(scratch, "gpt2_boundless");
  await mkdir(folder);
  for (const f of ["config.json", "model.safetensors"])
    await copyFile(join(fixtureFolder("gpt2_tiny"), f), join(folder, f));
  const { model } = await tv.loadPretrained(folder);
  const base = [[83, 54, 22, 99, 51, 27]];
  const source = [[54, 46, 23, 32, 54, 30]];
  const rotation = tv.orthogonal(32, 32, new tv.Generator(3));
  const population = Array.from({ length: 32 }, (_, i) => 31 - i);
  const locations = { "sources->base": [[[[3]]], [[[4]]]] };

  const im = new tv.IntervenableModel(
    { layer: 1, component: "block_output", interventionType: tv.BoundlessRotatedSpaceIntervention },
    model,
  );
  const iv = [...im.interventions.values()][0] as tv.BoundlessRotatedSpaceIntervention;
  iv.rotateLayer.setWeight(rotation);
  iv.setInterventionBoundaries(0.3);
  iv.setTemperature(2);
  iv.interventionPopulation.data.set(population);
  const expected = im.forward({ inputIds: tv.intTensor(base) }, [{ inputIds: tv.intTensor(source) }], {
    unitLocations: locations,
  }).intervened.logits;
  iv.interventionPopulation.data.set(population.map((_, i) => i));
  const withDefault = im.forward({ inputIds: tv.intTensor(base) }, [{ inputIds: tv.intTensor(source) }], {
    unitLocations: locations,
  }).intervened.logits;
  assert.ok(
    tv.sub(expected, withDefault).abs().max(-1).max(-1).max(0).item() > 1e-4,
    "the stored population must matter to the result",
  );

  const key = "layer_1_comp_block_output_unit_pos_nunit_1#0";
  await tv.writeSafetensors(join(folder, "tensors.safetensors"), {
    rotate: rotation,
    population: new tv.IntTensor(population, [32]),
    logits: expected,
  });
  const cases = {
    format_version: 1,
    model: "gpt2_boundless",
    model_class: "GPT2LMHeadModel",
    model_files: ["config.json", "model.safetensors"],
    seed: 0,
    batch_size: 1,
    references: {},
    inputs: { base: { input_ids: base }, src0: { input_ids: source } },
    cases: [
      {
        name: "boundless_integer_population",
        method: "forward",
        mode: "parallel",
        representations: [
          {
            layer: 1,
            component: "block_output",
            unit: "pos",
            max_number_of_units: 1,
            intervention_type: "BoundlessRotatedSpaceIntervention",
          },
        ],
        intervention_keys: [key],
        interventions: [
          {
            key,
            class: "BoundlessRotatedSpaceIntervention",
            rotate_weight: "rotate",
            intervention_boundaries: 0.3,
            temperature: 2,
            intervention_population: "population",
          },
        ],
        base: "base",
        sources: ["src0"],
        unit_locations: locations,
        subspaces: null,
        logits: "logits",
        status: "ok",
      },
    ],
  };
  await writeFile(join(folder, "cases.json"), JSON.stringify(cases));
  const report = await runParity(scratch, () => {});
  assert.deepEqual(report.failures, []);
  assert.equal(report.passed, 1);
});

it("counts the cases of a model it cannot load as failed, with the reason, and goes on with the others", async () => {
  const root = join(scratch, "mixed");
  const broken = join(root, "a_broken");
  const good = join(root, "b_good");
  await mkdir(broken, { recursive: true });
  await mkdir(good, { recursive: true });
  const source = fixtureFolder("gpt2_tiny");
  for (const f of ["config.json", "model.safetensors", "cases.json", "tensors.safetensors"]) {
    await copyFile(join(source, f), join(good, f));
  }
  await copyFile(join(source, "cases.json"), join(broken, "cases.json"));
  await writeFile(join(broken, "config.json"), JSON.stringify({ model_type: "no_such_family" }));
  const lines: string[] = [];
  const report = await runParity(root, (line) => lines.push(line));
  const cases = (JSON.parse(await readFile(join(source, "cases.json"), "utf8")) as { cases: unknown[] }).cases.length;
  assert.equal(report.failed, cases);
  assert.equal(report.passed, cases);
  assert.match(lines[0], /^FAIL a_broken: cannot load the model: .*no_such_family.* \(\d+ cases counted as failed\)$/);
  assert.equal(lines.at(-1), `${cases} passed, ${cases} failed`);
  assert.ok(report.failures.every((f) => f.startsWith("FAIL a_broken/")));
});
