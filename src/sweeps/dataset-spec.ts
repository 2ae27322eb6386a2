/**
 * What a dataset sweep runs: the spec (which sweep, its options, the model, the shard size) and
 * the dataset (JSONL, one example per line), both read strictly before any work starts. Every line
 * is checked up front (its fields, and its text through the model's tokenizer as the command line
 * checks a prompt), so a bad line 9,000 is reported before the first shard, with its line number.
 */
import {
  checkVocabulary,
  promptIds,
  subjectPositions,
  targetToken,
  type TargetToken,
  type TextReader,
} from "../causal/prompt-tokens.js";
import { describe, OptionError, readOptions } from "../options/index.js";

export const SWEEP_KINDS = ["trace", "patch", "collect"] as const;
export type SweepKind = (typeof SWEEP_KINDS)[number];

/** Each kind's options: the library's names (causalTrace, activationPatching, collectActivations) a spec may set. */
const KIND_OPTIONS = {
  trace: ["component", "window", "noiseStd", "seed", "samples", "metric"],
  patch: ["component", "window", "metric"],
  collect: ["component", "layers"],
} as const satisfies Record<SweepKind, readonly string[]>;

/** The fields of a data line of each kind, and which of them a line must have. */
const LINE_FIELDS = {
  trace: { names: ["prompt", "subject", "target"], required: ["prompt", "subject"] },
  patch: { names: ["base", "source", "target"], required: ["base", "source"] },
  collect: { names: ["prompt"], required: ["prompt"] },
} as const satisfies Record<SweepKind, { names: readonly string[]; required: readonly string[] }>;

const DEFAULT_SHARD_SIZE = 16;

export interface SweepSpec {
  kind: SweepKind;
  /** Hub id or model folder; undefined for the embedded default model. */
  model?: string;
  /** Examples per shard: the unit of work that is written (and resumed) as a whole. */
  shardSize: number;
  /** The sweep's own options, camelCase, as the library call takes them. */
  options: Record<string, unknown>;
}

/** Reads a spec object strictly: unknown keys are errors naming the keys its kind takes. */
export function readSweepSpec(input: unknown, where = "sweep spec"): SweepSpec {
  const kind = (input as { kind?: unknown } | null)?.kind;
  if (!SWEEP_KINDS.includes(kind as SweepKind)) {
    throw new OptionError(`${where}: kind must be one of ${SWEEP_KINDS.join(", ")}, got ${describe(kind)}`);
  }
  const own: readonly string[] = KIND_OPTIONS[kind as SweepKind];
  const names = ["kind", "model", "shardSize", ...own] as const;
  const {
    model,
    shardSize = DEFAULT_SHARD_SIZE,
    ...rest
  } = readOptions<Record<string, unknown>>(input, names as readonly string[], `${where} (kind ${kind})`);
  if (model !== undefined && (typeof model !== "string" || model.trim() === "")) {
    throw new OptionError(`${where}: model must be a Hub id or a model folder, got ${describe(model)}`);
  }
  if (!Number.isSafeInteger(shardSize) || (shardSize as number) < 1) {
    throw new OptionError(`${where}: shardSize must be a positive integer, got ${describe(shardSize)}`);
  }
  // Sorted, so that two specs that say the same thing in another order are the same sweep when resumed.
  const options = Object.fromEntries(
    Object.entries(rest)
      .filter(([key]) => key !== "kind")
      .sort(([a], [b]) => a.localeCompare(b)),
  );
  return { kind: kind as SweepKind, model: model as string | undefined, shardSize: shardSize as number, options };
}

/** A traced prompt: the subject's tokens are corrupted. */
export interface TraceExample {
  kind: "trace";
  /** The line of the data file it came from (1-based). */
  line: number;
  prompt: string;
  subject: string;
  ids: number[];
  corruptedPositions: number[];
  target: TargetToken | null;
}

