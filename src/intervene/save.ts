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
 * in the file must belong to an intervention. Those shapes are checked against the file's header
 * before any intervention is built, and the values (finite; rotation bases orthonormal) before
 * they are loaded, so a corrupt or hostile folder cannot make the load allocate more than it
 * holds (load-check.ts). A reference that is not a local folder is a Hub repo id, fetched through
 * the io layer's Hub cache (config.json and the weights files only).
 *
 * Decisions where pyvene's own folders or rules do not carry over:
 * - pyvene writes its weights as PyTorch pickles (`intkey_{key}.bin`, `pytorch_model.bin`). Its
 *   config.json loads as it is. A local folder with intkey_*.bin files and no
 *   interventions.safetensors has them read by a restricted unpickler (io/torch-pickle.ts), the
 *   same checks applying, and gets interventions.safetensors written beside them once the load
 *   succeeds, so the next load reads safetensors (only a warning when the folder is read-only).
 *   pyvene's pytorch_model.bin (include_model) is read the same way. A Hub repo with only the .bin
 *   files is fetched with them. A .bin that cannot be read is missing weights: an error that gives
 *   the Python to convert it (PYVENE_WEIGHTS_HINT), or, with `allowMissingWeights`, a warning,
 *   the interventions keeping their fresh initial weights. Converted files may keep pyvene's
 *   `embed_dim` / `interchange_dim` buffers and int64 tensors.
 * - A null intervention_dimensions entry keeps the intervention's own interchange dimension
 *   (its embedDim, or all features when the width is unknown). pyvene puts hidden_size there
 *   (head size for "head_" components), which is the same number for the components whose
 *   width it knows and wrong for wider ones.
 * - The model parameters are loaded whenever the folder has them, unless includeModel is false
 *   (pyvene loads them only when asked), and require a gradient again, as when they were saved.
 */
import { CONFIG_FILE } from "../io/checkpoint.js";
import {
  createFolder,
  exists,
  joinPath,
  listFolder,
  pathKind,
  readJsonObjectIfPresent,
  removeFile,
  writeTextAtomically,
} from "../io/files.js";
import {
  HubError,
  isHubId,
  RESOLVE_MODEL_OPTION_NAMES,
  resolveHubSnapshot,
  type ResolveModelOptions,
  type SnapshotPlan,
} from "../io/hub.js";
import { readSafetensors, readSafetensorsHeader, writeSafetensors } from "../io/safetensors.js";
import { readTorchStateDict } from "../io/torch-pickle.js";
import type { ModelOutput } from "../models/model.js";
import type { SiteMap } from "../models/sites.js";
import type { AnyModule } from "../nn/module.js";
import { type IntTensor, Tensor } from "../tensor/index.js";
import { formatShape, sameShape } from "../tensor/shape.js";
import { IntervenableModel } from "./intervenable-model.js";
import type { Intervention } from "./intervention.js";
import { ConstantSourceIntervention, INTERVENTION_TYPES } from "./interventions/index.js";
import {
  checkSavedWeights,
  checkWeightValues,
  planInterventions,
  PYVENE_BUFFERS,
  SOURCE_REPRESENTATION,
} from "./load-check.js";
import { fromPyveneConfig, toPyveneConfig, type SavedInterventionState } from "./serialize.js";
import { readOptions } from "../options/index.js";
import { platform } from "../platform/index.js";

export const INTERVENTIONS_FILE = "interventions.safetensors";
export const MODEL_PARAMETERS_FILE = "model_parameters.safetensors";
const PYVENE_INTERVENTION_FILE = /^intkey_.+\.bin$/;
const PYVENE_MODEL_FILE = "pytorch_model.bin";

/** How to turn pyvene's pickled weights into the files tsvene reads (run once, in the folder). */
export const PYVENE_WEIGHTS_HINT =
  "where tsvene cannot read PyTorch's pickled .bin files; convert them once with Python in that folder:\n" +
  "  import glob, torch; from safetensors.torch import save_file\n" +
  '  save_file({f"{p[7:-4]}.{k}": v.contiguous() for p in glob.glob("intkey_*.bin") ' +
  'for k, v in torch.load(p).items()}, "interventions.safetensors")\n' +
  '  save_file({k: v.contiguous() for k, v in torch.load("pytorch_model.bin").items()}, ' +
  '"model_parameters.safetensors")  # only if it exists';

