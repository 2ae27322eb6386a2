/**
 * The facts world: the format of a model's facts.json, the prompts of a factual-recall task. A
 * fact is a prompt with its subject inside and the attribute the model should name next.
 * scripts/train-default-model.ts builds the default model's world and writes it (factsJson); the
 * command line reads it (parseFacts) for `trace` and `das`. Two forms are read:
 *
 * - a world: `relations` (name, values, trainTemplates and heldOutTemplates), `subjects` (name,
 *   tokens, and a value for each relation), `demo` (a prompt, its subject, the subject's token
 *   positions and the answer) and `seed`; every subject × template is a fact;
 * - a plain list, for any model: `[{ "prompt": "…", "subject": "…", "attribute": "…" }, …]`.
 *
 * A template is words separated by single spaces, with "{subject}" once as a word and "{other}"
 * (another person, so that the subject is the name nearest the relation, not any name) as words.
 * Subject spans are counted in words: with the default model's word-level tokenizer, in tokens.
 *
 * It also averages causal traces of the world's prompts over ROME's position classes.
 */
import { describe } from "../options/index.js";

export const SUBJECT_SLOT = "{subject}";
export const OTHER_SLOT = "{other}";

export interface WorldRelation {
  name: string;
  values: string[];
  trainTemplates: string[];
  /** Templates kept out of the model's training: they measure recall under paraphrase. */
  heldOutTemplates: string[];
}

export interface WorldSubject {
  name: string;
  /** The name's tokens as the model's tokenizer splits it. */
  tokens: string[];
  /** Relation name → value. */
  attributes: Record<string, string>;
}

export interface WorldDemo {
  prompt: string;
  subject: string;
  /** Token positions of the subject in the prompt. */
  subjectTokens: number[];
  answer: string;
}

export interface FactsWorld {
  /** The seed the world was built from. */
  seed?: number;
  relations: WorldRelation[];
  subjects: WorldSubject[];
  /** The prompt to show when the user gives none. */
  demo?: WorldDemo;
}

export interface Fact {
  prompt: string;
  subject: string;
  attribute: string;
  /** The relation asked; "" in a plain list. */
  relation: string;
  /** Whether the prompt's template was held out of the model's training (always false in a plain list). */
  heldOut: boolean;
}

/** A fact of a world, with where its subject is: word offsets [start, end). */
export interface WorldFact extends Fact {
  subjectSpan: [number, number];
}

export interface Facts {
  facts: Fact[];
  /** The prompt to show when the user gives none: the world's demo, or the first fact. */
  demo: { prompt: string; subject: string };
  /** The world, when the file is one (null for a plain list). */
  world: FactsWorld | null;
}

/** A facts file's content (parsed JSON), checked; errors name `source` and the field. */
export function parseFacts(json: unknown, source: string): Facts {
  const fail: Fail = (field, problem) => {
    throw new Error(`${source}: ${field} ${problem}`);
  };
  if (Array.isArray(json)) {
    const facts = json.map((entry, i) => listFact(entry, `entry ${i}`, fail));
    if (facts.length === 0) fail("the list of facts", "is empty");
    return { facts, demo: facts[0], world: null };
  }
  if (json === null || typeof json !== "object") {
    fail(
      "the content",
      must(
        'a list of facts [{"prompt", "subject", "attribute"}, …] or a world {"relations", "subjects", "demo"}',
        json,
      ),
    );
  }
  const world = parseWorld(json, fail);
  const facts = worldFacts(world);
  return { facts, demo: world.demo ?? facts[0], world };
}

type Fail = (field: string, problem: string) => never;

function must(expected: string, got: unknown): string {
  return `must be ${expected}, got ${describe(got)}`;
}

function isText(value: unknown): value is string {
  return typeof value === "string" && value.trim() !== "";
}

function text(value: unknown, field: string, fail: Fail): string {
  return isText(value) ? value : fail(field, must("non-empty text", value));
}

