/**
 * Sparse-autoencoder weights in the two forms they are shared in:
 * - SAELens: a folder with cfg.json (d_in, d_sae, architecture, apply_b_dec_to_input, …) and
 *   sae_weights.safetensors (W_enc [d_in, d_sae], W_dec [d_sae, d_in], b_enc, b_dec, and for
 *   "jumprelu" threshold, or log_threshold in files written by its training class);
 * - Gemma Scope: params.npz with W_enc [d_model, d_sae], W_dec, b_enc, b_dec and threshold, a
 *   JumpReLU SAE that encodes x·W_enc + b_enc without subtracting b_dec.
 * Only what the SAE computes exactly is accepted: "standard" and "jumprelu" with ReLU and no
 * input normalisation. Other architectures (gated, topk, …) and settings are refused, naming them.
 */
import type { IntTensor } from "../tensor/index.js";
import { Tensor, exp } from "../tensor/index.js";
import { formatShape } from "../tensor/shape.js";
import { isJsonObject, joinPath, pathKind, readBytes, readJsonObjectIfPresent, type JsonObject } from "./files.js";
import { parseNpz } from "./npy.js";
import { readSafetensors } from "./safetensors.js";

export type SaeArchitecture = "standard" | "jumprelu";

export interface SaeWeights {
  /** Where the weights came from: a SAELens folder or Gemma Scope's params.npz. */
  format: "saelens" | "gemma-scope";
  architecture: SaeArchitecture;
  /** Width of the activations the SAE reads. */
  dIn: number;
  /** Number of latents. */
  dSae: number;
  W_enc: Tensor;
  W_dec: Tensor;
  b_enc: Tensor;
  b_dec: Tensor;
  /** JumpReLU thresholds [d_sae]; null for a standard SAE. */
  threshold: Tensor | null;
  /** Whether the encoder reads x − b_dec rather than x (SAELens' apply_b_dec_to_input). */
  applyBDecToInput: boolean;
  /** The hook the SAE was trained on (TransformerLens name), when the config says. */
  hookName: string | null;
  /** cfg.json as read (null for params.npz). */
  config: JsonObject | null;
}

const SAELENS_CONFIG = "cfg.json";
const SAELENS_WEIGHTS = "sae_weights.safetensors";
const GEMMA_SCOPE_WEIGHTS = "params.npz";

/**
 * Loads an SAE from a SAELens folder (cfg.json + sae_weights.safetensors), a folder holding
 * params.npz, or the path of a .npz file.
 */
export async function loadSae(path: string): Promise<SaeWeights> {
  if (typeof path !== "string")
    throw new TypeError(`loadSae: expected the path of an SAE folder or .npz file, got ${typeof path}`);
  const kind = await pathKind(path);
  if (kind === "file") {
    if (!path.endsWith(".npz"))
      throw new Error(
        `loadSae ${path}: a file must be Gemma Scope's params.npz; ` +
          `for SAELens give the folder holding ${SAELENS_CONFIG} and ${SAELENS_WEIGHTS}`,
      );
    return gemmaScopeSae(await readBytes(path, "loadSae"), path);
  }
  if (kind === "none") throw new Error(`loadSae ${path}: no such file or folder`);
  const config = await readJsonObjectIfPresent(joinPath(path, SAELENS_CONFIG));
  if (config !== undefined) return saeLensSae(config, path);
  const npz = joinPath(path, GEMMA_SCOPE_WEIGHTS);
  if ((await pathKind(npz)) === "file") return gemmaScopeSae(await readBytes(npz, "loadSae"), npz);
  throw new Error(
    `loadSae ${path}: found neither SAELens' ${SAELENS_CONFIG} (with ${SAELENS_WEIGHTS}) ` +
      `nor Gemma Scope's ${GEMMA_SCOPE_WEIGHTS}`,
  );
}

/** Gemma Scope's SAE from the bytes of its params.npz; `source` names the file in errors. */
export async function gemmaScopeSae(bytes: Uint8Array, source: string): Promise<SaeWeights> {
  const arrays = await parseNpz(bytes, source);
  const wEnc = arrays.get("W_enc");
  if (wEnc === undefined || wEnc.rank !== 2)
    throw new Error(`${source}: expected W_enc [d_model, d_sae], ${wEnc ? `got ${formatShape(wEnc.shape)}` : "none"}`);
  const [dIn, dSae] = wEnc.shape;
  const weights = checkWeights(arrays, { dIn, dSae, threshold: "threshold" }, source);
  return {
    format: "gemma-scope",
    architecture: "jumprelu",
    ...weights,
    applyBDecToInput: false,
    hookName: null,
    config: null,
  };
}

