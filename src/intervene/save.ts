/**
 * A trained IntervenableModel as a folder (pyvene's save/load, spec §2.4), in safetensors:
 *
 *   config.json                    pyvene's config JSON (toPyveneConfig): representations as
 *                                  14-element lists, intervention_types as class strings,
 *                                  sorted_keys, intervention_dimensions, intervention_constant_sources
 *   interventions.safetensors      `{intervention key}.{state-dict name}` for every parameter of
 *                                  every intervention that has any (pyvene's names, e.g.
 *                                  `…#0.rotate_layer.parametrizations.weight.original`), and
 *                                  `{key}.source_representation` for constant sources
 *   model_parameters.safetensors   with includeModel: the model's parameters that require a
 *                                  gradient, by their own names (pyvene's pytorch_model.bin)
 *
 * Loading rebuilds the IntervenableModel from the config on the given model, restores each
 * intervention's interchange dimension and constant source, and loads its weights strictly:
 * every parameter of a trainable intervention must be present with its shape, and every tensor
 * in the file must belong to an intervention. A reference that is not a local folder is a Hub
 * repo id, fetched through the io layer's Hub cache (config.json and the safetensors files only).
 *
 * Decisions where pyvene's own folders or rules do not carry over:
 * - pyvene writes its weights as PyTorch pickles (`intkey_{key}.bin`, `pytorch_model.bin`),
 *   which tsvene cannot read. Its config.json loads as it is; weights it needs but finds only as
 *   .bin files are an error that gives the Python to convert them (PYVENE_WEIGHTS_HINT), or, with
 *   `allowMissingWeights`, a warning, the interventions keeping their fresh initial weights.
 *   Converted files may keep pyvene's `embed_dim` / `interchange_dim` buffers and int64 tensors.
 * - A null intervention_dimensions entry keeps the intervention's own interchange dimension
 *   (its embedDim, or all features when the width is unknown). pyvene puts hidden_size there
 *   (head size for "head_" components), which is the same number for the components whose
 *   width it knows and wrong for wider ones.
 * - The model parameters are loaded whenever the folder has them, unless includeModel is false
 *   (pyvene loads them only when asked), and require a gradient again, as when they were saved.
 */
