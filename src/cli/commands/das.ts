/**
 * `tsvene das`: a small distributed alignment search on the model's factual-recall task (its
 * facts.json). Hypothesis: a low-rank subspace (rank 1 by default) of the component at the
 * subject's last token carries one attribute of the subject (one relation, e.g. the city). A
 * LowRankRotatedSpaceIntervention swaps that subspace from a source prompt into a base prompt;
 * where the hypothesis holds, the base then names the source's attribute. Interchange
 * intervention accuracy (IIA) on test pairs is reported for the untrained (random) subspace and
 * after training it with Adam on training pairs.
 *
 * Only facts the model gets right are used, and only pairs whose attributes differ (a swap between
 * equal attributes cannot be told from no swap). Base and source are independent prompts of the
 * relation. With the default model's facts, training pairs come from the trained templates and
 * test pairs from the held-out ones; with a plain list, a seeded fifth of the facts is held out.
 */
import { LowRankRotatedSpaceIntervention } from "../../intervene/interventions/index.js";
import { IntervenableModel } from "../../intervene/intervenable-model.js";
import type { ModelInputs, PretrainedModel } from "../../models/model.js";
import { Adam } from "../../train/optimizers.js";
import { Generator, argmax, crossEntropy, gatherAt, intTensor, manualSeed, noGrad, squeeze, type Tensor } from "../../tensor/index.js";
import { UsageError, checkLayer, type OptionTable } from "../args.js";
import { COMMON_OPTIONS, checkComponent, loadModel, type Command, type LoadedModel } from "../context.js";
import { factsFileOf, readFacts, type Fact } from "../facts.js";
import { checkInputPath, checkOutputPaths } from "../files.js";
import { emit, formatScore } from "../output.js";
import { progressBar } from "../progress.js";
import { promptIds, subjectPositions, targetToken } from "../text.js";

/** Enough pairs to measure IIA to a few percent while keeping the command quick. */
const TEST_PAIRS = 256;
/** Examples per forward pass when nothing is trained. */
const EVAL_BATCH = 64;

const options = {
  layer: { kind: "int", description: "The layer searched (default: the middle layer)." },
  component: { kind: "string", form: "<component>", description: "The component searched (default block_output)." },
  relation: { kind: "string", form: "<name>", description: "The attribute aligned, a relation of facts.json (default: its first, e.g. city)." },
  rank: { kind: "int", min: 1, description: "Dimension of the swapped subspace (default 1)." },
  facts: { kind: "string", form: "<facts.json>", description: "The task's facts (default: facts.json in the model's folder)." },
  steps: { kind: "int", min: 1, description: "Training steps (default 300)." },
  "batch-size": { kind: "int", min: 1, description: "Pairs per step (default 16)." },
  lr: { kind: "number", positive: true, description: "Adam's learning rate (default 0.01)." },
  seed: { kind: "int", description: "Seed of the initial subspace and of the pairs (default 0)." },
  ...COMMON_OPTIONS,
} as const satisfies OptionTable;

export const dasCommand: Command<typeof options> = {
  syntax: {
    name: "das",
    summary: "Distributed alignment search: is the subject's attribute a low-rank subspace at its last token?",
    synopsis: "[--layer L] [--component block_output] [--relation city] [options]",
    options,
    notes: 'A plain facts file: [{"prompt": "Ka Bo lives in the city of", "subject": "Ka Bo", "attribute": "Rome"}, ...].',
    examples: [
      "tsvene das --layer 2 --relation language --steps 100",
      "tsvene das --rank 2 --steps 50 --batch-size 8 --out das.json",
    ],
  },

  async run({ values }) {
    await checkOutputPaths({ "--out": values.out });
    if (values.facts !== undefined) await checkInputPath("--facts", values.facts, "file", "a facts.json file");
    const loaded = await loadModel(values.model);
    const { model, folder } = loaded;
    const factsFile = values.facts ?? factsFileOf(folder);
    if (factsFile === null) throw new UsageError(`das needs the task's facts: this model's folder (${folder}) has no facts.json; give --facts <facts.json>`);
    const { facts } = await readFacts(factsFile);
    const layer = checkLayer(values.layer ?? Math.floor(model.numLayers / 2), model.numLayers, "--layer");
    const component = checkComponent(model, values.component ?? "block_output", "--component");
    const relations = [...new Set(facts.map((f) => f.relation))];
    const relation = values.relation ?? relations[0];
    if (!relations.includes(relation)) {
      throw new UsageError(relations[0] === "" ? `--relation: ${factsFile} is a plain list of facts without relations; leave --relation out` : `--relation ${relation} is not a relation of ${factsFile} (expected one of ${relations.join(", ")})`);
    }
    const rank = values.rank ?? 1;
    const steps = values.steps ?? 300;
    const batchSize = values["batch-size"] ?? 16;
    const lr = values.lr ?? 0.01;
    const seed = values.seed ?? 0;
    const generator = new Generator(seed);

    const examples = facts.filter((f) => f.relation === relation).map((f, i) => example(loaded, f, i));
    const pad = loaded.tokenizer.padTokenId ?? loaded.tokenizer.eosTokenId ?? 0;
    const predicted = predictions(model, examples, pad);
    const known = examples.filter((e, i) => predicted[i] === e.attribute);
    const { train, test } = split(known, generator);
    const testPairs = Array.from({ length: TEST_PAIRS }, () => samplePair(test, generator, "test"));

    manualSeed(seed);
    const im = new IntervenableModel({ layer, component, unit: "pos", interventionType: LowRankRotatedSpaceIntervention, lowRankDimension: rank }, model);
    const iiaBefore = interchangeAccuracy(im, testPairs, pad);
    const optimizer = new Adam(im.getTrainableParameters(), { lr });
    const losses: number[] = [];
    const bar = progressBar(`das layer ${layer}`, { quiet: values.quiet });
    try {
      for (let step = 0; step < steps; step++) {
        const batch = Array.from({ length: batchSize }, () => samplePair(train, generator, "training"));
        const loss = crossEntropy(swappedLogits(im, batch, pad), intTensor(batch.map((p) => p.source.attribute)));
        loss.backward();
        optimizer.step();
        optimizer.zeroGrad();
        losses.push(loss.item());
        bar.update(step + 1, steps);
      }
    } finally {
      bar.finish();
    }
    const iiaAfter = interchangeAccuracy(im, testPairs, pad);

    const result = {
      kind: "das", layer, component, relation, position: "subject's last token", lowRankDimension: rank,
      facts: examples.length, factualAccuracy: known.length / examples.length,
      trainFacts: train.length, testFacts: test.length, testPairs: testPairs.length, steps, batchSize, lr, seed,
      iiaBefore, iiaAfter, firstLoss: losses[0], lastLoss: losses[losses.length - 1],
    };
    const text = [
      `DAS, rank ${rank}, ${component} at layer ${layer}, subject's last token${relation ? `, relation ${relation}` : ""} (${factsFile})`,
      `the model names ${known.length} of ${examples.length} attributes; pairs drawn from ${train.length} training and ${test.length} test facts`,
      `IIA on ${testPairs.length} test pairs: ${formatScore(iiaBefore)} before training, ${formatScore(iiaAfter)} after ${steps} steps (loss ${formatScore(result.firstLoss)} → ${formatScore(result.lastLoss)})`,
      "",
    ].join("\n");
    await emit(result, text, values);
    return 0;
  },
};

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

