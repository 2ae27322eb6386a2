/**
 * Fuzzing the rest of IntervenableModel's surface: serial and parallel modes, head units ("h",
 * "h.pos"), trainable and sourceless interventions, subspaces, null sources, and generate.
 * Valid draws must run; a planted defect must be refused with an error naming it; nothing may
 * fail with an engine error (a property read of undefined, a non-function call) and, returning
 * or throwing, the model keeps no hook and its weights.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import * as tv from "../../src/index.js";
import { hookCount } from "./intervene.js";

const TYPES = {
  Vanilla: tv.VanillaIntervention,
  Addition: tv.AdditionIntervention,
  Zero: tv.ZeroIntervention,
  Collect: tv.CollectIntervention,
  RotatedSpace: tv.RotatedSpaceIntervention,
  LowRank: tv.LowRankRotatedSpaceIntervention,
} as const;
type TypeName = keyof typeof TYPES;
const SOURCELESS: readonly TypeName[] = ["Zero", "Collect"];
const HEADS = 4;
const LENGTH = 5;

interface ModeRep {
  layer: number;
  heads: boolean;
  twoLevel: boolean;
  type: TypeName;
  units: number[];
  sourceUnits: number[];
  headUnits: number[];
}

export interface ModeCase {
  serial: boolean;
  reps: ModeRep[];
  withSubspaces: boolean;
  generate: boolean;
  interveneOnPrompt: boolean;
  defect: "layer" | "optionKey" | "nullSource" | "headUnitRange" | null;
}

const units = (max: number, k: number) =>
  fc.uniqueArray(fc.integer({ min: 0, max: max - 1 }), { minLength: k, maxLength: k });

const rep: fc.Arbitrary<ModeRep> = fc.integer({ min: 1, max: 2 }).chain((k) =>
  fc.record({
    layer: fc.integer({ min: 0, max: 3 }),
    heads: fc.boolean(),
    twoLevel: fc.boolean(),
    type: fc.constantFrom(...(Object.keys(TYPES) as TypeName[])),
    units: units(LENGTH, k),
    sourceUnits: units(LENGTH, k),
    headUnits: units(HEADS, k),
  }),
);

export const modeCase: fc.Arbitrary<ModeCase> = fc.record({
  serial: fc.boolean(),
  reps: fc.array(rep, { minLength: 1, maxLength: 3 }),
  withSubspaces: fc.boolean(),
  generate: fc.boolean(),
  interveneOnPrompt: fc.boolean(),
  defect: fc.oneof(
    { arbitrary: fc.constant(null), weight: 3 },
    fc.constantFrom("layer", "optionKey", "nullSource", "headUnitRange"),
  ),
});

/** The unit locations of one representation: positions, heads, or (heads, positions). */
function locationsOf(r: ModeRep, side: "source" | "base", defect: boolean): unknown {
  const positions = side === "source" ? r.sourceUnits : r.units;
  if (!r.heads) return [positions];
  const heads = defect ? [HEADS + 3, ...r.headUnits.slice(1)] : r.headUnits;
  return r.twoLevel ? [[heads], [positions]] : [heads];
}

function expectedField(c: ModeCase): string | null {
  switch (c.defect) {
    case "layer":
      return "layer";
    case "optionKey":
      return "unitLocatons";
    case "nullSource":
      return c.reps.some((r) => !SOURCELESS.includes(r.type)) ? "needs a source" : null;
    case "headUnitRange":
      return c.reps[0].heads ? "out of range" : null;
    default:
      return null;
  }
}

export function checkModes(model: tv.PretrainedModel, drawn: ModeCase): "ran" | "rejected" {
  const c = effective(drawn);
  const field = expectedField(c);
  const weights = model.parameters().map((p) => p.data.slice());
  let error: unknown;
  try {
    run(model, c);
  } catch (e) {
    error = e;
  }
  assert.equal(hookCount(model), 0, "a hook was left on the model");
  model.parameters().forEach((p, i) =>
    assert.ok(
      p.data.every((v, j) => Object.is(v, weights[i][j])),
      "the model's weights changed",
    ),
  );
  if (error !== undefined) {
    assert.ok(error instanceof Error, `a non-Error was thrown: ${String(error)}`);
    assert.doesNotMatch(
      error.message,
      /Cannot read prop|is not a function|is not iterable|is not a constructor|Maximum call stack/,
      "an engine error escaped",
    );
  }
  if (field === null) {
    if (error !== undefined) throw error;
    return "ran";
  }
  assert.ok(
    error instanceof Error && error.message.includes(field),
    `defect ${c.defect} was not refused naming "${field}": ${String(error)}`,
  );
  return "rejected";
}

/** Generating without locations intervenes at each new token's position: sourceless kinds on positions fit there. */
function effective(drawn: ModeCase): ModeCase {
  if (!drawn.generate || drawn.interveneOnPrompt) return drawn;
  const reps = drawn.reps.map((r) => ({
    ...r,
    heads: false,
    type: SOURCELESS.includes(r.type) ? r.type : ("Zero" as const),
  }));
  return { ...drawn, serial: false, reps };
}

function run(model: tv.PretrainedModel, c: ModeCase): void {
  const representations = c.reps.map((r, i) => ({
    layer: c.defect === "layer" && i === 0 ? 99 : r.layer,
    component: r.heads ? "head_attention_value_output" : "block_output",
    unit: r.heads ? (r.twoLevel ? "h.pos" : "h") : "pos",
    maxNumberOfUnits: r.heads ? r.headUnits.length : r.units.length,
    interventionType: TYPES[r.type],
    lowRankDimension: 2,
    ...(c.serial ? { groupKey: i } : {}),
  }));
  const im = new tv.IntervenableModel({ representations, mode: c.serial ? "serial" : "parallel" }, model);
  const pair = (rs: readonly ModeRep[], first: number) => [
    rs.map((r) => locationsOf(r, "source", false)),
    rs.map((r, j) => locationsOf(r, "base", c.defect === "headUnitRange" && first + j === 0)),
  ];
  const unitLocations: Record<string, unknown> = c.serial
    ? Object.fromEntries(
        c.reps.map((r, g) => [
          g === c.reps.length - 1 ? `source_${g}->base` : `source_${g}->source_${g + 1}`,
          pair([r], g),
        ]),
      )
    : { "sources->base": pair(c.reps, 0) };
  const sources = c.reps.map((r) =>
    c.defect === "nullSource" || SOURCELESS.includes(r.type) ? null : { inputIds: tv.intTensor([[7, 1, 40, 2, 9]]) },
  );
  const subspaces =
    c.withSubspaces && c.reps.every((r) => r.type === "Vanilla" || r.type === "RotatedSpace")
      ? c.reps.map(() => [[0, 1]])
      : null;
  const options: Record<string, unknown> = {
    [c.defect === "optionKey" ? "unitLocatons" : "unitLocations"]: unitLocations,
    subspaces,
  };
  const inputIds = tv.intTensor([[3, 14, 15, 92, 65]]);
  if (!c.generate) {
    im.forward({ inputIds }, sources, options);
    return;
  }
  if (!c.interveneOnPrompt && c.defect !== "optionKey") delete options.unitLocations;
  const out = im.generate({ inputIds }, sources, {
    ...options,
    maxNewTokens: 2,
    interveneOnPrompt: c.interveneOnPrompt,
  });
  assert.deepEqual(out.generated.sequences.shape, [1, 7]);
}