/** An object with only the given fields. */
function record(value: unknown, field: string, keys: readonly string[], fail: Fail): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return fail(field, must("an object", value));
  const unknown = Object.keys(value).find((k) => !keys.includes(k));
  if (unknown !== undefined)
    fail(field, `has a field "${unknown}" it does not take (its fields are ${keys.join(", ")})`);
  return value as Record<string, unknown>;
}

function list(value: unknown, field: string, fail: Fail): unknown[] {
  return Array.isArray(value) && value.length > 0 ? value : fail(field, must("a non-empty list", value));
}

function listFact(entry: unknown, field: string, fail: Fail): Fact {
  const e = record(entry, field, ["prompt", "subject", "attribute"], fail);
  const prompt = text(e.prompt, `${field}: prompt`, fail);
  const subject = text(e.subject, `${field}: subject`, fail).trim();
  if (!prompt.includes(subject))
    fail(`${field}: subject`, `${JSON.stringify(subject)} does not occur in the prompt ${JSON.stringify(prompt)}`);
  return { prompt, subject, attribute: text(e.attribute, `${field}: attribute`, fail), relation: "", heldOut: false };
}

function parseWorld(json: object, fail: Fail): FactsWorld {
  const w = record(json, "the world", ["seed", "relations", "subjects", "demo"], fail);
  if (w.seed !== undefined && !Number.isInteger(w.seed)) fail("seed", must("an integer", w.seed));
  const relations = list(w.relations, "relations", fail).map((r, i) => parseRelation(r, `relations[${i}]`, fail));
  const subjects = list(w.subjects, "subjects", fail).map((s, j) => parseSubject(s, `subjects[${j}]`, relations, fail));
  unique(
    relations.map((r) => r.name),
    "relations",
    fail,
  );
  unique(
    subjects.map((s) => s.name),
    "subjects",
    fail,
  );
  const usesOther = relations.some((r) =>
    [...r.trainTemplates, ...r.heldOutTemplates].some((t) => t.split(" ").includes(OTHER_SLOT)),
  );
  if (usesOther && subjects.length < 2)
    fail("subjects", `must name at least two people (a template names ${OTHER_SLOT})`);
  const world: FactsWorld = { relations, subjects };
  if (w.seed !== undefined) world.seed = w.seed as number;
  if (w.demo !== undefined) world.demo = parseDemo(w.demo, fail);
  return world;
}

function unique(names: string[], field: string, fail: Fail): void {
  const i = names.findIndex((n, k) => names.indexOf(n) !== k);
  if (i >= 0)
    fail(`${field}[${i}].name`, `${JSON.stringify(names[i])} is taken by an earlier entry (names must differ)`);
}

function parseRelation(value: unknown, field: string, fail: Fail): WorldRelation {
  const r = record(value, field, ["name", "values", "trainTemplates", "heldOutTemplates"], fail);
  const templates = (key: string) => {
    if (!Array.isArray(r[key])) return fail(`${field}.${key}`, must("a list of templates", r[key]));
    return (r[key] as unknown[]).map((t, k) => template(t, `${field}.${key}[${k}]`, fail));
  };
  const relation = {
    name: text(r.name, `${field}.name`, fail),
    values: list(r.values, `${field}.values`, fail).map((v, k) => text(v, `${field}.values[${k}]`, fail)),
    trainTemplates: templates("trainTemplates"),
    heldOutTemplates: templates("heldOutTemplates"),
  };
  if (relation.trainTemplates.length + relation.heldOutTemplates.length === 0)
    fail(field, "has no templates (trainTemplates and heldOutTemplates are both empty)");
  return relation;
}

function template(value: unknown, field: string, fail: Fail): string {
  const words = isText(value) ? value.split(" ") : [];
  const wellFormed = words.every((w) => w !== "" && (w === SUBJECT_SLOT || w === OTHER_SLOT || !w.includes("{")));
  if (!wellFormed || words.filter((w) => w === SUBJECT_SLOT).length !== 1) {
    fail(
      field,
      must(
        `words separated by single spaces, with "${SUBJECT_SLOT}" once as a word ` +
          `(and "${OTHER_SLOT}" as words for another person)`,
        value,
      ),
    );
  }
  return value as string;
}

