/**
 * Workload W2 of ../shared/bench: pyvene's DAS_Main_Introduction set-up on its trained MLP and data,
 * 100 Adam steps of batch 256 with two linked RotatedSpace interventions, timed as pyvene was (whole
 * workload, 3 runs after a warm-up) and checked against pyvene's losses.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as tv from "../src/index.js";
import { SHARED_BENCH } from "./hashw.js";
import { timed } from "./timing.js";

const STEPS = 100;
const BATCH = 256;

interface W2Checks {
  losses: number[];
  final_rotation_sum: number;
}
const pyvene = JSON.parse(readFileSync(join(SHARED_BENCH, "pyvene_cpu.json"), "utf8")) as {
  configs: { t1: { results: { W2: { per_step_min_s: number; per_step_median_s: number } }; checks: { W2: W2Checks } } };
};

const { model: mlp } = await tv.loadPretrained(join(SHARED_BENCH, "weights/w2_mlp"));
const data = (await tv.readSafetensors(join(SHARED_BENCH, "weights/w2_das_data.safetensors"))).tensors;
const float = (k: string) => data.get(k) as tv.Tensor;
const labels = data.get("label") as tv.IntTensor;
const rows = (t: tv.Tensor, s: number) => tv.slice(t, 0, s * BATCH, (s + 1) * BATCH).reshape([BATCH, 1, 16]);
const at = Array.from({ length: BATCH }, () => [0]);
const subspaces = [at.map(() => [0, 1, 2, 3, 4, 5, 6, 7]), at.map(() => [8, 9, 10, 11, 12, 13, 14, 15])];

function w2(): { losses: number[]; rotationSum: number } {
  const im = new tv.IntervenableModel(
    [0, 1].map(() => ({
      layer: 0,
      component: "block_output",
      interventionType: tv.RotatedSpaceIntervention,
      interventionLinkKey: 0,
    })),
    mlp,
  );
  const rotation = im.interventions.get(im.keys[0]) as tv.RotatedSpaceIntervention;
  rotation.rotateLayer.setWeight(float("rotation_init"));
  const optimizer = new tv.Adam(im.getTrainableParameters(), { lr: 1e-3 });
  const losses: number[] = [];
  for (let s = 0; s < STEPS; s++) {
    const logits = im.forward(
      { inputsEmbeds: rows(float("base"), s) },
      [{ inputsEmbeds: rows(float("source0"), s) }, { inputsEmbeds: rows(float("source1"), s) }],
      {
        unitLocations: {
          "sources->base": [
            [at, at],
            [at, at],
          ],
        },
        subspaces,
      },
    ).intervened.logits;
    const loss = tv.crossEntropy(logits, new tv.IntTensor(labels.data.subarray(s * BATCH, (s + 1) * BATCH), [BATCH]));
    loss.backward();
    optimizer.step();
    im.zeroGrad();
    losses.push(loss.item());
  }
  const w = rotation.rotateLayer.weight().data;
  return { losses, rotationSum: w.reduce((a, v) => a + v, 0) };
}

/** Runs W2 and prints tsvene's time per step beside pyvene's, with the check values. */
export function benchmarkW2(): void {
  const run = timed(w2);
  const reference = pyvene.configs.t1;
  const lossDiff = Math.max(...run.result.losses.map((l, i) => Math.abs(l - reference.checks.W2.losses[i])));
  console.log(
    `W2 DAS (MLP h16, batch ${BATCH}, ${STEPS} Adam steps): ` +
      `tsvene ${((1000 * run.min) / STEPS).toFixed(2)} ms/step (min), ` +
      `${((1000 * run.median) / STEPS).toFixed(2)} (median); ` +
      `pyvene ${(1000 * reference.results.W2.per_step_min_s).toFixed(2)} / ` +
      `${(1000 * reference.results.W2.per_step_median_s).toFixed(2)} ms → ` +
      `${((reference.results.W2.per_step_min_s * STEPS) / run.min).toFixed(2)}× pyvene's speed`,
  );
  console.log(
    `  check: losses ${run.result.losses[0].toFixed(4)} → ${run.result.losses[STEPS - 1].toFixed(4)} ` +
      `(pyvene 7.5289 → 4.0130), max |Δ| over the 100 losses ${lossDiff.toExponential(2)}; ` +
      `final rotation sum ${run.result.rotationSum.toFixed(5)} ` +
      `(pyvene ${reference.checks.W2.final_rotation_sum.toFixed(5)})`,
  );
}