/** A base/source pair of the same number of tokens. */
export interface PatchExample {
  kind: "patch";
  line: number;
  base: string;
  source: string;
  baseIds: number[];
  sourceIds: number[];
  target: TargetToken | null;
}

export interface CollectExample {
  kind: "collect";
  line: number;
  prompt: string;
  ids: number[];
}

export type DatasetExample = TraceExample | PatchExample | CollectExample;

/** How many bad lines one error lists; the rest are counted. */
const LISTED_ERRORS = 10;

/**
 * The examples of a JSONL dataset for a sweep of `kind`, read through the model's tokenizer.
 * Blank lines are skipped (line numbers still count them). Every bad line is found before the
 * error is thrown, which lists them (`source` names the file).
 */
export function readDataset(reader: TextReader, kind: SweepKind, text: string, source: string): DatasetExample[] {
  const examples: DatasetExample[] = [];
  const problems: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    if (raw.trim() === "") return;
    try {
      examples.push(readLine(reader, kind, raw, i + 1));
    } catch (e) {
      problems.push(`line ${i + 1}: ${(e as Error).message}`);
    }
  });
  if (problems.length > 0) {
    const more = problems.length > LISTED_ERRORS ? `\n  … and ${problems.length - LISTED_ERRORS} more bad lines` : "";
    const listed = problems.slice(0, LISTED_ERRORS).join("\n  ");
    throw new RangeError(
      `${source}: ${problems.length} bad line${problems.length === 1 ? "" : "s"} ` +
        `(expected one JSON object per line, ${lineForm(kind)}):\n  ${listed}${more}`,
    );
  }
  if (examples.length === 0) throw new RangeError(`${source}: no examples (expected ${lineForm(kind)} per line)`);
  return examples;
}

function lineForm(kind: SweepKind): string {
  const { names, required } = LINE_FIELDS[kind];
  return `{${names.map((n) => ((required as readonly string[]).includes(n) ? n : `${n}?`)).join(", ")}}`;
}

function readLine(reader: TextReader, kind: SweepKind, raw: string, line: number): DatasetExample {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (e) {
    throw new RangeError(`not valid JSON (${(e as Error).message})`);
  }
  const { names, required } = LINE_FIELDS[kind];
  const fields = readOptions<Record<string, unknown>>(json, names, "the line");
  for (const name of names) {
    const value = fields[name];
    if (value === undefined && !(required as readonly string[]).includes(name)) continue;
    if (typeof value !== "string") throw new RangeError(`"${name}" must be text, got ${describe(value)}`);
  }
  const text = fields as Record<string, string>;
  if (kind === "collect") return { kind, line, prompt: text.prompt, ids: promptIds(reader, text.prompt, "prompt") };
  if (kind === "trace") {
    const ids = promptIds(reader, text.prompt, "prompt");
    checkVocabulary(reader, text.subject, "subject");
    const corruptedPositions = subjectPositions(reader.tokenizer, { text: text.prompt, ids }, text.subject, "subject");
    const target = readTarget(reader, text.prompt, text.target);
    return { kind, line, prompt: text.prompt, subject: text.subject, ids, corruptedPositions, target };
  }
  const baseIds = promptIds(reader, text.base, "base");
  const sourceIds = promptIds(reader, text.source, "source");
  if (baseIds.length !== sourceIds.length) {
    throw new RangeError(
      `"source" must have as many tokens as "base" (patching pairs positions one to one): ` +
        `the base has ${baseIds.length}, the source ${sourceIds.length}`,
    );
  }
  const target = readTarget(reader, text.base, text.target);
  return { kind, line, base: text.base, source: text.source, baseIds, sourceIds, target };
}

function readTarget(reader: TextReader, prompt: string, text: string | undefined): TargetToken | null {
  if (text === undefined) return null;
  if (text.trim() !== "") checkVocabulary(reader, text, "target");
  return targetToken(reader.tokenizer, prompt, text, "target");
}