function example(loaded: LoadedModel, fact: Fact, i: number): Example {
  const ids = promptIds(loaded, fact.prompt, `facts entry ${i}: prompt`);
  const subject = subjectPositions(loaded, { text: fact.prompt, ids }, fact.subject, `facts entry ${i}: subject`);
  const attribute = targetToken(loaded, fact.prompt, fact.attribute, `facts entry ${i}: attribute`).id;
  return { ids, subjectLast: subject[subject.length - 1], attribute, heldOut: fact.heldOut };
}

/** Held-out templates test where the facts have them; otherwise a seeded fifth of the facts does. */
function split(known: Example[], generator: Generator): { train: Example[]; test: Example[] } {
  if (known.some((e) => e.heldOut) && known.some((e) => !e.heldOut)) return { train: known.filter((e) => !e.heldOut), test: known.filter((e) => e.heldOut) };
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
    throw new Error(`das: the ${set} facts the model names correctly (${examples.length}) do not have two different attributes, so no swap can be tested`);
  }
  const draw = () => examples[Math.floor(generator.uniform() * examples.length)];
  const base = draw();
  let source = draw();
  while (source.attribute === base.attribute) source = draw();
  return { base, source };
}

/** Prompts of different lengths as one right-padded batch (real positions keep their places). */
function padded(examples: readonly Example[], pad: number): ModelInputs {
  const width = Math.max(...examples.map((e) => e.ids.length));
  const ids = examples.map((e) => [...e.ids, ...new Array<number>(width - e.ids.length).fill(pad)]);
  const mask = examples.map((e) => e.ids.map(() => 1).concat(new Array<number>(width - e.ids.length).fill(0)));
  return { inputIds: intTensor(ids), attentionMask: intTensor(mask) };
}

/** Each row's logits at its last real position: [B, vocab]. */
function lastLogits(logits: Tensor, examples: readonly Example[]): Tensor {
  return squeeze(gatherAt(logits, 1, intTensor(examples.map((e) => [e.ids.length - 1]))), 1);
}

/** The model's top token after each prompt. */
function predictions(model: PretrainedModel, examples: readonly Example[], pad: number): number[] {
  const out: number[] = [];
  noGrad(() => {
    for (let i = 0; i < examples.length; i += EVAL_BATCH) {
      const batch = examples.slice(i, i + EVAL_BATCH);
      out.push(...argmax(lastLogits(model.run(padded(batch, pad)).logits, batch), -1).data);
    }
  });
  return out;
}

function swappedLogits(im: IntervenableModel, pairs: readonly Pair[], pad: number): Tensor {
  const bases = pairs.map((p) => p.base);
  const sources = pairs.map((p) => p.source);
  const at = (examples: Example[]) => examples.map((e) => [e.subjectLast]);
  const { intervened } = im.forward(padded(bases, pad), [padded(sources, pad)], { unitLocations: { "sources->base": [[at(sources)], [at(bases)]] } });
  return lastLogits(intervened.logits, bases);
}

/** The share of pairs where the swapped base names the source's attribute. */
function interchangeAccuracy(im: IntervenableModel, pairs: readonly Pair[], pad: number): number {
  let hits = 0;
  noGrad(() => {
    for (let i = 0; i < pairs.length; i += EVAL_BATCH) {
      const batch = pairs.slice(i, i + EVAL_BATCH);
      const chosen = argmax(swappedLogits(im, batch, pad), -1).data;
      batch.forEach((p, j) => (hits += Number(chosen[j] === p.source.attribute)));
    }
  });
  return hits / pairs.length;
}
