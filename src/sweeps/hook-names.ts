/**
 * TransformerLens hook names on tsvene's model families. Each name resolves to a site of the site
 * port: a pyvene component where one means the same value, else a module's input or output where
 * TransformerLens hooks something pyvene does not map (the MLP pre-activation, the embeddings).
 * A name whose value no site holds is an error that says why, never the nearest site: a reader
 * would silently get another tensor, and a hook there would change something else.
 *
 * The values match TransformerLens loaded with from_pretrained_no_processing: its default
 * from_pretrained folds and centres weights (fold_ln, center_writing_weights), which shifts them.
 */
import type { ResolvedSite } from "../intervene/index.js";
import { LlamaDecoder } from "../models/llama.js";
import type { PretrainedModel } from "../models/model.js";
import * as tv from "../tensor/index.js";
import type { Tensor } from "../tensor/index.js";

/** A hook name resolved on a model. */
export interface NamedSite {
  readonly name: string;
  readonly site: ResolvedSite;
  /**
   * The site's view is split into heads: pyvene's view is [B, H, T, d], TransformerLens's
   * [B, T, H, d], so the value is permuted between the two.
   */
  readonly headsSecond: boolean;
}

type Target =
  | { readonly kind: "component"; readonly component: string }
  /** A module path under the block (`.mlp.act`), or from the root when `root`. */
  | { readonly kind: "module"; readonly path: string; readonly hook: "input" | "output"; readonly root?: boolean }
  | { readonly kind: "none"; readonly why: string };

const component = (name: string): Target => ({ kind: "component", component: name });
const inBlock = (path: string, hook: "input" | "output"): Target => ({ kind: "module", path, hook });
const atRoot = (path: string, hook: "input" | "output"): Target => ({ kind: "module", path, hook, root: true });
const none = (why: string): Target => ({ kind: "none", why });

/** Names outside the blocks. */
const GLOBAL_NAMES = ["hook_embed", "hook_pos_embed"] as const;
/** Names under `blocks.L.`. */
const LAYER_NAMES = [
  "hook_resid_pre",
  "hook_resid_mid",
  "hook_resid_post",
  "attn.hook_q",
  "attn.hook_k",
  "attn.hook_v",
  "attn.hook_z",
  "attn.hook_pattern",
  "hook_attn_out",
  "mlp.hook_pre",
  "mlp.hook_pre_linear",
  "mlp.hook_post",
  "hook_mlp_out",
] as const;
type NameKey = (typeof GLOBAL_NAMES)[number] | (typeof LAYER_NAMES)[number];

const ROTARY = none("rotary positions: there is no position embedding (hook_embed is the whole input)");
const NOT_GATED = none("only gated MLPs (the Llama family) have a linear input branch");
// A hook on the next norm's input would read resid_mid but a write there would not reach the residual stream.
const RESID_MID = none(
  "no site holds it (pyvene maps none; a hook on the next norm's input could not replace it): " +
    "read blocks.L.hook_resid_pre + blocks.L.hook_attn_out",
);

/** What the blocks share in every mapped family. */
const COMMON = {
  hook_resid_pre: component("block_input"),
  hook_resid_mid: RESID_MID,
  hook_resid_post: component("block_output"),
  "attn.hook_z": component("head_attention_value_output"),
  hook_attn_out: component("attention_output"),
  "mlp.hook_pre_linear": NOT_GATED,
  hook_mlp_out: component("mlp_output"),
} satisfies Partial<Record<NameKey, Target>>;

/** GPT-2 and GPT-Neo: the same layout, with the attention probabilities at `pattern`. */
function gptLayout(pattern: Target): Record<NameKey, Target> {
  return {
    ...COMMON,
    hook_embed: atRoot("transformer.wte", "output"),
    hook_pos_embed: atRoot("transformer.wpe", "output"),
    "attn.hook_q": component("head_query_output"),
    "attn.hook_k": component("head_key_output"),
    "attn.hook_v": component("head_value_output"),
    "attn.hook_pattern": pattern,
    "mlp.hook_pre": inBlock(".mlp.act", "input"),
    "mlp.hook_post": component("mlp_activation"),
  };
}

const NO_PATTERN = none("the attention probabilities pass through no module");