export interface SaveIntervenableOptions {
  /** Also save the model's parameters that require a gradient (pyvene's include_model). */
  includeModel?: boolean;
}

export const SAVE_OPTION_NAMES = ["includeModel"] as const satisfies readonly (keyof SaveIntervenableOptions)[];

export interface LoadIntervenableOptions extends ResolveModelOptions {
  /** Load model_parameters.safetensors into the model: default when the folder has it; true requires it. */
  includeModel?: boolean;
  /** Warn instead of failing when weights are missing (e.g. pyvene's .bin files), keeping fresh initial weights. */
  allowMissingWeights?: boolean;
  /** Sites for components of a model tsvene does not ship, as for the IntervenableModel constructor. */
  sites?: SiteMap;
}

const LOAD_OPTION_NAMES = [
  ...RESOLVE_MODEL_OPTION_NAMES,
  "includeModel",
  "allowMissingWeights",
  "sites",
] as const satisfies readonly (keyof LoadIntervenableOptions)[];

/**
 * Writes `im` to `folder` (created if needed): weights first, config.json last, each file
 * atomically; tsvene files a previous save left there and this one does not write are removed.
 */
export async function saveIntervenable(
  im: IntervenableModel<unknown>,
  folder: string,
  options: SaveIntervenableOptions = {},
): Promise<void> {
  const { includeModel } = readOptions<SaveIntervenableOptions>(options, SAVE_OPTION_NAMES, "saveIntervenable options");
  for (const key of im.keys) {
    const iv = im.interventions.get(key)!;
    const builtIn =
      Object.hasOwn(INTERVENTION_TYPES, iv.typeName) &&
      iv.constructor === (INTERVENTION_TYPES as Record<string, unknown>)[iv.typeName];
    if (!builtIn || !iv.configurable) {
      const why = !iv.configurable
        ? "not rebuilt from a config alone (a function, or fitted from data)"
        : "not one of tsvene's built-in intervention classes";
      throw new TypeError(
        `saveIntervenable: intervention "${key}" (${iv.typeName}) is ${why}, so loadIntervenable could not rebuild it`,
      );
    }
  }
  const weights = new Map<string, Tensor>();
  for (const key of im.keys) {
    const iv = im.interventions.get(key)!;
    for (const [name, p] of iv.namedParameters()) weights.set(`${key}.${name}`, p);
    if (iv.sourceRepresentation !== null) weights.set(`${key}.${SOURCE_REPRESENTATION}`, iv.sourceRepresentation);
  }
  const modelWeights = new Map(includeModel ? im.model.namedParameters().filter(([, p]) => p.requiresGrad) : []);
  const config = toPyveneConfig(im);

  await makeFolder(folder);
  await writeOrRemove(joinPath(folder, INTERVENTIONS_FILE), weights);
  await writeOrRemove(joinPath(folder, MODEL_PARAMETERS_FILE), modelWeights);
  await writeTextAtomically(joinPath(folder, CONFIG_FILE), `${JSON.stringify(config, null, 2)}\n`);
}

/**
 * The IntervenableModel saved at `reference` (a folder, or a Hub repo id), rebuilt on `model`.
 * The config and the weights files' headers are checked before anything is built or read in
 * full (load-check.ts), the weights' values before the interventions are built. Nothing is
 * changed when it fails: the model's weights are written last, once everything has been
 * checked, and its parameters' gradient flags are put back.
 */
