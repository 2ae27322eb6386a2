/**
 * Path patching (Wang et al. 2022, the IOI circuit): how much of the source run's effect flows from
 * some sender heads through some receiver sites. Step 1 runs the base prompt with the senders'
 * outputs taken from the source run while every other head is frozen to its base output (MLPs are
 * recomputed, as in the paper), and records the receivers' values. Step 2 runs the base prompt with
 * only the receivers set to those values and measures the target at the last position.
 */
import { gatherUnits, readSite, scatterUnits, writeSite } from "../intervene/index.js";
import type { DecoderModel } from "../models/decoder.js";
import type { PretrainedModel } from "../models/model.js";
import type { HookHandle } from "../nn/module.js";
import { describe, readOptions } from "../options/index.js";
import * as tv from "../tensor/index.js";
import type { IntTensor, Tensor } from "../tensor/index.js";
import { checkMetric, checkPair, checkTarget } from "./checks.js";
import { asDecoder, measure, type Metric, recordRun, resumedLogits, topToken } from "./engine.js";
import type { ComponentSite, HeadSite, PathPatchResult } from "./results.js";

/** The heads that send and are frozen: each head's output before the attention's output projection. */
const SENDER_COMPONENT = "head_attention_value_output";

export interface PathPatchOptions {
  base: IntTensor;
  source: IntTensor;
  baseTokens: string[];
  sourceTokens: string[];
  /** Heads whose source output is sent (at every position). */
  senders: HeadSite[];
  /** Sites, any component of the site map, that receive the senders' effect (at every position). */
  receivers: ComponentSite[];
  /** Default: the source run's top token at the last position. */
  target?: number;
  targetLabel?: string;
  metric?: Metric;
}

const PATH_OPTIONS = [
  "base",
  "source",
  "baseTokens",
  "sourceTokens",
  "senders",
  "receivers",
  "target",
  "targetLabel",
  "metric",
] as const satisfies readonly (keyof PathPatchOptions)[];

export function pathPatching(anyModel: PretrainedModel, pathOptions: PathPatchOptions): PathPatchResult {
  const where = "pathPatching";
  const model = asDecoder(anyModel, where);
  const options = readOptions<PathPatchOptions>(pathOptions, PATH_OPTIONS, "pathPatching options");
  const { base, source } = checkPair(options, where);
  const metric = checkMetric(options.metric ?? "probability", where);
  const senders = checkSenders(model, options.senders, where);
  const receivers = checkReceivers(model, options.receivers, where);
  const sourceRun = recordRun(model, { inputIds: source }, SENDER_COMPONENT, null);
  const baseRun = recordRun(model, { inputIds: base }, SENDER_COMPONENT, null);
  const target = checkTarget(options.target, sourceRun.logits.shape[2], where) ?? topToken(sourceRun.logits);

  // Step 1: every head frozen to its base output, the senders' to their source output; the blocks before
  // the first sender or receiver are the base run's, so the run resumes there.
  const first = Math.min(...senders.map((s) => s.layer), ...receivers.map((r) => r.layer));
  const last = Math.max(...receivers.map((r) => r.layer));
  const frozen = (layer: number) => {
    const heads = [senders.filter((s) => s.layer === layer).map((s) => s.head)];
    if (heads[0].length === 0) return baseRun.component[layer];
    const sent = gatherUnits(sourceRun.component[layer], "h", heads, where);
    return scatterUnits(baseRun.component[layer], "h", heads, sent, where);
  };
  const received: Tensor[] = new Array(receivers.length);
  const handles: HookHandle[] = [];
  try {
    for (let l = first; l <= last; l++) {
      const value = frozen(l);
      handles.push(writeSite(model, model.site(SENDER_COMPONENT, l), () => value));
    }
    receivers.forEach(({ layer, component }, i) =>
      handles.push(readSite(model, model.site(component, layer), (view) => void (received[i] = view))),
    );
    const resumeFrom = { layer: first, hidden: baseRun.blockInputs[first] };
    tv.noGrad(() => model.runBlocks({ inputIds: base, resumeFrom }, last));
  } finally {
    for (const handle of handles) handle.remove();
  }
  // A receiver whose module did not run would leave step 2 unpatched: a silent wrong experiment.
  const missed = receivers.findIndex((_, i) => received[i] === undefined);
  if (missed >= 0) throw new RangeError(`${where}: receivers[${missed}]: ${model.family} never ran that site's module`);

  // Step 2: only the receivers take the values they had in step 1.
  const start = Math.min(...receivers.map((r) => r.layer));
  const writes = receivers.map(({ layer, component }, i) => ({ component, layer, write: () => received[i] }));
  const logits = resumedLogits(model, base, start, baseRun.blockInputs[start], writes);
  return {
    kind: "path",
    senderComponent: SENDER_COMPONENT,
    senders,
    receivers,
    baseTokens: options.baseTokens!,
    sourceTokens: options.sourceTokens!,
    target,
    targetLabel: options.targetLabel ?? String(target),
    metric,
    base: measure(baseRun.logits, target, metric)[0],
    source: measure(sourceRun.logits, target, metric)[0],
    patched: measure(logits, target, metric)[0],
  };
}