import { mkdir, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { CONFIG_FILE } from "../io/checkpoint.js";
import { exists, readJsonObjectIfPresent, writeTextAtomically } from "../io/files.js";
import { HubError, isHubId, resolveHubSnapshot, type ResolveModelOptions, type SnapshotPlan } from "../io/hub.js";
import { readSafetensors, writeSafetensors } from "../io/safetensors.js";
import type { ModelOutput } from "../models/model.js";
import type { SiteMap } from "../models/sites.js";
import type { AnyModule } from "../nn/module.js";
import { IntTensor, Tensor } from "../tensor/index.js";
import { formatShape, sameShape } from "../tensor/shape.js";
import { IntervenableModel } from "./intervenable-model.js";
import type { Intervention } from "./intervention.js";
import { ConstantSourceIntervention, INTERVENTION_TYPES } from "./interventions/index.js";
import { fromPyveneConfig, toPyveneConfig, type SavedInterventionState } from "./serialize.js";

export const INTERVENTIONS_FILE = "interventions.safetensors";
export const MODEL_PARAMETERS_FILE = "model_parameters.safetensors";
/** pyvene's tensor name for a constant source, kept in tsvene's files. */
const SOURCE_REPRESENTATION = "source_representation";
/** pyvene's bookkeeping buffers, found in converted pyvene weights; the config says the same. */
const PYVENE_BUFFERS = new Set(["embed_dim", "interchange_dim"]);
const PYVENE_INTERVENTION_FILE = /^intkey_.+\.bin$/;
const PYVENE_MODEL_FILE = "pytorch_model.bin";

/** How to turn pyvene's pickled weights into the files tsvene reads (run once, in the folder). */
export const PYVENE_WEIGHTS_HINT =
  "tsvene cannot read PyTorch's pickled .bin files; convert them once with Python in that folder:\n" +
  "  import glob, torch; from safetensors.torch import save_file\n" +
  '  save_file({f"{p[7:-4]}.{k}": v.contiguous() for p in glob.glob("intkey_*.bin") for k, v in torch.load(p).items()}, "interventions.safetensors")\n' +
  '  save_file({k: v.contiguous() for k, v in torch.load("pytorch_model.bin").items()}, "model_parameters.safetensors")  # only if it exists';

export interface SaveIntervenableOptions {
  /** Also save the model's parameters that require a gradient (pyvene's include_model). */
  includeModel?: boolean;
}

export interface LoadIntervenableOptions extends ResolveModelOptions {
  /** Load model_parameters.safetensors into the model: default when the folder has it; true requires it. */
  includeModel?: boolean;
  /** Warn instead of failing when weights are missing (e.g. pyvene's .bin files), keeping fresh initial weights. */
  allowMissingWeights?: boolean;
  /** Sites for components of a model tsvene does not ship, as for the IntervenableModel constructor. */
  sites?: SiteMap;
}

/**
 * Writes `im` to `folder` (created if needed): weights first, config.json last, each file
 * atomically; tsvene files a previous save left there and this one does not write are removed.
 */
export async function saveIntervenable(im: IntervenableModel<unknown>, folder: string, options: SaveIntervenableOptions = {}): Promise<void> {
  for (const key of im.keys) {
    const iv = im.interventions.get(key)!;
    const known = (INTERVENTION_TYPES as Record<string, unknown>)[iv.typeName];
    if (iv.constructor !== known || iv.typeName === "PCARotatedSpaceIntervention") {
      const why = iv.typeName === "LambdaIntervention" ? "a function intervention"
        : iv.typeName === "PCARotatedSpaceIntervention" ? "built from a fitted PCA, not from a config"
        : "not one of tsvene's built-in intervention classes";
      throw new TypeError(`saveIntervenable: intervention "${key}" (${iv.typeName}) is ${why}, so loadIntervenable could not rebuild it`);
    }
  }
  const weights = new Map<string, Tensor>();
  for (const key of im.keys) {
    const iv = im.interventions.get(key)!;
    for (const [name, p] of iv.namedParameters()) weights.set(`${key}.${name}`, p);
    if (iv.sourceRepresentation !== null) weights.set(`${key}.${SOURCE_REPRESENTATION}`, iv.sourceRepresentation);
  }
  const modelWeights = new Map(options.includeModel ? im.model.namedParameters().filter(([, p]) => p.requiresGrad) : []);
  const config = toPyveneConfig(im);

  await makeFolder(folder);
  await writeOrRemove(join(folder, INTERVENTIONS_FILE), weights);
  await writeOrRemove(join(folder, MODEL_PARAMETERS_FILE), options.includeModel ? modelWeights : new Map());
  await writeTextAtomically(join(folder, CONFIG_FILE), `${JSON.stringify(config, null, 2)}\n`);
}

/**
 * The IntervenableModel saved at `reference` (a folder, or a Hub repo id), rebuilt on `model`.
 * Nothing is changed when it fails: the model's weights are written last, once everything has
 * been checked, and its parameters' gradient flags are put back.
 */
export async function loadIntervenable<Out = ModelOutput>(reference: string, model: AnyModule, options: LoadIntervenableOptions = {}): Promise<IntervenableModel<Out>> {
  const folder = await locateFolder(reference, options);
  const configPath = join(folder, CONFIG_FILE);
  const json = await readJsonObjectIfPresent(configPath);
  if (json === undefined) throw new Error(`loadIntervenable: ${folder} has no ${CONFIG_FILE}, so it is not a saved IntervenableModel`);
  const { config, saved } = inContext(configPath, () => fromPyveneConfig(json));
  checkSavedLists(saved, config.representations as unknown[], configPath);

  const files = new Set(await readdir(folder));
  const weightsPath = join(folder, INTERVENTIONS_FILE);
  const weights = files.has(INTERVENTIONS_FILE) ? (await readSafetensors(weightsPath)).tensors : new Map<string, Tensor | IntTensor>();
  const modelWeights = await readModelWeights(folder, files, options.includeModel);
  const pyveneWeights = [...files].filter((f) => PYVENE_INTERVENTION_FILE.test(f));

  const gradFlags = model.parameters().map((p) => [p, p.requiresGrad] as const);
  try {
    const im = inContext(configPath, () => new IntervenableModel<Out>(config, model, { sites: options.sites }));
    const missing = restoreInterventions(im, saved, weights, weightsPath);
    if (missing.length > 0) {
      const what = `loadIntervenable: ${folder} has no weights for ${missing.join(", ")}` +
        (pyveneWeights.length > 0 ? `, only pyvene's ${pyveneWeights.join(", ")}` : ` in ${INTERVENTIONS_FILE}`);
      const hint = pyveneWeights.length > 0 ? ` ${PYVENE_WEIGHTS_HINT}` : "";
      if (!options.allowMissingWeights) throw new Error(`${what}. Pass allowMissingWeights to load the config with fresh initial weights.${hint}`);
      process.emitWarning(`${what}; they keep their fresh initial weights.${hint}`, { code: "TSVENE_MISSING_WEIGHTS" });
    }
    if (modelWeights) loadModelParameters(model, modelWeights, join(folder, MODEL_PARAMETERS_FILE));
    return im;
  } catch (error) {
    for (const [p, flag] of gradFlags) p.requiresGrad = flag;
    throw error;
  }
}

/**
 * Puts each intervention's saved interchange dimension, constant source and weights in place.
 * Returns what is missing ("key (what)"): trainable interventions without weights, constant
 * sources without their tensor. Weights that are present must match exactly.
 */
function restoreInterventions(im: IntervenableModel<unknown>, saved: SavedInterventionState, weights: ReadonlyMap<string, Tensor | IntTensor>, weightsPath: string): string[] {
  const byKey = new Map(im.keys.map((k) => [k, new Map<string, Tensor | IntTensor>()]));
  const strays: string[] = [];
  for (const [name, t] of weights) {
    const key = im.keys.find((k) => name.startsWith(`${k}.`));
    if (key === undefined) strays.push(name);
    else byKey.get(key)!.set(name.slice(key.length + 1), t);
  }
  if (strays.length > 0) {
    throw new RangeError(`loadIntervenable: ${weightsPath} has tensors of no intervention here: ${strays.join(", ")} (intervention keys: ${im.keys.join(", ")})`);
  }
  const missing: string[] = [];
  im.representationKeys.forEach((key, i) => {
    const iv = im.interventions.get(key)!;
    const where = `${weightsPath}: intervention "${key}" (${iv.typeName})`;
    const dim = saved.interchangeDims[i];
    if (dim !== null) iv.setInterchangeDim(dim);
    const state = byKey.get(key)!;
    const source = state.get(SOURCE_REPRESENTATION);
    state.delete(SOURCE_REPRESENTATION);
    checkPyveneBuffers(iv, state, where);
    if (state.size > 0 || (iv.trainable && iv.namedParameters().length > 0)) {
      if (state.size === 0) missing.push(`${key} (its ${iv.typeName} parameters)`);
      else inContext(where, () => iv.loadStateDict(new Map([...state].map(([name, t]) => [name, asFloat(t)]))));
    }
    const constant = saved.constantSources[i];
    if (source !== undefined) {
      iv.setSourceRepresentation(asFloat(source));
    } else if (constant && (!iv.sourceConstant || iv instanceof ConstantSourceIntervention)) {
      missing.push(`${key} (its constant ${SOURCE_REPRESENTATION})`);
      return;
    }
    if (iv.sourceConstant !== constant) {
      throw new RangeError(`loadIntervenable: config intervention_constant_sources[${i}] is ${constant}, but the ${iv.typeName} at "${key}" ${iv.sourceConstant ? "is" : "is not"} source-constant`);
    }
  });
  return missing;
}

/** Drops pyvene's embed_dim / interchange_dim buffers from `state`, checking embed_dim against the intervention's. */
function checkPyveneBuffers(iv: Intervention, state: Map<string, Tensor | IntTensor>, where: string): void {
  for (const name of PYVENE_BUFFERS) {
    const t = state.get(name);
    if (t === undefined) continue;
    state.delete(name);
    if (name === "embed_dim" && (t.size !== 1 || t.data[0] !== iv.embedDim)) {
      throw new RangeError(`loadIntervenable: ${where}: the weights were saved with embed_dim ${t.size === 1 ? t.data[0] : formatShape(t.shape)}, but this intervention has embedDim ${iv.embedDim}`);
    }
  }
}

/** The model parameters to load, or null: required when includeModel is true, skipped when false. */
async function readModelWeights(folder: string, files: ReadonlySet<string>, includeModel: boolean | undefined): Promise<Map<string, Tensor | IntTensor> | null> {
  if (includeModel === false) return null;
  if (!files.has(MODEL_PARAMETERS_FILE)) {
    if (!includeModel) return null;
    const pyvene = files.has(PYVENE_MODEL_FILE) ? `, only pyvene's ${PYVENE_MODEL_FILE}. ${PYVENE_WEIGHTS_HINT}` : " (it was saved without includeModel)";
    throw new Error(`loadIntervenable: includeModel is set, but ${folder} has no ${MODEL_PARAMETERS_FILE}${pyvene}`);
  }
  return (await readSafetensors(join(folder, MODEL_PARAMETERS_FILE))).tensors;
}

/** Writes saved model parameters into `model` after checking all of them; they require a gradient again. */
function loadModelParameters(model: AnyModule, saved: ReadonlyMap<string, Tensor | IntTensor>, path: string): void {
  const params = new Map(model.namedParameters());
  const problems: string[] = [];
  for (const [name, t] of saved) {
    const p = params.get(name);
    if (p === undefined) problems.push(`${name} (not a parameter of this model)`);
    else if (!sameShape(p.shape, t.shape)) problems.push(`${name} (${formatShape(t.shape)} saved, ${formatShape(p.shape)} here)`);
  }
  if (problems.length > 0) throw new RangeError(`loadIntervenable: ${path} does not fit the model: ${problems.join("; ")}`);
  for (const [name, t] of saved) {
    const p = params.get(name)!;
    p.data.set(asFloat(t).data);
    p.requireGrad(true);
  }
}

/** Checks the per-intervention lists of a saved config against the representations. */
function checkSavedLists(saved: SavedInterventionState, representations: readonly unknown[], configPath: string): void {
  const n = representations.length;
  const lists = [["intervention_dimensions", saved.interchangeDims], ["intervention_constant_sources", saved.constantSources]] as const;
  for (const [field, list] of lists) {
    if (list.length !== n) throw new RangeError(`${configPath}: ${field} has ${list.length} entries for ${n} representations (expected one per representation)`);
  }
  saved.interchangeDims.forEach((d, i) => {
    const count = (v: unknown) => Number.isInteger(v) && (v as number) >= 0;
    if (d !== null && !count(d) && !(Array.isArray(d) && d.every(count))) {
      throw new TypeError(`${configPath}: intervention_dimensions[${i}] must be null, a non-negative integer or a list of feature indices, got ${JSON.stringify(d)}`);
    }
  });
  saved.constantSources.forEach((c, i) => {
    if (typeof c !== "boolean") throw new TypeError(`${configPath}: intervention_constant_sources[${i}] must be true or false, got ${JSON.stringify(c)}`);
  });
}

/** The folder `reference` names: a local folder, else the cached snapshot of a Hub repo. */
async function locateFolder(reference: string, options: LoadIntervenableOptions): Promise<string> {
  const kind = await stat(reference).then((s) => (s.isDirectory() ? "folder" : "file"), () => "none");
  if (kind === "folder") return reference;
  if (kind === "file") throw new Error(`loadIntervenable: "${reference}" is a file; expected a folder written by saveIntervenable (or pyvene's save) or a Hub repo id`);
  if (!isHubId(reference)) {
    throw new Error(`loadIntervenable: "${reference}": no such folder, and not a Hub repo id (expected "owner/name" or "name")`);
  }
  try {
    return await resolveHubSnapshot(reference, savedFolderPlan(options.allowMissingWeights ?? false), options);
  } catch (error) {
    if (!(error instanceof HubError && error.code === "not_found")) throw error;
    throw new HubError("not_found", `loadIntervenable: there is no folder "${reference}", so it was taken as a Hub repo id: ${error.message}`, { cause: error });
  }
}

/** What to fetch of a saved IntervenableModel on the Hub: tsvene's files, config.json last, so a snapshot with its config is whole. */
function savedFolderPlan(allowMissingWeights: boolean): SnapshotPlan {
  return {
    what: "IntervenableModel",
    async fetch(files, fetchFile, where) {
      if (!files.has(CONFIG_FILE)) {
        throw new HubError("no_config", `${where} has no ${CONFIG_FILE}, so it is not a saved IntervenableModel (files: ${[...files.keys()].join(", ")})`);
      }
      const pyvene = [...files.keys()].filter((f) => PYVENE_INTERVENTION_FILE.test(f));
      if (pyvene.length > 0 && !files.has(INTERVENTIONS_FILE) && !allowMissingWeights) {
        throw new HubError("no_safetensors", `${where} has pyvene's weights (${pyvene.join(", ")}) but no ${INTERVENTIONS_FILE}. ${PYVENE_WEIGHTS_HINT}\nthen upload the result (or pass allowMissingWeights to load the config alone)`);
      }
      for (const file of [INTERVENTIONS_FILE, MODEL_PARAMETERS_FILE]) if (files.has(file)) await fetchFile(file);
      await fetchFile(CONFIG_FILE);
    },
    isComplete: (snapshot) => exists(join(snapshot, CONFIG_FILE)),
  };
}

async function makeFolder(folder: string): Promise<void> {
  try {
    await mkdir(folder, { recursive: true });
  } catch (error) {
    throw new Error(`saveIntervenable: cannot create the folder ${folder} (${(error as Error).message})`, { cause: error });
  }
}

/** Writes the tensors to `path`, or removes a stale file there when there are none. */
async function writeOrRemove(path: string, tensors: ReadonlyMap<string, Tensor>): Promise<void> {
  if (tensors.size > 0) await writeSafetensors(path, tensors);
  else await rm(path, { force: true });
}

function asFloat(t: Tensor | IntTensor): Tensor {
  return t instanceof Tensor ? t : new Tensor(Float32Array.from(t.data), t.shape);
}

/** Runs `fn`, prefixing the message of anything it throws with `context` (keeping the error's class). */
function inContext<T>(context: string, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (!(error instanceof Error)) throw error;
    const Kind = error instanceof RangeError ? RangeError : error instanceof TypeError ? TypeError : Error;
    throw new Kind(`${context}: ${error.message}`, { cause: error });
  }
}