async function saeLensSae(config: JsonObject, folder: string): Promise<SaeWeights> {
  const source = joinPath(folder, SAELENS_CONFIG);
  const dIn = positiveInteger(config.d_in, "d_in", source);
  const dSae = positiveInteger(config.d_sae, "d_sae", source);
  const architecture = config.architecture ?? "standard";
  if (architecture !== "standard" && architecture !== "jumprelu")
    throw new Error(
      `${source}: architecture ${JSON.stringify(architecture)} is not supported; ` +
        'tsvene loads "standard" and "jumprelu" SAEs',
    );
  const activation = config.activation_fn ?? config.activation_fn_str ?? "relu";
  if (activation !== "relu")
    throw new Error(`${source}: activation_fn ${JSON.stringify(activation)} is not supported; expected "relu"`);
  const normalize = config.normalize_activations ?? "none";
  if (normalize !== "none" && normalize !== false)
    throw new Error(
      `${source}: normalize_activations ${JSON.stringify(normalize)} rescales the input by a factor the ` +
        "weights do not hold; fold it into the weights (SAELens: fold_activation_norm_scaling_factor) and save " +
        'with normalize_activations "none"',
    );
  const applyBDecToInput = config.apply_b_dec_to_input ?? true;
  if (typeof applyBDecToInput !== "boolean")
    throw new Error(`${source}: apply_b_dec_to_input must be true or false, got ${JSON.stringify(applyBDecToInput)}`);

  const weightsPath = joinPath(folder, SAELENS_WEIGHTS);
  if ((await pathKind(weightsPath)) !== "file") throw new Error(`loadSae ${folder}: ${SAELENS_WEIGHTS} is missing`);
  const tensors = new Map((await readSafetensors(weightsPath)).tensors);
  const scaling = tensors.get("scaling_factor");
  if (scaling !== undefined) {
    // SAELens drops an all-ones scaling_factor as a no-op and applies any other one to the latents.
    if (Array.from(scaling.data).some((v) => v !== 1))
      throw new Error(`${weightsPath}: a scaling_factor other than ones (finetuning scaling) is not supported`);
    tensors.delete("scaling_factor");
  }
  if (architecture === "jumprelu" && !tensors.has("threshold") && tensors.has("log_threshold")) {
    const log = tensors.get("log_threshold")!;
    tensors.delete("log_threshold");
    if (log instanceof Tensor) tensors.set("threshold", exp(log));
  }
  const threshold = architecture === "jumprelu" ? "threshold" : null;
  const weights = checkWeights(tensors, { dIn, dSae, threshold }, weightsPath);
  return { format: "saelens", architecture, ...weights, applyBDecToInput, hookName: hookNameOf(config), config };
}

type Weights = Pick<SaeWeights, "dIn" | "dSae" | "W_enc" | "W_dec" | "b_enc" | "b_dec" | "threshold">;

/** The SAE's tensors, each present, float and of its shape, and nothing else in the file. */
function checkWeights(
  tensors: Map<string, Tensor | IntTensor>,
  { dIn, dSae, threshold }: { dIn: number; dSae: number; threshold: string | null },
  source: string,
): Weights {
  const expected: [string, number[]][] = [
    ["W_enc", [dIn, dSae]],
    ["W_dec", [dSae, dIn]],
    ["b_enc", [dSae]],
    ["b_dec", [dIn]],
  ];
  if (threshold !== null) expected.push([threshold, [dSae]]);
  const problems: string[] = [];
  const found = new Map<string, Tensor>();
  for (const [name, shape] of expected) {
    const t = tensors.get(name);
    if (t === undefined) problems.push(`${name} ${formatShape(shape)} is missing`);
    else if (!(t instanceof Tensor)) problems.push(`${name} holds integers; expected floats`);
    else if (t.shape.join() !== shape.join())
      problems.push(`${name} has shape ${formatShape(t.shape)}, expected ${formatShape(shape)}`);
    else found.set(name, t);
  }
  const unexpected = [...tensors.keys()].filter((name) => !expected.some(([known]) => known === name));
  if (unexpected.length > 0) problems.push(`unexpected tensors ${unexpected.join(", ")}`);
  if (problems.length > 0)
    throw new Error(
      `${source}: not a ${threshold ? "JumpReLU" : "standard"} SAE of d_in ${dIn}, d_sae ${dSae}: ` +
        problems.join("; "),
    );
  return {
    dIn,
    dSae,
    W_enc: found.get("W_enc")!,
    W_dec: found.get("W_dec")!,
    b_enc: found.get("b_enc")!,
    b_dec: found.get("b_dec")!,
    threshold: threshold === null ? null : found.get(threshold)!,
  };
}

function positiveInteger(value: unknown, field: string, source: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1)
    throw new Error(`${source}: ${field} must be a positive integer, got ${JSON.stringify(value)}`);
  return value;
}

/** SAELens ≥ 6 keeps hook_name under metadata; earlier versions at the top level, or as hook_point. */
function hookNameOf(config: JsonObject): string | null {
  const metadata = isJsonObject(config.metadata) ? config.metadata : {};
  const name = metadata.hook_name ?? config.hook_name ?? config.hook_point;
  return typeof name === "string" ? name : null;
}
