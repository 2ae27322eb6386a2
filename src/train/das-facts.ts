/**
 * Distributed alignment search on a factual-recall task (a facts world, or any list of facts).
 * Hypothesis: a low-rank subspace of a component at the subject's last token carries one
 * attribute of the subject (one relation, e.g. the city). A LowRankRotatedSpaceIntervention swaps
 * that subspace from a source prompt into a base prompt; where the hypothesis holds, the base then
 * names the source's attribute. The rotation is trained with trainAlignment on training pairs;
 * interchange intervention accuracy (IIA) on test pairs is measured with evalAlignment before
 * training (the untrained rotation: the control) and after.
 *
 * Only facts the model gets right are used, and only pairs whose attributes differ (a swap between
 * equal attributes cannot be told from no swap), so a swap that moves nothing scores 0 and one
 * that scrambles the attribute scores about chance, 1 / the attribute's number of values.
 * Base and source are independent prompts of the relation. Training pairs come from the trained
 * templates and test pairs from the held-out ones where the facts have both; otherwise a seeded
 * fifth of the facts is held out.
 */
import type { Fact } from "../causal/facts-world.js";
import { subjectPositions, targetToken } from "../causal/prompt-tokens.js";
import { IntervenableModel } from "../intervene/intervenable-model.js";
import { LowRankRotatedSpaceIntervention } from "../intervene/interventions/index.js";
import type { Tokenizer } from "../io/tokenizer.js";
import type { ModelInputs, PretrainedModel } from "../models/model.js";
import { describe, readOptions } from "../options/index.js";
import {
  Generator,
  type IntTensor,
  argmax,
  crossEntropy,
  gatherAt,
  intTensor,
  noGrad,
  squeeze,
  type Tensor,
} from "../tensor/index.js";
import { evalAlignment, trainAlignment, type AlignmentBatch } from "./alignment.js";
import { Adam } from "./optimizers.js";

export interface DasOnFactsOptions {
  /** The attribute aligned: a relation of the facts (default: the first; "" for a plain list). */
  relation?: string;
  /** Default: the middle layer, where the model recalls the subject (ROME). */
  layer?: number;
  /** Default block_output. */
  component?: string;
  /** Dimension of the swapped subspace. */
  rank?: number;
  /** Training steps, one batch each. */
  steps?: number;
  /** Pairs per step. */
  batchSize?: number;
  /** Adam's learning rate (constant). */
  lr?: number;
  /** Seed of the initial rotation, the split and the pairs. */
  seed?: number;
  /** Pairs IIA is measured on. */
  testPairs?: number;
  onProgress?: (done: number, total: number) => void;
}

/** Defaults that find the city at the default model's subject's last token (IIA far above chance in seconds). */
export const DAS_ON_FACTS_DEFAULTS = {
  component: "block_output",
  rank: 8,
  steps: 300,
  batchSize: 16,
  lr: 0.01,
  seed: 0,
  testPairs: 256,
};

export interface DasOnFactsResult {
  kind: "das";
  relation: string;
  layer: number;
  component: string;
  position: "subject's last token";
  lowRankDimension: number;
  /** Facts of the relation, those the model answers right (only they are used), and their share. */
  facts: number;
  knownFacts: number;
  factualAccuracy: number;
  trainFacts: number;
  testFacts: number;
  testPairs: number;
  steps: number;
  batchSize: number;
  lr: number;
  seed: number;
  /** The attribute's number of values, and IIA by guessing among them: 1 / values. */
  values: number;
  chance: number;
  /** IIA of the untrained rotation (the control). */
  iiaBefore: number;
  iiaAfter: number;
  firstLoss: number;
  lastLoss: number;
}

const OPTION_KEYS = [
  "relation",
  "layer",
  "component",
  "rank",
  "steps",
  "batchSize",
  "lr",
  "seed",
  "testPairs",
  "onProgress",
] as const satisfies readonly (keyof DasOnFactsOptions)[];
/** Examples per forward pass when nothing is trained. */
const EVAL_BATCH = 64;

interface Example {
  ids: number[];
  subjectLast: number;
  attribute: number;
  heldOut: boolean;
}

interface Pair {
  base: Example;
  source: Example;
}

/** The source's attribute, to be read at each base's last real position. */
interface Labels {
  targets: IntTensor;
  last: IntTensor;
}

