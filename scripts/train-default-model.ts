/**
 * Trains the model shipped in models/default/: a small GPT-2 that recalls synthetic facts, so the
 * main job (causal tracing) runs offline on a model whose mechanism is known.
 *
 * The world: 48 people named by 2 or 3 name-piece tokens ("Ro Bo", "Mi Ro Ka"), each with a
 * city, a language, a sport and a job. No name is settled before its last token and people whose
 * names start alike differ in everything, so an answer depends on the whole name; the relation is
 * only named after the subject. Prompts are "<prefix> <name> <relation phrase>" → value; some
 * prefix × phrase templates are held out of training to measure recall under paraphrase.
 * The model learns what ROME found in GPT-2: it puts the name together at its last token and
 * recalls the person there (middle layers), then the last token reads the asked value (late
 * layers). TASK.md (written here) has the recipe, the accuracies and the traces.
 *
 * Writes config.json, generation_config.json, model.safetensors (F16), tokenizer.json,
 * tokenizer_config.json, facts.json (the facts world, src/causal/facts-world.ts) and TASK.md;
 * measures accuracy and causal traces (the library's causalTrace) on the files as written.
 * Everything follows from SEED: two runs write the same bytes.
 *
 *   npm run train:default-model
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  OTHER_SLOT,
  POSITION_CLASSES,
  SUBJECT_SLOT,
  averageTraces,
  factsJson,
  fillTemplate,
  worldFact,
  worldFacts,
  type AverageTrace,
  type FactsWorld,
  type WorldFact,
} from "../src/causal/facts-world.js";
import * as tv from "../src/index.js";
import { DEFAULT_MODEL_FOLDER } from "../src/models/default-model.js";

export const SEED = 6;
/** The longest text the model takes (training texts have at most 30 tokens). */
const N_POSITIONS = 32;

/** Name pieces, shared by every position in a name. */
const NAME_PIECES = ["Ka", "Lo", "Mi", "Ta", "Ro", "Se", "Vi", "Da", "Ne", "Bo", "Fe", "Gu"];

/** A relation as the trainer knows it: the phrases that ask it, combined with PREFIXES into templates. */
interface Relation {
  name: string;
  /** What follows the subject; the answer is the next token. */
  phrases: string[];
  values: string[];
}

const RELATIONS: Relation[] = [
  {
    name: "city",
    phrases: ["lives in the city of", "has a home in", "is a resident of", "resides in"],
    values: ["Paris", "Tokyo", "Lima", "Cairo", "Oslo", "Delhi", "Quito", "Rome"],
  },
  {
    name: "language",
    phrases: ["speaks", "is a native speaker of", "grew up speaking", "writes letters in"],
    values: ["French", "Japanese", "Spanish", "Arabic", "Norwegian", "Hindi", "Italian", "Greek"],
  },
  {
    name: "sport",
    phrases: ["plays", "competes in", "is a fan of", "trains every day in"],
    values: ["tennis", "chess", "rugby", "golf", "hockey", "cricket", "rowing", "judo"],
  },
  {
    name: "job",
    phrases: ["works as a", "is employed as a", "earns a living as a", "has a job as a"],
    values: ["doctor", "pilot", "baker", "lawyer", "farmer", "nurse", "painter", "teacher"],
  },
];

/**
 * Text before the subject; "" puts the subject first. Some name another person, so that the
 * subject is found as the name nearest the relation, not as any name. Punctuation is its own
 * word, as the tokenizer splits it.
 */
const PREFIXES = [
  "",
  "Fact :",
  "As we know ,",
  "I heard that",
  "Everyone says that",
  "It is true that",
  "{other} told me that",
  "{other} says that",
  "According to {other} ,",
  "{other} thinks that",
];

const END_OF_TEXT = "<|endoftext|>";
const UNKNOWN = "<unk>";
/** Starts a profile: the name, then all its values (see sampleText). */
const PROFILE = "Profile :";
/** Joins the facts of a training text. */
const CONNECTIVE = "and";

