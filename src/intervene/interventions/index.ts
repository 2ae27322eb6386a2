/**
 * The built-in interventions, a registry by pyvene class name, and a parser for pyvene's class
 * strings ("<class 'pyvene.models.interventions.VanillaIntervention'>").
 */
import type { Intervention } from "../intervention.js";
import { VanillaIntervention } from "./vanilla.js";
import { AdditionIntervention } from "./addition.js";
import { SubtractionIntervention } from "./subtraction.js";
import { ZeroIntervention } from "./zero.js";
import { CollectIntervention } from "./collect.js";
import { SkipIntervention } from "./skip.js";
import { ConstantSourceIntervention } from "./constant-source.js";
import { NoiseIntervention } from "./noise.js";
import { RotatedSpaceIntervention } from "./rotated-space.js";
import { LowRankRotatedSpaceIntervention } from "./low-rank-rotated-space.js";
import { BoundlessRotatedSpaceIntervention } from "./boundless-rotated-space.js";
import { SigmoidMaskIntervention } from "./sigmoid-mask.js";
import { SigmoidMaskRotatedSpaceIntervention } from "./sigmoid-mask-rotated-space.js";
import { PCARotatedSpaceIntervention } from "./pca-rotated-space.js";
import { AutoencoderIntervention, AutoencoderLayer } from "./autoencoder.js";
import { JumpReLUAutoencoderIntervention } from "./jumprelu-autoencoder.js";
import { LambdaIntervention } from "./lambda.js";

export {
  VanillaIntervention,
  AdditionIntervention,
  SubtractionIntervention,
  ZeroIntervention,
  CollectIntervention,
  SkipIntervention,
  ConstantSourceIntervention,
  NoiseIntervention,
  RotatedSpaceIntervention,
  LowRankRotatedSpaceIntervention,
  BoundlessRotatedSpaceIntervention,
  SigmoidMaskIntervention,
  SigmoidMaskRotatedSpaceIntervention,
  PCARotatedSpaceIntervention,
  AutoencoderIntervention,
  AutoencoderLayer,
  JumpReLUAutoencoderIntervention,
  LambdaIntervention,
};
export { DEFAULT_NOISE_LEVEL, type NoiseOptions } from "./noise.js";
export type { PCARotatedSpaceOptions } from "./pca-rotated-space.js";
export type { InterventionFunction, LambdaOptions } from "./lambda.js";

/** A built-in intervention class: constructed from an options object (pyvene's kwargs, camelCased). */
// biome-ignore lint/suspicious/noExplicitAny: each class takes its own options type; the constructor checks the keys
export type InterventionClass = new (options?: any) => Intervention;

/** Every intervention class a config can name, by pyvene's class name. */
export const INTERVENTION_TYPES = {
  VanillaIntervention,
  AdditionIntervention,
  SubtractionIntervention,
  ZeroIntervention,
  CollectIntervention,
  SkipIntervention,
  ConstantSourceIntervention,
  NoiseIntervention,
  RotatedSpaceIntervention,
  LowRankRotatedSpaceIntervention,
  BoundlessRotatedSpaceIntervention,
  SigmoidMaskIntervention,
  SigmoidMaskRotatedSpaceIntervention,
  PCARotatedSpaceIntervention,
  AutoencoderIntervention,
  JumpReLUAutoencoderIntervention,
} as const satisfies Record<string, InterventionClass>;

export type InterventionTypeName = keyof typeof INTERVENTION_TYPES;

/** The pyvene module each class lives in, for writing class strings. */
const PYVENE_MODULE = "pyvene.models.interventions";

/**
 * The class for a pyvene class string: "<class 'pyvene.models.interventions.VanillaIntervention'>",
 * a dotted path ("pyvene.models.interventions.VanillaIntervention") or a bare name.
 */
export function parseInterventionType(name: string): InterventionClass {
  if (typeof name !== "string")
    throw new TypeError(`intervention type must be a string such as "VanillaIntervention", got ${typeof name}`);
  const match = /^\s*<class\s+'([^']+)'>\s*$/.exec(name);
  const dotted = (match ? match[1] : name).trim();
  const bare = dotted.slice(dotted.lastIndexOf(".") + 1);
  if (Object.hasOwn(INTERVENTION_TYPES, bare)) return INTERVENTION_TYPES[bare as InterventionTypeName];
  if (bare === "LambdaIntervention") {
    throw new TypeError(
      `intervention type ${JSON.stringify(name)}: a LambdaIntervention wraps a function ` +
        "and cannot be built from its name; pass the function or a LambdaIntervention instance",
    );
  }
  throw new TypeError(
    `unknown intervention type ${JSON.stringify(name)} (known: ${Object.keys(INTERVENTION_TYPES).join(", ")})`,
  );
}

/** pyvene's class string for an intervention or class name, as pyvene writes it in saved configs. */
export function pyveneClassString(intervention: Intervention | string): string {
  const name = typeof intervention === "string" ? intervention : intervention.typeName;
  return `<class '${PYVENE_MODULE}.${name}'>`;
}
