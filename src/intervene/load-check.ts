/**
 * Checks on a saved IntervenableModel, made before its interventions are built. Building takes
 * what the config says: a rotation over embed_dim features holds embed_dim² values and its
 * orthogonal initialisation costs embed_dim³, so a corrupt or hostile config (max_number_of_units
 * in the millions, say) could exhaust memory or hang before the weights file was even opened.
 * Here each intervention's parameter shapes are derived from the config and the model without
 * building it, and compared with the weights file's header: what gets built is then no larger
 * than what the file holds. The weights' values are checked as RotateLayer.setWeight checks a
 * rotation.
 */
import type { AnyModule } from "../nn/module.js";
import type { SiteMap } from "../models/sites.js";
import { Generator, type IntTensor, matmul, Tensor, transpose } from "../tensor/index.js";
import { formatShape, sameShape } from "../tensor/shape.js";
import {
  intervenableConfig,
  representationKeys,
  type IntervenableConfig,
  type IntervenableConfigInput,
  type RepresentationConfig,
} from "./config.js";
import type { Intervention } from "./intervention.js";
import { ConstantSourceIntervention, VanillaIntervention } from "./interventions/index.js";
import type { SavedInterventionState } from "./serialize.js";
import { resolveSite } from "./resolve-site.js";

/** pyvene's tensor name for a constant source. */
export const SOURCE_REPRESENTATION = "source_representation";
/** pyvene's bookkeeping buffers, found in converted pyvene weights; the config says the same. */
export const PYVENE_BUFFERS: ReadonlySet<string> = new Set(["embed_dim", "interchange_dim"]);
/** The frozen n×n base of a rotation's orthogonal parametrisation (rotation.ts). */
const ROTATION_BASE = ".parametrizations.weight.0.base";
/** Largest |BᵀB − I| accepted for a rotation base, as RotateLayer.setWeight accepts. */
const ORTHONORMAL_TOLERANCE = 1e-4;
/**
 * Stand-in sizes for building a small twin of each intervention: distinct primes that no
 * intervention uses as a constant, so each of its parameter dimensions maps back to embed_dim,
 * low_rank_dimension or latent_dim (or stays a constant such as Noise's 4).
 */
const PROBE = { embedDim: 37, lowRank: 23, latent: 19 } as const;

/** What one intervention of a saved config will be, found without building it. */
export interface InterventionPlan {
  key: string;
  typeName: string;
  /** Its parameters' shapes by state-dict name. */
  shapes: Map<string, number[]>;
  trainable: boolean;
  /** Whether the config makes it source-constant with a source that only the weights file holds. */
  needsSource: boolean;
  /** How its embed_dim comes about, for messages. */
  embedDim: string;
}

type Probed = Omit<InterventionPlan, "key" | "needsSource"> & { probe: Intervention };

/** The plan of every intervention of a saved config on `model`, in the order of the representations. */
export function planInterventions(
  input: IntervenableConfigInput,
  saved: SavedInterventionState,
  model: AnyModule,
  sites?: SiteMap,
): InterventionPlan[] {
  const config = intervenableConfig(input);
  const keys = representationKeys(config.representations);
  // Linked representations share the first one's intervention, so they share its plan.
  const linked = new Map<number | string, Probed>();
  return config.representations.map((r, i) => {
    const link = r.interventionLinkKey;
    const first = link === null ? undefined : linked.get(link);
    const { probe, ...plan } = first ?? probeOne(config, r, i, model, sites);
    if (link !== null) linked.set(link, { probe, ...plan });
    const sourceless = !probe.sourceConstant || probe instanceof ConstantSourceIntervention;
    return { ...plan, key: keys[i], needsSource: saved.constantSources[i] && sourceless };
  });
}

/** Builds a small twin of representation i's intervention and scales its parameter shapes up to the real sizes. */
function probeOne(
  config: IntervenableConfig,
  r: RepresentationConfig,
  i: number,
  model: AnyModule,
  sites?: SiteMap,
): Probed {
  const where = `representations[${i}]`;
  const site = resolveSite(model, r, where, sites);
  const embedDim = site.dim === null ? null : site.dim * r.maxNumberOfUnits;
  checkPartition(r, embedDim, where);
  const types = config.interventionTypes;
  const cls = r.interventionType ?? (Array.isArray(types) ? types[i] : types) ?? VanillaIntervention;
  const probe = new cls({
    embedDim: embedDim === null ? null : PROBE.embedDim,
    lowRankDimension: r.lowRankDimension === null ? null : PROBE.lowRank,
    latentDim: r.latentDim === null ? null : PROBE.latent,
    // Its own generator: the probe must not move the global random stream.
    generator: new Generator(0),
  });
  const real = new Map<number, number | null>([
    [PROBE.embedDim, embedDim],
    [PROBE.lowRank, r.lowRankDimension],
    [PROBE.latent, r.latentDim],
  ]);
  const shapes = new Map(probe.namedParameters().map(([name, p]) => [name, p.shape.map((d) => real.get(d) ?? d)]));
  const width =
    site.dim === null
      ? "the site has no known width"
      : `site width ${site.dim} × max_number_of_units ${r.maxNumberOfUnits}`;
  const { typeName, trainable } = probe;
  return { typeName, shapes, trainable, embedDim: `${embedDim ?? "?"} (${width})`, probe };
}

