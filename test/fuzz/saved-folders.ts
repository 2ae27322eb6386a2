/**
 * Fuzzing saved IntervenableModel folders: a folder tsvene saved loads into an intervention model
 * that gives exactly the saved one's outputs; a folder with one planted defect in its config.json
 * or its weights (a size, a layer, a component, an unknown key or class, NaN weights, a rotation
 * that is not orthonormal, a missing or truncated file) is refused with an Error, leaving no hook.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import * as tv from "../../src/index.js";
import { hookCount } from "./intervene.js";

const TYPES = {
  RotatedSpaceIntervention: tv.RotatedSpaceIntervention,
  LowRankRotatedSpaceIntervention: tv.LowRankRotatedSpaceIntervention,
  BoundlessRotatedSpaceIntervention: tv.BoundlessRotatedSpaceIntervention,
  SigmoidMaskIntervention: tv.SigmoidMaskIntervention,
  VanillaIntervention: tv.VanillaIntervention,
} as const;

type Defect =
  | { where: "config"; field: number | string; value: unknown }
  | { where: "weights"; kind: "nan" | "scale" | "drop" | "truncate" };

export interface SavedCase {
  type: keyof typeof TYPES;
  layer: number;
  rank: number;
  seed: number;
  defect: Defect | null;
}

export const savedCase: fc.Arbitrary<SavedCase> = fc.record({
  type: fc.constantFrom(...(Object.keys(TYPES) as (keyof typeof TYPES)[])),
  layer: fc.integer({ min: 0, max: 3 }),
  rank: fc.integer({ min: 1, max: 4 }),
  seed: fc.nat(1000),
  defect: fc.oneof(
    { arbitrary: fc.constant(null), weight: 2 },
    fc
      .constantFrom<[number | string, unknown]>(
        [0, 99],
        [0, -1],
        [1, "toString"],
        [1, "block_outptu"],
        [2, "bogus"],
        [3, 1000000],
        [4, 100000],
        ["mdoe", "parallel"],
        ["intervention_types", ["<class 'pyvene.models.interventions.EvilIntervention'>"]],
        ["sorted_keys", "x"],
      )
      .map(([field, value]): Defect => ({ where: "config", field, value })),
    fc
      .constantFrom("nan", "scale", "drop", "truncate")
      .map((kind): Defect => ({ where: "weights", kind: kind as "nan" })),
  ),
});

/** A defect that cannot apply to the drawn intervention leaves the case valid. */
function applies(c: SavedCase): boolean {
  const d = c.defect;
  if (d === null) return false;
  const hasWeights = c.type !== "VanillaIntervention";
  if (d.where === "weights") return hasWeights && (d.kind !== "scale" || c.type.includes("Rotated"));
  if (d.field === 4) return c.type === "LowRankRotatedSpaceIntervention";
  return true;
}

export async function checkSaved(model: tv.PretrainedModel, c: SavedCase): Promise<"ran" | "rejected"> {
  const folder = await mkdtemp(join(tmpdir(), "tsvene-fuzz-saved-"));
  try {
    const representation = {
      layer: c.layer,
      component: "block_output",
      interventionType: TYPES[c.type],
      lowRankDimension: c.rank,
    };
    const im = new tv.IntervenableModel(representation, model);
    await tv.saveIntervenable(im, folder);
    if (applies(c)) await plant(folder, c.defect!);
    const base = { inputIds: tv.intTensor([[3, 14, 15, 92, 65]]) };
    const source = { inputIds: tv.intTensor([[35, 89, 79, 32, 38]]) };
    const unitLocations = { "sources->base": 2 };
    let loaded: tv.IntervenableModel | undefined;
    let error: unknown;
    try {
      loaded = await tv.loadIntervenable(folder, model);
    } catch (e) {
      error = e;
    }
    assert.equal(hookCount(model), 0, "loading left a hook on the model");
    if (applies(c)) {
      assert.ok(
        error instanceof Error,
        `defect ${JSON.stringify(c.defect)} in a saved ${c.type} was not refused (${String(error)})`,
      );
      return "rejected";
    }
    if (error !== undefined) throw error;
    const want = im.forward(base, [source], { unitLocations }).intervened.logits;
    const got = loaded!.forward(base, [source], { unitLocations }).intervened.logits;
    assert.deepEqual([...got.data], [...want.data], `a saved ${c.type} does not reload to the same outputs`);
    return "ran";
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
}

async function plant(folder: string, d: Defect): Promise<void> {
  if (d.where === "config") {
    const path = join(folder, "config.json");
    const config = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown> & {
      representations: unknown[][];
    };
    if (typeof d.field === "number") config.representations[0][d.field] = d.value;
    else config[d.field] = d.value;
    await writeFile(path, JSON.stringify(config));
    return;
  }
  const path = join(folder, "interventions.safetensors");
  if (d.kind === "truncate") {
    const bytes = await readFile(path);
    await writeFile(path, bytes.subarray(0, bytes.length - 4));
    return;
  }
  const { tensors } = await tv.readSafetensors(path);
  const entries = [...tensors].filter(([, t]) => t instanceof tv.Tensor) as [string, tv.Tensor][];
  const [name, t] = (d.kind === "scale" && entries.find(([n]) => n.endsWith(".base"))) || entries[0];
  if (d.kind === "drop") tensors.delete(name);
  else
    tensors.set(
      name,
      d.kind === "nan"
        ? new tv.Tensor(
            t.data.map((v, i) => (i === 0 ? NaN : v)),
            t.shape,
          )
        : tv.mul(t, 1.1),
    );
  await tv.writeSafetensors(path, tensors);
}
