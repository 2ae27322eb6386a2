/**
 * A model's facts file (facts.json in its folder): the prompts of a factual-recall task, each
 * with the subject inside the prompt and the attribute the model should name next. `trace` takes
 * its example prompt from it when none is given, and finds the subject of a prompt; `das` trains
 * and tests on it. Two forms are read:
 *
 * - the default model's world, as scripts/train-default-model.ts writes it: `relations` (name,
 *   values, trainTemplates and heldOutTemplates with "{subject}"), `subjects` (name and one
 *   value per relation) and a `demo` prompt; every subject × template is a fact;
 * - a plain list, for any model: `[{ "prompt": "…", "subject": "…", "attribute": "…" }, …]`.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describeFsError } from "./files.js";

export const FACTS_FILE = "facts.json";
const SUBJECT_SLOT = "{subject}";
/** Some templates name a second person; any other subject fills it (the trainer uses the next one). */
const OTHER_SLOT = "{other}";

export interface Fact {
  prompt: string;
  subject: string;
  attribute: string;
  /** The relation asked (world form); "" in a plain list. */
  relation: string;
  /** Whether the prompt's template was held out of the model's training (world form). */
  heldOut: boolean;
}

export interface Facts {
  facts: Fact[];
  /** The prompt to show when the user gives none. */
  demo: { prompt: string; subject: string };
}

/** The facts file of a model folder, or null when it has none. */
export function factsFileOf(folder: string): string | null {
  const path = join(folder, FACTS_FILE);
  return existsSync(path) ? path : null;
}

export async function readFacts(path: string): Promise<Facts> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, "utf8"));
  } catch (e) {
    const why = e instanceof SyntaxError ? `not valid JSON (${e.message})` : describeFsError(e);
    throw new Error(`facts file ${path}: ${why}`);
  }
  const problem = (what: string): never => {
    throw new Error(`facts file ${path}: ${what} (expected a list of {"prompt", "subject", "attribute"}, or the default model's {"relations", "subjects", "demo"})`);
  };
  const facts = Array.isArray(parsed) ? listFacts(parsed, problem) : worldFacts(parsed as Record<string, unknown>, problem);
  if (facts.length === 0) problem("no facts");
  facts.forEach((f, i) => {
    if (!f.prompt.includes(f.subject)) problem(`fact ${i}: the subject ${JSON.stringify(f.subject)} does not occur in the prompt ${JSON.stringify(f.prompt)}`);
  });
  const demo = Array.isArray(parsed) ? facts[0] : demoOf((parsed as Record<string, unknown>).demo) ?? facts[0];
  return { facts, demo: { prompt: demo.prompt, subject: demo.subject } };
}

/** Subject names that occur in the prompt, longest first. */
export function subjectsIn(facts: readonly Fact[], prompt: string): string[] {
  return [...new Set(facts.map((f) => f.subject))].filter((s) => prompt.includes(s)).sort((a, b) => b.length - a.length);
}

function text(value: unknown): value is string {
  return typeof value === "string" && value.trim() !== "";
}

function listFacts(list: unknown[], problem: (what: string) => never): Fact[] {
  return list.map((entry, i) => {
    const e = (entry ?? {}) as Record<string, unknown>;
    for (const name of ["prompt", "subject", "attribute"]) if (!text(e[name])) problem(`entry ${i} needs "${name}" as non-empty text, got ${JSON.stringify(e[name])}`);
    return { prompt: e.prompt as string, subject: (e.subject as string).trim(), attribute: e.attribute as string, relation: "", heldOut: false };
  });
}

function worldFacts(world: Record<string, unknown> | null, problem: (what: string) => never): Fact[] {
  const relations = world?.relations;
  const subjects = world?.subjects;
  if (!Array.isArray(relations) || !Array.isArray(subjects)) return problem("no list of facts, and no \"relations\" and \"subjects\" lists");
  return relations.flatMap((r: Record<string, unknown>, i) => {
    const name = r?.name;
    if (!text(name)) return problem(`relations[${i}] needs a "name"`);
    const templates = (key: string) => {
      const list = r[key] ?? [];
      if (!Array.isArray(list) || !list.every((t) => text(t) && t.includes(SUBJECT_SLOT))) problem(`relations[${i}].${key} must be a list of templates with "${SUBJECT_SLOT}"`);
      return list as string[];
    };
    const sets = [{ heldOut: false, list: templates("trainTemplates") }, { heldOut: true, list: templates("heldOutTemplates") }];
    return subjects.flatMap((s: Record<string, unknown>, j) => {
      if (!text(s?.name) || !text(s[name])) return problem(`subjects[${j}] needs "name" and "${name}" as text`);
      return sets.flatMap(({ heldOut, list }) => list.map((t) => ({
        prompt: t.replace(SUBJECT_SLOT, s.name as string).replace(OTHER_SLOT, subjects[(j + 1) % subjects.length].name as string), subject: s.name as string, attribute: s[name] as string, relation: name, heldOut,
      })));
    });
  });
}

function demoOf(demo: unknown): { prompt: string; subject: string } | null {
  const d = demo as Record<string, unknown> | null | undefined;
  return d && text(d.prompt) && text(d.subject) ? { prompt: d.prompt, subject: d.subject } : null;
}