export async function loadIntervenable<Out = ModelOutput>(
  reference: string,
  model: AnyModule,
  options: LoadIntervenableOptions = {},
): Promise<IntervenableModel<Out>> {
  const opts = readOptions<LoadIntervenableOptions>(options, LOAD_OPTION_NAMES, "loadIntervenable options");
  const folder = await locateFolder(reference, opts);
  const configPath = joinPath(folder, CONFIG_FILE);
  const json = await readJsonObjectIfPresent(configPath);
  if (json === undefined)
    throw new Error(`loadIntervenable: ${folder} has no ${CONFIG_FILE}, so it is not a saved IntervenableModel`);
  const { config, saved } = inContext(configPath, () => fromPyveneConfig(json));

  const files = new Set(await listFolder(folder));
  const weightsPath = joinPath(folder, INTERVENTIONS_FILE);
  const pyvene = files.has(INTERVENTIONS_FILE) ? null : await readPyveneWeights(folder, files);
  // Checks on .bin weights name the .bin files, which are what the user has.
  const checkedPath = pyvene === null || pyvene.read.length === 0 ? weightsPath : pyvene.read.join(", ");
  const header: ReadonlyMap<string, { shape: readonly number[] }> = files.has(INTERVENTIONS_FILE)
    ? (await readSafetensorsHeader(weightsPath)).tensors
    : (pyvene?.tensors ?? new Map());
  const plans = inContext(configPath, () => planInterventions(config, saved, model, opts.sites));
  const missing = checkSavedWeights(plans, header, checkedPath);
  const warning =
    missing.length > 0
      ? missingWeights(folder, files, missing, opts.allowMissingWeights ?? false, pyvene?.unreadable ?? [])
      : null;
  const weights = files.has(INTERVENTIONS_FILE)
    ? (await readSafetensors(weightsPath)).tensors
    : (pyvene?.tensors ?? new Map<string, Tensor | IntTensor>());
  checkWeightValues(weights, checkedPath);
  const modelWeights = await readModelWeights(folder, files, model, opts.includeModel);

  const gradFlags = model.parameters().map((p) => [p, p.requiresGrad] as const);
  let im: IntervenableModel<Out>;
  try {
    im = inContext(configPath, () => new IntervenableModel<Out>(config, model, { sites: opts.sites }));
    restoreInterventions(im, saved, weights, weightsPath);
    if (modelWeights) loadModelParameters(model, modelWeights);
    if (warning !== null) platform().emitWarning(warning, "TSVENE_MISSING_WEIGHTS");
  } catch (error) {
    for (const [p, flag] of gradFlags) p.requiresGrad = flag;
    throw error;
  }
  if (pyvene !== null && pyvene.read.length > 0 && pyvene.unreadable.length === 0)
    await writeConverted(weightsPath, pyvene.tensors);
  return im;
}

/** pyvene's intkey_*.bin weights in `folder` under `{key}.{name}`, the files read, and why others could not be. */
async function readPyveneWeights(
  folder: string,
  files: ReadonlySet<string>,
): Promise<{ tensors: Map<string, Tensor | IntTensor>; read: string[]; unreadable: string[] }> {
  const tensors = new Map<string, Tensor | IntTensor>();
  const read: string[] = [];
  const unreadable: string[] = [];
  for (const file of [...files].filter((f) => PYVENE_INTERVENTION_FILE.test(f)).sort()) {
    const key = file.slice("intkey_".length, -".bin".length);
    try {
      for (const [name, t] of await readTorchStateDict(joinPath(folder, file))) tensors.set(`${key}.${name}`, t);
      read.push(joinPath(folder, file));
    } catch (error) {
      unreadable.push((error as Error).message);
    }
  }
  return { tensors, read, unreadable };
}

/** Saves weights read from pyvene's .bin files as interventions.safetensors; a folder that refuses it only warns. */
async function writeConverted(path: string, tensors: ReadonlyMap<string, Tensor | IntTensor>): Promise<void> {
  try {
    await writeSafetensors(path, tensors);
  } catch (error) {
    platform().emitWarning(
      `loadIntervenable: loaded pyvene's .bin weights, but could not save them as ${path} ` +
        `(${(error as Error).message}); the next load reads the .bin files again`,
      "TSVENE_PYVENE_WEIGHTS_NOT_SAVED",
    );
  }
}

/** The warning for weights the folder lacks (e.g. pyvene's .bin files), or an error without allowMissingWeights. */
function missingWeights(
  folder: string,
  files: ReadonlySet<string>,
  missing: readonly string[],
  allowMissingWeights: boolean,
  unreadable: readonly string[],
): string {
  const pyveneWeights = [...files].filter((f) => PYVENE_INTERVENTION_FILE.test(f));
  const why = unreadable.length > 0 ? `, which could not be read: ${unreadable.join("; ")}` : "";
  const what =
    `loadIntervenable: ${folder} has no weights for ${missing.join(", ")}` +
    (pyveneWeights.length > 0 ? `, only pyvene's ${pyveneWeights.join(", ")}${why}` : ` in ${INTERVENTIONS_FILE}`);
  const hint = pyveneWeights.length > 0 ? ` ${PYVENE_WEIGHTS_HINT}` : "";
  if (!allowMissingWeights) {
    throw new Error(`${what}. Pass allowMissingWeights to load the config with fresh initial weights.${hint}`);
  }
  return `${what}; they keep their fresh initial weights.${hint}`;
}