export function dasOnFacts(
  model: PretrainedModel,
  tokenizer: Tokenizer,
  facts: readonly Fact[],
  dasOptions: DasOnFactsOptions = {},
): DasOnFactsResult {
  const options = readOptions<DasOnFactsOptions>(dasOptions, OPTION_KEYS, "dasOnFacts options");
  const { relation, layer, component, rank, steps, batchSize, lr, seed, testPairs, width } = settle(
    model,
    facts,
    options,
  );
  const ofRelation = facts.flatMap((f, i) => (f.relation === relation ? [{ fact: f, i }] : []));
  const examples = ofRelation.map(({ fact, i }) => example(tokenizer, fact, i));
  const pad = tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0;
  const predicted = predictions(model, examples, pad);
  const known = examples.filter((e, i) => predicted[i] === e.attribute);
  // The rotation is drawn first, so that the control does not depend on how many pairs are drawn.
  const generator = new Generator(seed);
  const intervention = new LowRankRotatedSpaceIntervention({ embedDim: width, lowRankDimension: rank, generator });
  const im = new IntervenableModel({ layer, component, unit: "pos", intervention }, model);
  const { train, test } = split(known, generator);
  const testBatches = chunks(
    Array.from({ length: testPairs }, () => samplePair(test, generator, "test")),
    EVAL_BATCH,
  ).map((b) => batch(b, pad));
  const trainBatches = Array.from({ length: steps }, () =>
    batch(
      Array.from({ length: batchSize }, () => samplePair(train, generator, "training")),
      pad,
    ),
  );

  const iia = () => evalAlignment(im, testBatches, { computeMetrics: interchangeAccuracy });
  const iiaBefore = iia();
  const { losses } = trainAlignment(im, trainBatches, {
    computeLoss: (logits, labels: Labels) => crossEntropy(lastLogits(logits, labels.last), labels.targets),
    optimizer: new Adam(im.getTrainableParameters(), { lr }),
    epochs: 1,
    scheduler: null,
    temperature: null,
    onStep: ({ batch: done }) => options.onProgress?.(done + 1, steps),
  });
  const values = new Set(ofRelation.map(({ fact }) => fact.attribute)).size;
  return {
    kind: "das",
    relation,
    layer,
    component,
    position: "subject's last token",
    lowRankDimension: rank,
    facts: examples.length,
    knownFacts: known.length,
    factualAccuracy: known.length / examples.length,
    trainFacts: train.length,
    testFacts: test.length,
    testPairs,
    steps,
    batchSize,
    lr,
    seed,
    values,
    chance: 1 / values,
    iiaBefore,
    iiaAfter: iia(),
    firstLoss: losses[0],
    lastLoss: losses[losses.length - 1],
  };
}

/** The options with their defaults, checked against the model and the facts before any work starts. */
function settle(model: PretrainedModel, facts: readonly Fact[], options: DasOnFactsOptions) {
  const defaults = DAS_ON_FACTS_DEFAULTS;
  const {
    component = defaults.component,
    rank = defaults.rank,
    steps = defaults.steps,
    batchSize = defaults.batchSize,
    lr = defaults.lr,
    seed = defaults.seed,
    testPairs = defaults.testPairs,
  } = options;
  const layer = options.layer ?? Math.floor(model.numLayers / 2);
  if (facts.length === 0) throw new RangeError("dasOnFacts: facts is empty (expected facts of the task)");
  const relations = [...new Set(facts.map((f) => f.relation))];
  const relation = options.relation ?? relations[0];
  if (!relations.includes(relation))
    throw new RangeError(
      `dasOnFacts: relation must be one of the facts' relations (${relations.join(", ")}), got ${describe(relation)}`,
    );
  if (!Number.isInteger(layer) || layer < 0 || layer >= model.numLayers)
    throw new RangeError(`dasOnFacts: layer must be an integer in 0..${model.numLayers - 1}, got ${describe(layer)}`);
  const width = model.site(component, layer).dim;
  for (const [name, value] of Object.entries({ rank, steps, batchSize, testPairs })) {
    if (!Number.isInteger(value) || value < 1)
      throw new RangeError(`dasOnFacts: ${name} must be a positive integer, got ${describe(value)}`);
  }
  if (rank > width)
    throw new RangeError(`dasOnFacts: rank must be at most the width of ${component} (${width}), got ${rank}`);
  if (!(lr > 0)) throw new RangeError(`dasOnFacts: lr must be a positive number, got ${describe(lr)}`);
  if (!Number.isInteger(seed)) throw new RangeError(`dasOnFacts: seed must be an integer, got ${describe(seed)}`);
  return { relation, layer, component, rank, steps, batchSize, lr, seed, testPairs, width };
}