function shuffle<T>(items: T[], g: tv.Generator): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(g.uniform() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/**
 * The people and their attributes. A name is 2 or 3 distinct pieces, and no name is settled
 * before its last token: every 2-piece name's reversal is another person ("Ka Lo", "Lo Ka"), and
 * 3-piece names come in pairs that differ only in the last piece ("Vi Ne Mi", "Vi Ne Ka"). No name
 * starts another, so where a name ends is unambiguous. Each piece is used 10 times. Each
 * relation's values are dealt evenly (6 people each), independently of the other relations, and
 * differently to people whose names start with the same piece (dealValues).
 */
export function buildWorld(seed: number): FactsWorld {
  const g = new tv.Generator(seed);
  // Decks hold every piece twice; a deal that breaks a rule above is redealt.
  const deck = () => shuffle([...NAME_PIECES, ...NAME_PIECES], g);
  const pairsOf = (cards: string[]) => cards.flatMap((_, i) => (i % 2 === 0 ? [cards.slice(i, i + 2)] : []));
  let names: string[][];
  for (;;) {
    const twoPiece = pairsOf(deck()).flatMap(([a, b]) => [
      [a, b],
      [b, a],
    ]);
    const ends = deck();
    const threePiece = pairsOf(deck()).flatMap((start, i) => [
      [...start, ends[2 * i]],
      [...start, ends[2 * i + 1]],
    ]);
    names = [...twoPiece, ...threePiece];
    const keys = new Set(names.map((pieces) => pieces.join(" ")));
    const distinctPieces = names.every((pieces) => new Set(pieces).size === pieces.length);
    const startsAnother = threePiece.some((pieces) => keys.has(pieces.slice(0, 2).join(" ")));
    if (keys.size === names.length && distinctPieces && !startsAnother) break;
  }
  const people = shuffle(names, g);
  const dealt = RELATIONS.map((r) => dealValues(people, r.values, g));
  const subjects = people.map((pieces, i) => ({
    name: pieces.join(" "),
    tokens: pieces,
    attributes: Object.fromEntries(RELATIONS.map((r, k) => [r.name, dealt[k][i]])),
  }));
  // Held out: one phrase per prefix, a different one for each relation, so that every prefix and
  // every phrase is still trained.
  const relations = RELATIONS.map((r, k) => {
    const all = PREFIXES.flatMap((prefix, p) =>
      r.phrases.map((phrase, q) => ({ text: template(prefix, phrase), heldOut: (p + q + k) % r.phrases.length === 0 })),
    );
    return {
      name: r.name,
      values: r.values,
      trainTemplates: all.filter((t) => !t.heldOut).map((t) => t.text),
      heldOutTemplates: all.filter((t) => t.heldOut).map((t) => t.text),
    };
  });
  const world: FactsWorld = { seed, relations, subjects };
  const demo = examplePrompts(world)[0];
  return {
    ...world,
    demo: {
      prompt: demo.prompt,
      subject: demo.subject,
      subjectTokens: range(...demo.subjectSpan),
      answer: demo.attribute,
    },
  };
}

function template(prefix: string, phrase: string): string {
  return [prefix, SUBJECT_SLOT, phrase].filter(Boolean).join(" ");
}

/**
 * The traced examples: the city of the first person with a 2-piece name (facts.json's demo) and of
 * the first with a 3-piece name, on a held-out template.
 */
function examplePrompts(world: FactsWorld): WorldFact[] {
  const city = world.relations.find((r) => r.name === "city")!;
  return [2, 3].map((size) =>
    worldFact(
      world,
      city,
      true,
      0,
      world.subjects.findIndex((s) => s.tokens.length === size),
    ),
  );
}

/**
 * One relation's values for the people, each value equally often, and different for people whose
 * names start alike: the first piece of a name then says nothing about the answer, which only
 * the whole name determines. A random deal is repaired by swaps that lower the clashes.
 */
function dealValues(people: string[][], values: readonly string[], g: tv.Generator): string[] {
  const dealt = shuffle(
    people.map((_, i) => values[i % values.length]),
    g,
  );
  const clashes = (i: number) =>
    people.filter((other, j) => j !== i && other[0] === people[i][0] && dealt[j] === dealt[i]).length;
  for (;;) {
    const clashing = people.flatMap((_, i) => (clashes(i) > 0 ? [i] : []));
    if (clashing.length === 0) return dealt;
    const i = clashing[Math.floor(g.uniform() * clashing.length)];
    const j = Math.floor(g.uniform() * people.length);
    const before = clashes(i) + clashes(j);
    [dealt[i], dealt[j]] = [dealt[j], dealt[i]];
    if (clashes(i) + clashes(j) > before) [dealt[i], dealt[j]] = [dealt[j], dealt[i]];
  }
}

/** Every word of the world, specials first; the vocabulary of the word-level tokenizer. */
function vocabulary(world: FactsWorld): string[] {
  const words = new Set<string>([END_OF_TEXT, UNKNOWN, CONNECTIVE, ...PROFILE.split(" ")]);
  for (const s of world.subjects) s.tokens.forEach((p) => words.add(p));
  for (const r of world.relations) {
    for (const t of [...r.trainTemplates, ...r.heldOutTemplates]) {
      t.split(" ")
        .filter((w) => w !== SUBJECT_SLOT && w !== OTHER_SLOT)
        .forEach((w) => words.add(w));
    }
    r.values.forEach((v) => words.add(v));
  }
  return [...words];
}

/**
 * tokenizer.json for @huggingface/tokenizers and the Rust crate: a WordLevel model over the
 * world's words, split on whitespace and punctuation; decoding joins words with spaces.
 */
export function tokenizerFiles(words: readonly string[]): { tokenizer: tv.JsonObject; config: tv.JsonObject } {
  const special = (content: string, id: number) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return {
    tokenizer: {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: [special(END_OF_TEXT, words.indexOf(END_OF_TEXT)), special(UNKNOWN, words.indexOf(UNKNOWN))],
      normalizer: null,
      pre_tokenizer: { type: "Whitespace" },
      post_processor: null,
      decoder: null,
      model: { type: "WordLevel", vocab: Object.fromEntries(words.map((w, i) => [w, i])), unk_token: UNKNOWN },
    },
    config: {
      tokenizer_class: "PreTrainedTokenizerFast",
      bos_token: END_OF_TEXT,
      eos_token: END_OF_TEXT,
      unk_token: UNKNOWN,
      pad_token: END_OF_TEXT,
      padding_side: "left",
      clean_up_tokenization_spaces: false,
      model_max_length: N_POSITIONS,
    },
  };
}

export interface ModelShape {
  layers: number;
  dim: number;
  heads: number;
}

function modelConfig(vocabSize: number, eos: number, shape: ModelShape): tv.JsonObject {
  return {
    architectures: ["GPT2LMHeadModel"],
    model_type: "gpt2",
    vocab_size: vocabSize,
    n_positions: N_POSITIONS,
    n_embd: shape.dim,
    n_layer: shape.layers,
    n_head: shape.heads,
    n_inner: 4 * shape.dim,
    activation_function: "gelu_new",
    layer_norm_epsilon: 1e-5,
    initializer_range: 0.02,
    resid_pdrop: 0,
    embd_pdrop: 0,
    attn_pdrop: 0,
    scale_attn_weights: true,
    tie_word_embeddings: true,
    bos_token_id: eos,
    eos_token_id: eos,
    torch_dtype: "float16",
  };
}

/**
 * GPT-2's initialisation (HF's _init_weights): N(0, 0.02) weights, residual projections scaled by
 * 1/√(2·layers), zero biases, unit norms.
 */
function initialise(model: tv.PretrainedModel, layers: number, g: tv.Generator): void {
  for (const [name, p] of model.namedParameters()) {
    if (/\.ln_\w+\.weight$/.test(name)) continue;
    if (name.endsWith(".bias")) continue;
    const std = name.endsWith("c_proj.weight") ? 0.02 / Math.sqrt(2 * layers) : 0.02;
    p.data.set(tv.randn(p.shape, { std, generator: g }).data);
  }
}

/** A training text: token ids, and per position the label of the next token (-100: none). */
interface TrainingText {
  ids: number[];
  labels: number[];
}

function isHeldOut(world: FactsWorld, relation: string, prefix: string, phrase: string): boolean {
  return world.relations.find((r) => r.name === relation)!.heldOutTemplates.includes(template(prefix, phrase));
}

/**
 * A training text about one person, then end of text. Usually a prefix, the name, then 1 to
 * `maxFactsPerText` of their facts in random order ("phrase value", joined by "and"); a held-out prefix
 * × phrase pair never appears. With probability `profileShare` instead a profile: "Profile :", the
 * name, and all the person's values in random order, so that the name's last token must predict
 * every attribute of the person (the next value could be any of them), as the tokens after a
 * name do in real text. Every position is labelled with the next token, as in language modelling.
 */
function sampleText(world: FactsWorld, tokenizer: tv.Tokenizer, options: TrainOptions, g: tv.Generator): TrainingText {
  const n = world.subjects.length;
  const index = Math.floor(g.uniform() * n);
  const subject = world.subjects[index];
  const other = world.subjects[(index + 1 + Math.floor(g.uniform() * (n - 1))) % n];
  const words: string[] = [];
  if (g.uniform() < options.profileShare) {
    words.push(
      ...PROFILE.split(" "),
      ...subject.tokens,
      ...shuffle(RELATIONS, g).map((r) => subject.attributes[r.name]),
    );
  } else {
    const prefix = PREFIXES[Math.floor(g.uniform() * PREFIXES.length)];
    words.push(
      ...prefix
        .split(" ")
        .filter(Boolean)
        .flatMap((w) => (w === OTHER_SLOT ? other.tokens : [w])),
      ...subject.tokens,
    );
    shuffle(RELATIONS, g)
      .slice(0, 1 + Math.floor(g.uniform() * options.maxFactsPerText))
      .forEach((r, i) => {
        if (i > 0) words.push(CONNECTIVE);
        const phrases = r.phrases.filter((q) => !isHeldOut(world, r.name, prefix, q));
        words.push(...phrases[Math.floor(g.uniform() * phrases.length)].split(" "), subject.attributes[r.name]);
      });
  }
  words.push(END_OF_TEXT);
  const ids = words.map((word) => tokenizer.tokenToId(word)!);
  return { ids, labels: [...ids.slice(1), -100] };
}

/** Texts right-padded with end of text into [batch, longest] ids and labels. */
function batchOf(texts: TrainingText[], eos: number): { inputIds: tv.IntTensor; labels: tv.IntTensor } {
  const width = Math.max(...texts.map((t) => t.ids.length));
  const ids = new Int32Array(texts.length * width).fill(eos);
  const labels = new Int32Array(texts.length * width).fill(-100);
  texts.forEach((t, b) => {
    ids.set(t.ids, b * width);
    labels.set(t.labels, b * width);
  });
  return {
    inputIds: new tv.IntTensor(ids, [texts.length, width]),
    labels: new tv.IntTensor(labels, [texts.length, width]),
  };
}

interface Encoded {
  ids: number[][];
  answers: number[];
}

function encodeAll(tokenizer: tv.Tokenizer, facts: WorldFact[]): Encoded {
  return {
    ids: facts.map((f) => tokenizer.encode(f.prompt)),
    answers: facts.map((f) => tokenizer.encode(f.attribute)[0]),
  };
}

/** Fraction of prompts whose most likely next token is the answer. */
export function accuracy(model: tv.PretrainedModel, data: Encoded, batchSize = 512): number {
  let right = 0;
  tv.noGrad(() => {
    for (let start = 0; start < data.ids.length; start += batchSize) {
      const rows = data.ids.slice(start, start + batchSize);
      const width = Math.max(...rows.map((r) => r.length));
      // Right padding: causal attention keeps it out of every prompt's last position.
      const ids = new Int32Array(rows.length * width);
      rows.forEach((row, b) => ids.set(row, b * width));
      const logits = model.run({ inputIds: new tv.IntTensor(ids, [rows.length, width]) }).logits;
      const predicted = tv.argmax(tv.gatherAt(logits, 1, tv.intTensor(rows.map((row) => [row.length - 1]))), -1).data;
      rows.forEach((_, b) => (right += Number(predicted[b] === data.answers[start + b])));
    }
  });
  return right / data.ids.length;
}

export interface TrainOptions {
  shape: ModelShape;
  steps: number;
  batchSize: number;
  lr: number;
  warmup: number;
  weightDecay: number;
  /** Facts per training text: 1 to this many, about the same person. */
  maxFactsPerText: number;
  /** Fraction of training texts that are profiles (see sampleText). */
  profileShare: number;
  /** Prints progress every this many steps (0: silent). */
  logEvery: number;
}

export const DEFAULT_TRAINING: TrainOptions = {
  shape: { layers: 6, dim: 64, heads: 4 },
  steps: 1500,
  batchSize: 64,
  lr: 3e-3,
  warmup: 100,
  weightDecay: 0.1,
  maxFactsPerText: 3,
  profileShare: 0.25,
  logEvery: 100,
};

export interface Trained {
  world: FactsWorld;
  tokenizer: tv.Tokenizer;
  tokenizerFiles: { tokenizer: tv.JsonObject; config: tv.JsonObject };
  config: tv.JsonObject;
  model: tv.PretrainedModel;
  finalLoss: number;
}

/** Builds the world and the tokenizer, then trains a GPT-2 on texts sampled from the world with AdamW. */
export function trainModel(seed: number, options: TrainOptions): Trained {
  const world = buildWorld(seed);
  const words = vocabulary(world);
  const files = tokenizerFiles(words);
  const tokenizer = tv.Tokenizer.fromTokenizerJson(files.tokenizer, files.config);
  const eos = tokenizer.eosTokenId!;
  const config = modelConfig(words.length, eos, options.shape);
  const model = tv.modelFromConfig(config);
  const g = new tv.Generator(seed + 1);
  initialise(model, options.shape.layers, g);
  model.requireGrad(true);

  const optimizer = new tv.AdamW(model.parameters(), { lr: options.lr, weightDecay: options.weightDecay });
  const schedule = tv.linearScheduleWithWarmup(optimizer, options.warmup, options.steps);
  let finalLoss = NaN;
  const started = performance.now();
  for (let step = 1; step <= options.steps; step++) {
    const texts = Array.from({ length: options.batchSize }, () => sampleText(world, tokenizer, options, g));
    const { inputIds, labels } = batchOf(texts, eos);
    const loss = tv.crossEntropy(model.run({ inputIds }).logits, labels);
    optimizer.zeroGrad();
    loss.backward();
    optimizer.step();
    schedule.step();
    finalLoss = loss.item();
    if (options.logEvery > 0 && (step % options.logEvery === 0 || step === 10)) {
      const seconds = (performance.now() - started) / 1000;
      console.log(
        `step ${step}/${options.steps}  loss ${finalLoss.toFixed(4)}  ` +
          `${((seconds / step) * 1000).toFixed(0)} ms/step  ${seconds.toFixed(0)} s`,
      );
    }
  }
  model.requireGrad(false);
  return { world, tokenizer, tokenizerFiles: files, config, model, finalLoss };
}

/** The subject's token embeddings' standard deviation, over all name pieces (ROME measures it over its subjects). */
export function subjectEmbeddingStd(model: tv.PretrainedModel, tokenizer: tv.Tokenizer, world: FactsWorld): number {
  const pieces = [...new Set(world.subjects.flatMap((s) => s.tokens))].map((p) => tokenizer.tokenToId(p)!);
  const wte = model.getModule("transformer.wte") as tv.nn.Embedding;
  const rows = tv.indexSelect(wte.weight, 0, tv.intTensor(pieces));
  return Math.sqrt(tv.variance(rows).item());
}

/** One prompt per person, cycling through the relations, each with a held-out template. */
export function tracePrompts(world: FactsWorld): WorldFact[] {
  return world.subjects.map((_, i) => {
    const relation = world.relations[i % world.relations.length];
    return worldFact(
      world,
      relation,
      true,
      Math.floor(i / world.relations.length) % relation.heldOutTemplates.length,
      i,
    );
  });
}

/** ROME's causal trace of a fact (block outputs restored, p of the answer) with the subject's tokens corrupted. */
function traceFact(
  model: tv.PretrainedModel,
  tokenizer: tv.Tokenizer,
  fact: WorldFact,
  noise: { samples: number; noiseStd: number; seed: number },
): tv.TraceResult {
  const ids = tokenizer.encode(fact.prompt);
  return tv.causalTrace(model, {
    inputIds: tv.intTensor([ids]),
    tokens: ids.map((id) => tokenizer.decode([id])),
    corruptedPositions: range(...fact.subjectSpan),
    target: tokenizer.tokenToId(fact.attribute),
    ...noise,
  });
}

/** Two decimals, without a sign on what rounds to zero. */
function decimals(v: number): string {
  return (Math.abs(v) < 0.005 ? 0 : v).toFixed(2);
}

function formatTable(header: string[], rows: string[][]): string {
  return [
    `| ${header.join(" | ")} |`,
    `|${header.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
}

function averageTable(avg: AverageTrace): string {
  const rows = Array.from({ length: avg.layers }, (_, layer) => [
    String(layer),
    ...POSITION_CLASSES.map((_, c) => {
      const v = avg.effect[layer * POSITION_CLASSES.length + c];
      return Number.isNaN(v) ? "–" : decimals(v);
    }),
  ]);
  return formatTable(["layer", ...POSITION_CLASSES], rows);
}

function traceTable({ grid }: tv.TraceResult, words: string[]): string {
  const rows = Array.from({ length: grid.rows }, (_, layer) => [
    String(layer),
    ...words.map((_, p) => decimals(grid.values[layer * grid.cols + p])),
  ]);
  return formatTable(["layer", ...words.map((w, p) => `${p} ${w}`)], rows);
}

async function main(): Promise<void> {
  const options = DEFAULT_TRAINING;
  const started = performance.now();
  const trained = trainModel(SEED, options);
  const trainSeconds = (performance.now() - started) / 1000;
  const { world, tokenizerFiles: files, config } = trained;
  const folder = DEFAULT_MODEL_FOLDER;
  await mkdir(folder, { recursive: true });
  const eos = trained.tokenizer.eosTokenId!;
  await tv.saveCheckpoint(folder, new Map(trained.model.namedParameters()), {
    config,
    generationConfig: { bos_token_id: eos, eos_token_id: eos, pad_token_id: eos },
    dtype: "F16",
  });
  await writeFile(join(folder, "tokenizer.json"), `${JSON.stringify(files.tokenizer, null, 2)}\n`);
  await writeFile(join(folder, "tokenizer_config.json"), `${JSON.stringify(files.config, null, 2)}\n`);

  // Everything below measures the files as written (F16 weights), loaded the way users load them.
  const { model, tokenizer } = await tv.loadPretrained(folder);
  const tok = tokenizer!;
  const facts = worldFacts(world);
  const train = encodeAll(
    tok,
    facts.filter((f) => !f.heldOut),
  );
  const test = encodeAll(
    tok,
    facts.filter((f) => f.heldOut),
  );
  const trainAccuracy = accuracy(model, train);
  const testAccuracy = accuracy(model, test);
  console.log(
    `trained in ${trainSeconds.toFixed(0)} s; final loss ${trained.finalLoss.toFixed(4)}; ` +
      `accuracy train ${trainAccuracy.toFixed(4)} (${train.ids.length}), ` +
      `held-out templates ${testAccuracy.toFixed(4)} (${test.ids.length})`,
  );

  const noiseStd = 3 * subjectEmbeddingStd(model, tok, world);
  const examples = examplePrompts(world).map((fact) => {
    const trace = traceFact(model, tok, fact, { samples: 50, noiseStd, seed: SEED });
    console.log(
      `\ncausal trace of "${fact.prompt}" → ${fact.attribute} ` +
        `(clean ${trace.clean.toFixed(3)}, corrupted ${trace.corrupted.toFixed(3)}):\n` +
        `${traceTable(trace, fact.prompt.split(" "))}`,
    );
    return { fact, trace };
  });
  // Each prompt gets its own noise draws.
  const avg = averageTraces(
    tracePrompts(world).map((fact, i) => traceFact(model, tok, fact, { samples: 10, noiseStd, seed: SEED + 1 + i })),
  );
  console.log(
    `\naverage indirect effect over ${avg.prompts} prompts ` +
      `(clean ${avg.clean.toFixed(3)}, corrupted ${avg.corrupted.toFixed(3)}; ` +
      `the subject's last token is the strongest subject position in ${avg.lastSubjectStrongest}):\n` +
      `${averageTable(avg)}`,
  );

  await writeFile(join(folder, "facts.json"), `${JSON.stringify(factsJson(world), null, 2)}\n`);
  await writeFile(
    join(folder, "TASK.md"),
    taskMarkdown({
      world,
      options,
      config,
      trainAccuracy,
      testAccuracy,
      train: train.ids.length,
      test: test.ids.length,
      finalLoss: trained.finalLoss,
      noiseStd,
      examples,
      avg,
    }),
  );
  console.log(`\nwrote ${folder}`);
}

function range(start: number, end: number): number[] {
  return Array.from({ length: end - start }, (_, i) => start + i);
}

interface Report {
  world: FactsWorld;
  options: TrainOptions;
  config: tv.JsonObject;
  trainAccuracy: number;
  testAccuracy: number;
  train: number;
  test: number;
  finalLoss: number;
  noiseStd: number;
  examples: { fact: WorldFact; trace: tv.TraceResult }[];
  avg: AverageTrace;
}

function taskMarkdown(r: Report): string {
  const { shape } = r.options;
  const percent = (x: number) => `${(100 * x).toFixed(2)} %`;
  const quote = (texts: readonly string[]) => texts.map((t) => `"${t}"`).join(", ");
  const city = r.world.relations.find((x) => x.name === "city")!;
  const person = r.world.subjects[0];
  const example = fillTemplate(city.trainTemplates[0], person.name, r.world.subjects[1].name).prompt;
  const multiFact =
    `Fact : ${person.name} ${RELATIONS[3].phrases[0]} ${person.attributes[RELATIONS[3].name]} ` +
    `${CONNECTIVE} ${RELATIONS[1].phrases[0]} ${person.attributes[RELATIONS[1].name]}`;
  const relationSizes = r.world.relations.map((x) => `${x.name} (${x.values.length} values)`).join(", ");
  const peoplePerValue = r.world.subjects.length / r.world.relations[0].values.length;
  const prefixes = quote(PREFIXES);
  const templateCount = city.trainTemplates.length + city.heldOutTemplates.length;
  const heldOut = city.heldOutTemplates.length;
  const cleanCorrupted = `clean p ${r.avg.clean.toFixed(3)}, corrupted p ${r.avg.corrupted.toFixed(3)}`;
  const exampleTraces = r.examples
    .map(({ fact, trace }) => {
      const probabilities = `clean p ${trace.clean.toFixed(3)}, corrupted p ${trace.corrupted.toFixed(3)}`;
      return `"${fact.prompt}" → ${fact.attribute} (${probabilities}), p(${fact.attribute})
with block_output restored at (layer, position), 50 noise draws:

${traceTable(trace, fact.prompt.split(" "))}`;
    })
    .join("\n\n");
  const architecture = `${shape.layers} layers, width ${shape.dim}, ${shape.heads} heads, MLP ${4 * shape.dim}`;
  const batches = `${r.options.steps} steps of ${r.options.batchSize} texts`;
  const maxFacts = r.options.maxFactsPerText;
  const profile = `${PROFILE} ${person.name} ${r.world.relations.map((x) => person.attributes[x.name]).join(" ")}`;
  return `# The default model: synthetic factual recall

Written by \`npm run train:default-model\` (scripts/train-default-model.ts, seed ${SEED}); do not edit by hand.

## Task

${r.world.subjects.length} people, named by 2 or 3 name-piece tokens from ${quote(NAME_PIECES)}, each with a
${relationSizes}. Each value belongs to ${peoplePerValue} people.
No name is settled before its last token: every 2-piece name's reversal is another person ("Ka Lo",
"Lo Ka"), 3-piece names come in pairs that differ only in the last piece, and people whose names
start with the same piece differ in every attribute. A prompt is \`<prefix> <name> <relation phrase>\`,
the answer is the next token: "${example}" → ${person.attributes.city}.

- prefixes: ${prefixes} ({other} is another person, so the subject is the name nearest the relation, not any name);
- phrases: ${RELATIONS.map((x) => `${x.name}: ${quote(x.phrases)}`).join("; ")}.

Each relation has ${templateCount} prefix × phrase templates; ${heldOut} of them (one phrase per prefix, a different
one per relation) never occur in training: they measure recall under paraphrase. facts.json lists
the people, their attributes, both template sets and the demo prompt below.

The tokenizer is word level (tokenizer.json: WordLevel over ${r.config.vocab_size} words, split on whitespace and
punctuation; \`<|endoftext|>\` is bos, eos and pad, \`<unk>\` stands for unknown words); decoding joins
words with spaces.

## Accuracy (the F16 weights as stored; the most likely next token is the answer)

| prompts | count | accuracy |
|---|---|---|
| training templates | ${r.train} | ${percent(r.trainAccuracy)} |
| held-out templates | ${r.test} | ${percent(r.testAccuracy)} |

## Mechanism

ROME's causal tracing (Meng et al. 2022): Gaussian noise on the subject's input embeddings (std
${r.noiseStd.toFixed(3)}, 3× the standard deviation of the name pieces' embeddings), then one block output at one
position restored from the clean run. The fact is carried by the subject's last token in the
middle layers and by the last token in the late layers, as ROME found in GPT-2.

Average indirect effect (restored − corrupted p of the answer) over ${r.avg.prompts} prompts, one per person, on
held-out templates, 10 noise draws each (${cleanCorrupted}). In ${r.avg.lastSubjectStrongest} of the ${r.avg.prompts}
prompts the subject's last token is the subject position whose restoration helps most.

${averageTable(r.avg)}

${exampleTraces}

The first is facts.json's demo. In a 3-piece name the middle token already holds the first two
pieces, which leave two people (their names differ only in the last piece), so it carries part of
the fact one layer before the last piece does.

## Training recipe

GPT-2 (\`GPT2LMHeadModel\`): ${architecture}, ${N_POSITIONS} positions, tied
embeddings, GPT-2's initialisation. Trained with tsvene's own engine: AdamW (lr ${r.options.lr}, weight decay
${r.options.weightDecay}, ${r.options.warmup} warm-up steps, then linear decay to 0), ${batches} sampled from the world,
next-token cross-entropy at every position (final loss ${r.finalLoss.toFixed(3)}; what remains is the choice of prefix,
relation and phrase). A text is a prefix, a name and 1 to ${maxFacts} of the person's facts joined by "and"
("${multiFact}"), or, in ${100 * r.options.profileShare} % of texts, a profile: "${PROFILE}", the
name and all four values in random order ("${profile}"). Weights are stored as F16.

Why this recipe: the first model (loss on the values only, single-fact prompts, first, middle
and last name pieces from separate sets) recalled every fact but did not put the name together
at its last token: the last token read the pieces itself, and restoring the subject's last token
alone brought back little. Each change below was kept; the numbers are the peak average indirect
effect at each subject position (48 prompts, seed 6, 3σ noise, 1500 steps), measured while
developing the recipe.

| change | first subject token | middle subject tokens | last subject token (layer) |
|---|---|---|---|
| one pool of pieces (order matters), 1–3 facts per text, loss on the values | 0.12 | 0.20 | 0.28 (0) |
| + every token trained, as a language model | 0.20 | 0.30 | 0.26 (1) |
| + no name settled before its last piece | 0.17 | 0.19 | 0.28 (1) |
| + profiles | 0.22 | 0.28 | 0.31 (2) |
| + another person in some prefixes | 0.19 | 0.21 | 0.31 (2) |
| + people whose names start alike differ in every attribute | 0.17 | 0.20 | 0.41 (2) |
| + weight decay 0.1 (AdamW): this recipe | 0.14 | 0.11 | 0.59 (3) |

This recipe without profiles peaks at 0.24 (layer 1), with 1000 steps at 0.41 (layer 2).
With 12 name pieces in 64 dimensions, 3σ noise leaves a piece recognisable (nearest embedding)
about two times in three, so any piece that narrows down the answer shows up in the trace; the
world is built so that only the whole name does.
`;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  await main();
}