/**
 * Puts each intervention's saved interchange dimension, constant source and weights in place
 * (checkSavedWeights has checked the weights' names and shapes, and reported what is missing).
 */
function restoreInterventions(
  im: IntervenableModel<unknown>,
  saved: SavedInterventionState,
  weights: ReadonlyMap<string, Tensor | IntTensor>,
  weightsPath: string,
): void {
  im.representationKeys.forEach((key, i) => {
    const iv = im.interventions.get(key)!;
    const where = `${weightsPath}: intervention "${key}" (${iv.typeName})`;
    const dim = saved.interchangeDims[i];
    if (dim !== null) iv.setInterchangeDim(dim);
    const state = new Map<string, Tensor | IntTensor>();
    for (const [name, t] of weights) if (name.startsWith(`${key}.`)) state.set(name.slice(key.length + 1), t);
    const source = state.get(SOURCE_REPRESENTATION);
    state.delete(SOURCE_REPRESENTATION);
    checkPyveneBuffers(iv, state, where);
    // pyvene's int64 tensors (Boundless's intervention_population) load as float32, as tsvene keeps them.
    const floats = new Map([...state].map(([name, t]) => [name, asFloat(t)]));
    if (state.size > 0) inContext(where, () => iv.loadStateDict(floats));
    const constant = saved.constantSources[i];
    if (source !== undefined) iv.setSourceRepresentation(asFloat(source));
    else if (constant && (!iv.sourceConstant || iv instanceof ConstantSourceIntervention)) return; // missing, reported
    if (iv.sourceConstant !== constant) {
      throw new RangeError(
        `loadIntervenable: config intervention_constant_sources[${i}] is ${constant}, ` +
          `but the ${iv.typeName} at "${key}" ${iv.sourceConstant ? "is" : "is not"} source-constant`,
      );
    }
  });
}

/** Drops pyvene's embed_dim / interchange_dim buffers from `state`, checking embed_dim against the intervention's. */
function checkPyveneBuffers(iv: Intervention, state: Map<string, Tensor | IntTensor>, where: string): void {
  for (const name of PYVENE_BUFFERS) {
    const t = state.get(name);
    if (t === undefined) continue;
    state.delete(name);
    if (name === "embed_dim" && (t.size !== 1 || t.data[0] !== iv.embedDim)) {
      throw new RangeError(
        `loadIntervenable: ${where}: the weights were saved with embed_dim ` +
          `${t.size === 1 ? t.data[0] : formatShape(t.shape)}, but this intervention has embedDim ${iv.embedDim}`,
      );
    }
  }
}

/**
 * The model parameters to load, or null: required when includeModel is true, skipped when false.
 * Their names and shapes are checked against the model from the file's header, before reading.
 */
async function readModelWeights(
  folder: string,
  files: ReadonlySet<string>,
  model: AnyModule,
  includeModel: boolean | undefined,
): Promise<Map<string, Tensor | IntTensor> | null> {
  if (includeModel === false) return null;
  const fromPyvene = !files.has(MODEL_PARAMETERS_FILE) && files.has(PYVENE_MODEL_FILE);
  if (!files.has(MODEL_PARAMETERS_FILE) && !fromPyvene) {
    if (!includeModel) return null;
    throw new Error(
      `loadIntervenable: includeModel is set, but ${folder} has no ${MODEL_PARAMETERS_FILE} ` +
        "(it was saved without includeModel)",
    );
  }
  const path = joinPath(folder, fromPyvene ? PYVENE_MODEL_FILE : MODEL_PARAMETERS_FILE);
  const pyveneWeights = fromPyvene ? await readPyveneModelWeights(path) : null;
  const params = new Map(model.namedParameters());
  const problems: string[] = [];
  for (const [name, { shape }] of pyveneWeights ?? (await readSafetensorsHeader(path)).tensors) {
    const p = params.get(name);
    if (p === undefined) problems.push(`${name} (not a parameter of this model)`);
    else if (!sameShape(p.shape, shape))
      problems.push(`${name} (${formatShape(shape)} saved, ${formatShape(p.shape)} here)`);
  }
  if (problems.length > 0)
    throw new RangeError(`loadIntervenable: ${path} does not fit the model: ${problems.join("; ")}`);
  const weights = pyveneWeights ?? (await readSafetensors(path)).tensors;
  checkWeightValues(weights, path);
  return weights;
}