function parseSubject(value: unknown, field: string, relations: readonly WorldRelation[], fail: Fail): WorldSubject {
  const s = record(value, field, ["name", "tokens", ...relations.map((r) => r.name)], fail);
  const attributes = Object.fromEntries(
    relations.map((r) => {
      const v = s[r.name];
      return [
        r.name,
        isText(v) && r.values.includes(v)
          ? v
          : fail(`${field}.${r.name}`, must(`one of the ${r.name} values (${r.values.join(", ")})`, v)),
      ];
    }),
  );
  return {
    name: text(s.name, `${field}.name`, fail),
    tokens: list(s.tokens, `${field}.tokens`, fail).map((t, k) => text(t, `${field}.tokens[${k}]`, fail)),
    attributes,
  };
}

function parseDemo(value: unknown, fail: Fail): WorldDemo {
  const d = record(value, "demo", ["prompt", "subject", "subjectTokens", "answer"], fail);
  const prompt = text(d.prompt, "demo.prompt", fail);
  const subject = text(d.subject, "demo.subject", fail);
  if (!prompt.includes(subject))
    fail("demo.subject", `${JSON.stringify(subject)} does not occur in the prompt ${JSON.stringify(prompt)}`);
  const positions = list(d.subjectTokens, "demo.subjectTokens", fail);
  if (!positions.every((p) => Number.isInteger(p) && (p as number) >= 0))
    fail("demo.subjectTokens", must("a list of token positions", positions));
  return { prompt, subject, subjectTokens: positions as number[], answer: text(d.answer, "demo.answer", fail) };
}

/** The world as facts.json holds it: each subject's values beside its name, as fields named by relation. */
export function factsJson(world: FactsWorld): Record<string, unknown> {
  return {
    ...(world.seed === undefined ? {} : { seed: world.seed }),
    relations: world.relations,
    subjects: world.subjects.map((s) => ({ name: s.name, tokens: s.tokens, ...s.attributes })),
    ...(world.demo === undefined ? {} : { demo: world.demo }),
  };
}

/** A template with its subject and, where it names another person, `other`. */
export function fillTemplate(
  template: string,
  subject: string,
  other: string,
): { prompt: string; subjectSpan: [number, number] } {
  const words: string[] = [];
  let start = -1;
  for (const word of template.split(" ")) {
    if (word === SUBJECT_SLOT) start = words.length;
    words.push(...(word === SUBJECT_SLOT ? subject : word === OTHER_SLOT ? other : word).split(" "));
  }
  return { prompt: words.join(" "), subjectSpan: [start, start + subject.split(" ").length] };
}

/**
 * The other person a prompt names: a different one for each subject and template
 * (`template` counts within its set).
 */
export function otherSubject(world: FactsWorld, subject: number, template: number): WorldSubject {
  const n = world.subjects.length;
  return world.subjects[(subject + 1 + (template % (n - 1))) % n];
}

/** One template of a relation filled for one subject. */
export function worldFact(
  world: FactsWorld,
  relation: WorldRelation,
  heldOut: boolean,
  template: number,
  subject: number,
): WorldFact {
  const s = world.subjects[subject];
  const filled = fillTemplate(
    (heldOut ? relation.heldOutTemplates : relation.trainTemplates)[template],
    s.name,
    otherSubject(world, subject, template).name,
  );
  return {
    prompt: filled.prompt,
    subject: s.name,
    attribute: s.attributes[relation.name],
    relation: relation.name,
    heldOut,
    subjectSpan: filled.subjectSpan,
  };
}

/** Every fact of the world: per relation, trained then held-out templates, each filled for every subject. */
export function worldFacts(world: FactsWorld): WorldFact[] {
  return world.relations.flatMap((r) =>
    [false, true].flatMap((heldOut) =>
      (heldOut ? r.heldOutTemplates : r.trainTemplates).flatMap((_, k) =>
        world.subjects.map((_, i) => worldFact(world, r, heldOut, k, i)),
      ),
    ),
  );
}