/** Per family: every name's target. */
const FAMILIES: Readonly<Record<string, (model: PretrainedModel) => Record<NameKey, Target>>> = {
  gpt2: () => gptLayout(component("attention_weight")),
  gpt_neo: () => gptLayout(inBlock(".attn.attention.attn_dropout", "input")),
  gpt_neox: () => {
    const fused = none("GPT-NeoX's fused query_key_value interleaves heads; pyvene maps no q/k/v site for it");
    return {
      ...COMMON,
      hook_embed: atRoot("gpt_neox.embed_in", "output"),
      hook_pos_embed: ROTARY,
      "attn.hook_q": fused,
      "attn.hook_k": fused,
      "attn.hook_v": fused,
      "attn.hook_pattern": NO_PATTERN,
      "mlp.hook_pre": inBlock(".mlp.act", "input"),
      "mlp.hook_post": component("mlp_activation"),
    };
  },
  llama: (model) => {
    const s = (model as LlamaDecoder).settings;
    // With post-norms (Gemma2's sandwich, OLMo2's post layout) TL's attn_out/mlp_out are after them.
    const postNorms = s.layout !== "pre";
    return {
      ...COMMON,
      hook_embed:
        s.embeddingScale === null
          ? atRoot("model.embed_tokens", "output")
          : none("the embeddings are scaled by √d after the embedding module; read blocks.0.hook_resid_pre"),
      hook_pos_embed: ROTARY,
      "attn.hook_q": component("head_query_output"),
      "attn.hook_k": component("head_key_output"),
      "attn.hook_v": component("head_value_output"),
      "attn.hook_pattern": NO_PATTERN,
      hook_attn_out: postNorms ? inBlock(".post_attention_layernorm", "output") : component("attention_output"),
      hook_mlp_out: postNorms ? inBlock(".post_feedforward_layernorm", "output") : component("mlp_output"),
      // TL's gated MLP: hook_pre = x·W_gate, hook_pre_linear = x·W_in, hook_post = act(pre)·pre_linear.
      "mlp.hook_pre": inBlock(".mlp.act_fn", "input"),
      "mlp.hook_pre_linear": inBlock(".mlp.up_proj", "output"),
      "mlp.hook_post": inBlock(".mlp.down_proj", "input"),
    };
  },
  gpt_oss: () => {
    const experts = none("a mixture of experts has no single MLP pre-activation; use router_output or expert_output");
    return {
      ...COMMON,
      hook_embed: atRoot("model.embed_tokens", "output"),
      hook_pos_embed: ROTARY,
      "attn.hook_q": component("head_query_output"),
      "attn.hook_k": component("head_key_output"),
      "attn.hook_v": component("head_value_output"),
      // The sinks join the softmax inside the attention module: no module sees the probabilities.
      "attn.hook_pattern": NO_PATTERN,
      "mlp.hook_pre": experts,
      "mlp.hook_post": experts,
    };
  },
};

/** The families TransformerLens names are mapped for. */
const MAPPED_FAMILIES: readonly string[] = Object.keys(FAMILIES);

/** Whether `model`'s family has TransformerLens names. */
export function mapsHookNames(model: PretrainedModel): boolean {
  return Object.hasOwn(FAMILIES, model.family) && (model.family !== "llama" || model instanceof LlamaDecoder);
}

function targetsOf(model: PretrainedModel, where: string): Record<NameKey, Target> {
  if (!mapsHookNames(model)) {
    throw new RangeError(
      `${where}: TransformerLens names are mapped for ${MAPPED_FAMILIES.join(", ")}, not ${model.family}; ` +
        "address its sites by pyvene component ({layer, component})",
    );
  }
  return FAMILIES[model.family](model);
}

/** Every hook name that has a site on `model`, in forward order, layer by layer. */
export function hookNames(model: PretrainedModel, where = "hookNames"): string[] {
  const targets = targetsOf(model, where);
  const names: string[] = GLOBAL_NAMES.filter((name) => targets[name].kind !== "none");
  const perLayer = LAYER_NAMES.filter((name) => targets[name].kind !== "none");
  for (let layer = 0; layer < model.numLayers; layer++)
    names.push(...perLayer.map((name) => `blocks.${layer}.${name}`));
  return names;
}

function available(model: PretrainedModel, targets: Record<NameKey, Target>): string {
  const global = GLOBAL_NAMES.filter((name) => targets[name].kind !== "none");
  const perLayer = LAYER_NAMES.filter((name) => targets[name].kind !== "none");
  return `${[...global, `blocks.L.{${perLayer.join(", ")}}`].join(", ")} with L in 0..${model.numLayers - 1}`;
}

/** The site of a TransformerLens hook name on `model`; errors name the family and list what exists. */
export function resolveHookName(model: PretrainedModel, name: unknown, where: string): NamedSite {
  const targets = targetsOf(model, where);
  const listed = () => `available for ${model.family}: ${available(model, targets)}`;
  if (typeof name !== "string")
    throw new TypeError(`${where} must be a hook name such as "blocks.0.hook_resid_post", got ${typeof name}`);
  const match = /^blocks\.(0|[1-9]\d*)\.(.+)$/.exec(name);
  const key = (match ? match[2] : name) as NameKey;
  const known = match ? (LAYER_NAMES as readonly string[]) : (GLOBAL_NAMES as readonly string[]);
  if (!known.includes(key)) throw new RangeError(`${where}: "${name}" is not a hook name tsvene maps; ${listed()}`);
  const target = targets[key];
  if (target.kind === "none")
    throw new RangeError(`${where}: "${name}" has no site in ${model.family}: ${target.why}; ${listed()}`);
  const layer = match ? Number(match[1]) : 0;
  if (match && layer >= model.numLayers) {
    throw new RangeError(
      `${where}: "${name}": layer ${layer} is out of range for ${model.family} with ${model.numLayers} layers ` +
        `(expected 0..${model.numLayers - 1})`,
    );
  }
  if (target.kind === "component") {
    const site = model.site(target.component, layer);
    return { name, site, headsSecond: site.heads !== undefined };
  }
  const module = target.root ? target.path : `${model.site("block_output", layer).module}${target.path}`;
  return { name, site: { module, hook: target.hook, dim: null }, headsSecond: false };
}

/** pyvene's head view [B, H, T, d] ↔ TransformerLens's [B, T, H, d] (the swap is its own inverse). */
export function swapHeadsAndPositions(view: Tensor): Tensor {
  return tv.permute(view, [0, 2, 1, 3]);
}