function example(tokenizer: Tokenizer, fact: Fact, i: number): Example {
  const ids = tokenizer.encode(fact.prompt);
  const subject = subjectPositions(tokenizer, { text: fact.prompt, ids }, fact.subject, `facts[${i}].subject`);
  const attribute = targetToken(tokenizer, fact.prompt, fact.attribute, `facts[${i}].attribute`).id;
  return { ids, subjectLast: subject[subject.length - 1], attribute, heldOut: fact.heldOut };
}

/** Held-out templates test where the facts have them; otherwise a seeded fifth of the facts does. */
function split(known: Example[], generator: Generator): { train: Example[]; test: Example[] } {
  if (known.some((e) => e.heldOut) && known.some((e) => !e.heldOut))
    return { train: known.filter((e) => !e.heldOut), test: known.filter((e) => e.heldOut) };
  const shuffled = [...known];
  for (let i = shuffled.length - 1; i > 0; i--) {
    const j = Math.floor(generator.uniform() * (i + 1));
    [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
  }
  const testCount = Math.ceil(shuffled.length / 5);
  return { train: shuffled.slice(testCount), test: shuffled.slice(0, testCount) };
}

/** A base and a source whose attributes differ, drawn uniformly. */
function samplePair(examples: readonly Example[], generator: Generator, set: string): Pair {
  if (new Set(examples.map((e) => e.attribute)).size < 2) {
    throw new RangeError(
      `dasOnFacts: the ${set} facts the model names correctly (${examples.length}) ` +
        "do not have two different attributes, so no swap can be tested",
    );
  }
  const draw = () => examples[Math.floor(generator.uniform() * examples.length)];
  const base = draw();
  let source = draw();
  while (source.attribute === base.attribute) source = draw();
  return { base, source };
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  return Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size));
}

/** Prompts of different lengths as one right-padded batch (real positions keep their places). */
function padded(examples: readonly Example[], pad: number): ModelInputs {
  const width = Math.max(...examples.map((e) => e.ids.length));
  const ids = examples.map((e) => [...e.ids, ...new Array<number>(width - e.ids.length).fill(pad)]);
  const mask = examples.map((e) => e.ids.map(() => 1).concat(new Array<number>(width - e.ids.length).fill(0)));
  return { inputIds: intTensor(ids), attentionMask: intTensor(mask) };
}

/** Pairs as one alignment batch: the swap goes from each source's subject's last token to its base's. */
function batch(pairs: readonly Pair[], pad: number): AlignmentBatch<Labels> {
  const bases = pairs.map((p) => p.base);
  const sources = pairs.map((p) => p.source);
  const at = (examples: Example[]) => examples.map((e) => [e.subjectLast]);
  return {
    base: padded(bases, pad),
    source: padded(sources, pad),
    unitLocations: { "sources->base": [[at(sources)], [at(bases)]] },
    labels: {
      targets: intTensor(sources.map((e) => e.attribute)),
      last: intTensor(bases.map((e) => [e.ids.length - 1])),
    },
  };
}

/** Each row's logits at its last real position: [B, vocab]. */
function lastLogits(logits: Tensor, last: IntTensor): Tensor {
  return squeeze(gatherAt(logits, 1, last), 1);
}

/** The share of pairs where the swapped base names the source's attribute. */
function interchangeAccuracy(logits: Tensor, labels: Labels): number {
  const chosen = argmax(lastLogits(logits, labels.last), -1).data;
  return chosen.reduce((hits, id, i) => hits + Number(id === labels.targets.data[i]), 0) / chosen.length;
}

/** The model's top token after each prompt. */
function predictions(model: PretrainedModel, examples: readonly Example[], pad: number): number[] {
  return noGrad(() =>
    chunks(examples, EVAL_BATCH).flatMap((rows) => {
      const last = intTensor(rows.map((e) => [e.ids.length - 1]));
      return [...argmax(lastLogits(model.run(padded(rows, pad)).logits, last), -1).data];
    }),
  );
}