/** Subject names of the facts that occur in the prompt, longest first. */
export function subjectsIn(facts: readonly Fact[], prompt: string): string[] {
  return [...new Set(facts.map((f) => f.subject))]
    .filter((s) => prompt.includes(s))
    .sort((a, b) => b.length - a.length);
}

/** ROME's position classes, for averaging traces over prompts of different shapes. */
export const POSITION_CLASSES = [
  "prefix",
  "first subject token",
  "middle subject tokens",
  "last subject token",
  "first subsequent token",
  "further tokens",
  "last token",
] as const;

export function positionClass(position: number, length: number, [start, end]: readonly [number, number]): number {
  if (position === length - 1) return 6;
  if (position < start) return 0;
  if (position === end - 1) return 3;
  if (position === start) return 1;
  if (position < end) return 2;
  return position === end ? 4 : 5;
}

/** A causal trace of one prompt with its subject corrupted, as causalTrace returns it (probabilities). */
export interface SubjectTrace {
  clean: number;
  corrupted: number;
  corruptedPositions: readonly number[];
  grid: { values: Float32Array; rows: number; cols: number };
}

export interface AverageTrace {
  /**
   * Mean indirect effect (restored − corrupted) per [layer × position class];
   * NaN where no prompt has that class.
   */
  effect: Float32Array;
  layers: number;
  clean: number;
  corrupted: number;
  prompts: number;
  /** Prompts where restoring the subject's last token (at its best layer) beats restoring any other subject token. */
  lastSubjectStrongest: number;
}

/**
 * Traces of prompts (each over all layers and positions, the subject's tokens corrupted)
 * averaged per layer and position class.
 */
export function averageTraces(traces: readonly SubjectTrace[]): AverageTrace {
  if (traces.length === 0) throw new RangeError("averageTraces: no traces (expected at least one)");
  const layers = traces[0].grid.rows;
  const classes = POSITION_CLASSES.length;
  const sums = new Float64Array(layers * classes);
  const counts = new Float64Array(layers * classes);
  let lastSubjectStrongest = 0;
  traces.forEach((trace, i) => {
    const { values, rows, cols } = trace.grid;
    const subject = trace.corruptedPositions;
    const span: [number, number] = [subject[0], subject[0] + subject.length];
    if (rows !== layers || subject.some((p, k) => p !== span[0] + k)) {
      throw new RangeError(
        `averageTraces: trace ${i} must have ${layers} layers and its subject's positions in order, ` +
          `got ${rows} layers and positions ${describe(subject)}`,
      );
    }
    const restored = (layer: number, p: number) => values[layer * cols + p];
    const best = subject.map((p) => Math.max(...Array.from({ length: layers }, (_, layer) => restored(layer, p))));
    if (best.indexOf(Math.max(...best)) === best.length - 1) lastSubjectStrongest += 1;
    // A class is averaged per prompt first, so that prompts with several tokens in a class weigh the same.
    for (let layer = 0; layer < layers; layer++) {
      const perClass = new Map<number, number[]>();
      for (let p = 0; p < cols; p++) {
        const c = positionClass(p, cols, span);
        perClass.set(c, [...(perClass.get(c) ?? []), restored(layer, p) - trace.corrupted]);
      }
      for (const [c, effects] of perClass) {
        sums[layer * classes + c] += effects.reduce((a, b) => a + b, 0) / effects.length;
        counts[layer * classes + c] += 1;
      }
    }
  });
  const mean = (pick: (t: SubjectTrace) => number) => traces.reduce((a, t) => a + pick(t), 0) / traces.length;
  return {
    effect: Float32Array.from(sums, (s, i) => (counts[i] === 0 ? NaN : s / counts[i])),
    layers,
    clean: mean((t) => t.clean),
    corrupted: mean((t) => t.corrupted),
    prompts: traces.length,
    lastSubjectStrongest,
  };
}