/** pyvene's pytorch_model.bin (its include_model save); one it cannot read is an error saying how to convert it. */
async function readPyveneModelWeights(path: string): Promise<Map<string, Tensor | IntTensor>> {
  try {
    return await readTorchStateDict(path);
  } catch (error) {
    throw new Error(`loadIntervenable: ${(error as Error).message} ${PYVENE_WEIGHTS_HINT}`, { cause: error });
  }
}

/** Writes saved model parameters (checked by readModelWeights) into `model`; they require a gradient again. */
function loadModelParameters(model: AnyModule, saved: ReadonlyMap<string, Tensor | IntTensor>): void {
  const params = new Map(model.namedParameters());
  for (const [name, t] of saved) {
    const p = params.get(name)!;
    p.data.set(asFloat(t).data);
    p.requireGrad(true);
  }
}

/** The folder `reference` names: a local folder, else the cached snapshot of a Hub repo. */
async function locateFolder(reference: string, options: Partial<LoadIntervenableOptions>): Promise<string> {
  const kind = await pathKind(reference);
  if (kind === "folder") return reference;
  if (kind === "file")
    throw new Error(
      `loadIntervenable: "${reference}" is a file; ` +
        "expected a folder written by saveIntervenable (or pyvene's save) or a Hub repo id",
    );
  if (!isHubId(reference)) {
    throw new Error(
      `loadIntervenable: "${reference}": no such folder, and not a Hub repo id (expected "owner/name" or "name")`,
    );
  }
  try {
    return await resolveHubSnapshot(reference, savedFolderPlan(), options);
  } catch (error) {
    if (!(error instanceof HubError && error.code === "not_found")) throw error;
    throw new HubError(
      "not_found",
      `loadIntervenable: there is no folder "${reference}", so it was taken as a Hub repo id: ${error.message}`,
      { cause: error },
    );
  }
}

/**
 * What to fetch of a saved IntervenableModel on the Hub: tsvene's files, config.json last,
 * so a snapshot with its config is whole.
 */
function savedFolderPlan(): SnapshotPlan {
  return {
    what: "IntervenableModel",
    async fetch(files, fetchFile, where) {
      if (!files.has(CONFIG_FILE)) {
        throw new HubError(
          "no_config",
          `${where} has no ${CONFIG_FILE}, so it is not a saved IntervenableModel ` +
            `(files: ${[...files.keys()].join(", ")})`,
        );
      }
      // pyvene's own .bin weights come along where the safetensors form is absent; the load reads them.
      const pyvene = files.has(INTERVENTIONS_FILE)
        ? []
        : [...files.keys()].filter((f) => PYVENE_INTERVENTION_FILE.test(f));
      const pyveneModel = !files.has(MODEL_PARAMETERS_FILE) && files.has(PYVENE_MODEL_FILE) ? [PYVENE_MODEL_FILE] : [];
      for (const file of [INTERVENTIONS_FILE, MODEL_PARAMETERS_FILE, ...pyvene, ...pyveneModel])
        if (files.has(file)) await fetchFile(file);
      await fetchFile(CONFIG_FILE);
    },
    isComplete: (snapshot) => exists(joinPath(snapshot, CONFIG_FILE)),
  };
}

async function makeFolder(folder: string): Promise<void> {
  try {
    await createFolder(folder);
  } catch (error) {
    throw new Error(`saveIntervenable: cannot create the folder ${folder} (${(error as Error).message})`, {
      cause: error,
    });
  }
}

/** Writes the tensors to `path`, or removes a stale file there when there are none. */
async function writeOrRemove(path: string, tensors: ReadonlyMap<string, Tensor>): Promise<void> {
  if (tensors.size > 0) await writeSafetensors(path, tensors);
  else await removeFile(path);
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