/** A layer in 0..L−1 of the model. */
function isLayer(model: DecoderModel, layer: unknown): layer is number {
  return Number.isInteger(layer) && (layer as number) >= 0 && (layer as number) < model.numLayers;
}

/** Distinct heads {layer, head}, at least one, within the model. */
function checkSenders(model: DecoderModel, senders: unknown, where: string): HeadSite[] {
  const heads = model.site(SENDER_COMPONENT, 0).heads!;
  const form = `distinct {layer: 0..${model.numLayers - 1}, head: 0..${heads - 1}}`;
  if (!Array.isArray(senders) || senders.length === 0)
    throw new RangeError(`${where}: senders must be a non-empty list of ${form}, got ${describe(senders)}`);
  const seen = new Set<string>();
  return senders.map((item, i) => {
    const sender = readOptions<HeadSite>(item, ["layer", "head"], `${where} senders[${i}]`);
    const key = `${sender.layer}/${sender.head}`;
    const head = sender.head;
    if (!isLayer(model, sender.layer) || !Number.isInteger(head) || head! < 0 || head! >= heads || seen.has(key)) {
      throw new RangeError(`${where}: senders[${i}] must be one of ${form}, got ${describe(item)}`);
    }
    seen.add(key);
    return { layer: sender.layer, head: head! };
  });
}

/**
 * Distinct sites {layer, component}, at least one, of the site map. A site that reads the senders'
 * own value (the attention's output projection input) is refused: step 1 freezes it, so it would
 * carry the senders' direct values and not their effect through a path.
 */
function checkReceivers(model: DecoderModel, receivers: unknown, where: string): ComponentSite[] {
  const form = `distinct {layer: 0..${model.numLayers - 1}, component: a component of the site map}`;
  if (!Array.isArray(receivers) || receivers.length === 0)
    throw new RangeError(`${where}: receivers must be a non-empty list of ${form}, got ${describe(receivers)}`);
  const seen = new Set<string>();
  return receivers.map((item, i) => {
    const at = `${where} receivers[${i}]`;
    const receiver = readOptions<ComponentSite>(item, ["layer", "component"], at);
    const key = `${receiver.layer}/${receiver.component}`;
    if (!isLayer(model, receiver.layer) || typeof receiver.component !== "string" || seen.has(key))
      throw new RangeError(`${at} must be one of ${form}, got ${describe(item)}`);
    seen.add(key);
    let site: ReturnType<DecoderModel["site"]>;
    try {
      site = model.site(receiver.component, receiver.layer);
    } catch (e) {
      throw new RangeError(`${at}: ${(e as Error).message}`);
    }
    const frozen = model.site(SENDER_COMPONENT, receiver.layer);
    if (site.module === frozen.module && site.hook === frozen.hook) {
      throw new RangeError(
        `${at}: "${receiver.component}" is the heads' output that step 1 freezes, so it cannot receive a path; ` +
          "give a site the senders reach through the residual stream " +
          "(e.g. head_query_output, mlp_output, block_output)",
      );
    }
    return { layer: receiver.layer, component: receiver.component };
  });
}