/** A subspace partition's features must lie within embed_dim: expanding a huge range would exhaust memory. */
function checkPartition(r: RepresentationConfig, embedDim: number | null, where: string): void {
  if (r.subspacePartition === null || embedDim === null) return;
  r.subspacePartition.forEach((entry, j) => {
    const isRange = entry.length === 2 && Number.isInteger(entry[0]);
    const beyond = isRange ? entry[1] > embedDim : entry.some((index) => index >= embedDim);
    if (beyond) {
      const what = `${where}.subspace_partition[${j}] ${JSON.stringify(entry)}`;
      throw new RangeError(`${what} reaches past embed_dim ${embedDim} (expected features 0..${embedDim - 1})`);
    }
  });
}

/**
 * Checks a weights file's header against the plans: every tensor belongs to an intervention,
 * and an intervention with weights has all its parameters with their shapes. Returns what is
 * missing ("key (what)"): trainable interventions without weights, constant sources without
 * their tensor.
 */
export function checkSavedWeights(
  plans: readonly InterventionPlan[],
  header: ReadonlyMap<string, { shape: readonly number[] }>,
  path: string,
): string[] {
  const byKey = new Map(plans.map((p) => [p.key, new Map<string, readonly number[]>()]));
  const strays: string[] = [];
  for (const [name, { shape }] of header) {
    const key = plans.find((p) => name.startsWith(`${p.key}.`))?.key;
    if (key === undefined) strays.push(name);
    else byKey.get(key)!.set(name.slice(key.length + 1), shape);
  }
  if (strays.length > 0) {
    const keys = plans.map((p) => p.key).join(", ");
    const what = `has tensors of no intervention here: ${strays.join(", ")}`;
    throw new RangeError(`loadIntervenable: ${path} ${what} (intervention keys: ${keys})`);
  }
  const missing: string[] = [];
  for (const plan of plans) {
    const held = byKey.get(plan.key)!;
    if ([...held.keys()].some(isParameterName)) checkParameters(plan, held, path);
    else if (plan.trainable && plan.shapes.size > 0) missing.push(`${plan.key} (its ${plan.typeName} parameters)`);
    if (plan.needsSource && !held.has(SOURCE_REPRESENTATION)) {
      missing.push(`${plan.key} (its constant ${SOURCE_REPRESENTATION})`);
    }
  }
  return missing;
}

function checkParameters(plan: InterventionPlan, held: ReadonlyMap<string, readonly number[]>, path: string): void {
  const problems: string[] = [];
  for (const [name, shape] of plan.shapes) {
    const saved = held.get(name);
    if (saved === undefined) problems.push(`${name} is missing`);
    else if (!sameShape(saved, shape)) {
      problems.push(`${name} has shape ${formatShape(saved)}, expected ${formatShape(shape)}`);
    }
  }
  const extra = [...held.keys()].filter((name) => isParameterName(name) && !plan.shapes.has(name));
  problems.push(...extra.map((name) => `${name} is not a parameter of it`));
  if (problems.length === 0) return;
  throw new RangeError(
    `loadIntervenable: ${path}: intervention "${plan.key}" (${plan.typeName}, embed_dim ${plan.embedDim}) ` +
      `does not fit the saved weights: ${problems.join("; ")}`,
  );
}

/** Whether a saved name is a parameter's, not a constant source or one of pyvene's bookkeeping buffers. */
function isParameterName(name: string): boolean {
  return name !== SOURCE_REPRESENTATION && !PYVENE_BUFFERS.has(name);
}

/**
 * Refuses saved values no training produces: NaN or infinite floats anywhere, and rotation bases
 * whose columns are not orthonormal (they would make the rotation silently something else).
 */
export function checkWeightValues(weights: ReadonlyMap<string, Tensor | IntTensor>, path: string): void {
  for (const [name, t] of weights) {
    if (!(t instanceof Tensor)) continue;
    const bad = t.data.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      const what = `"${name}" holds ${t.data[bad]} at flat index ${bad}`;
      throw new RangeError(`loadIntervenable: ${path}: ${what} (saved weights must be finite numbers)`);
    }
    if (name.endsWith(ROTATION_BASE)) checkOrthonormal(name, t, path);
  }
}

function checkOrthonormal(name: string, base: Tensor, path: string): void {
  const gram = matmul(transpose(base), base);
  const n = base.shape[1];
  let deviation = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      deviation = Math.max(deviation, Math.abs(gram.data[i * n + j] - (i === j ? 1 : 0)));
    }
  }
  if (!(deviation <= ORTHONORMAL_TOLERANCE)) {
    throw new RangeError(
      `loadIntervenable: ${path}: "${name}" is not orthonormal (max |BᵀB − I| = ${deviation.toExponential(2)}, ` +
        `tolerance ${ORTHONORMAL_TOLERANCE}): a rotation's base must be a rotation`,
    );
  }
}
