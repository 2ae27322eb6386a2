/**
 * Parity with pyvene: runs every case of a folder in the shared fixture format (one or several
 * model folders, each with config.json, model.safetensors, cases.json, tensors.safetensors)
 * through tsvene and compares logits, collected activations, generated sequences and scores.
 *
 *   npm run parity -- <fixtures-dir>
 *
 * Prints one line per failing case and a last line "N passed, M failed"; exits 1 on any failure.
 * Cases with a `divergence` field are compared with their `*_intended` tensors (DESIGN.md).
 */
import { existsSync, readdirSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { readSafetensors } from "../io/safetensors.js";
import { loadPretrained } from "../models/auto.js";
import type { ModelInputs, ModelOutput, PretrainedModel } from "../models/model.js";
import { type IntTensor, Tensor, intTensor } from "../tensor/index.js";
import { IntervenableModel, type RunInput } from "../intervene/index.js";
import { parseInterventionType } from "../intervene/interventions/index.js";
import type { Intervention } from "../intervene/intervention.js";
import { LowRankRotateLayer, RotateLayer } from "../intervene/rotation.js";

const TOLERANCE = 1e-4;

type Tensors = Map<string, Tensor | IntTensor>;

interface FixtureInput {
  input_ids?: number[][];
  attention_mask?: number[][];
  position_ids?: number[][];
  inputs_embeds?: string;
}

interface FixtureCase {
  name: string;
  method: "forward" | "generate";
  mode: "parallel" | "serial";
  representations: Record<string, unknown>[];
  intervention_keys: string[];
  interventions: Record<string, unknown>[];
  base: string;
  sources: (string | null)[] | null;
  unit_locations: Record<string, unknown> | null;
  subspaces: unknown;
  source_representations?: string | (string | null)[] | null;
  intervenable_kwargs?: Record<string, unknown>;
  logits?: string;
  logits_intended?: string;
  original_logits?: string;
  collected?: string[];
  collected_intended?: string[];
  generate_kwargs?: Record<string, unknown>;
  intervene_on_prompt?: boolean;
  sequences?: string;
  scores?: string;
  sequences_intended?: string;
  scores_intended?: string;
  original_sequences?: string;
  original_scores?: string;
  divergence?: string;
}

interface FixtureFile {
  inputs: Record<string, FixtureInput>;
  cases: FixtureCase[];
}

export interface ParityReport {
  passed: number;
  failed: number;
  /** Cases compared with their *_intended tensors. */
  intended: number;
  failures: string[];
}

/** Model folders under `dir`: the folder itself if it holds cases.json, else its subfolders that do. */
export function fixtureModels(dir: string): string[] {
  if (existsSync(join(dir, "cases.json"))) return [dir];
  const found = readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(dir, e.name, "cases.json")))
    .map((e) => join(dir, e.name))
    .sort();
  if (found.length === 0) throw new Error(`parity: no fixture folders (with cases.json) in ${dir}`);
  return found;
}

export async function runParity(dir: string, log: (line: string) => void = console.log): Promise<ParityReport> {
  const report: ParityReport = { passed: 0, failed: 0, intended: 0, failures: [] };
  for (const folder of fixtureModels(dir)) {
    const name = folder.split("/").filter(Boolean).pop();
    const fixture = JSON.parse(await readFile(join(folder, "cases.json"), "utf8")) as FixtureFile;
    let loaded: { model: PretrainedModel; tensors: Tensors };
    try {
      loaded = await loadFixtureModel(folder);
    } catch (e) {
      // One model that cannot load must not hide the others: its cases count as failed, with the reason.
      const reason = `cannot load the model: ${(e as Error).message}`;
      log(`FAIL ${name}: ${reason} (${fixture.cases.length} cases counted as failed)`);
      for (const c of fixture.cases) report.failures.push(`FAIL ${name}/${c.name}: ${reason}`);
      report.failed += fixture.cases.length;
      continue;
    }
    const { model, tensors } = loaded;
    for (const c of fixture.cases) {
      if (c.divergence) report.intended++;
      let problem: string | null;
      try {
        problem = runCase(model, fixture, tensors, c);
      } catch (e) {
        problem = `error: ${(e as Error).message}`;
      }
      if (problem === null) {
        report.passed++;
      } else {
        report.failed++;
        const line = `FAIL ${name}/${c.name}: ${problem}`;
        report.failures.push(line);
        log(line);
      }
    }
  }
  log(`${report.intended} cases with a divergence were compared with their *_intended tensors`);
  log(`${report.passed} passed, ${report.failed} failed`);
  return report;
}

async function loadFixtureModel(folder: string): Promise<{ model: PretrainedModel; tensors: Tensors }> {
  const { model } = await loadPretrained(folder);
  const { tensors } = await readSafetensors(join(folder, "tensors.safetensors"));
  return { model, tensors };
}

function tensorAt(tensors: Tensors, key: string): Tensor | IntTensor {
  const t = tensors.get(key);
  if (!t) throw new Error(`tensors.safetensors has no "${key}"`);
  return t;
}

function valuesOf(tensors: Tensors, key: string): ArrayLike<number> {
  return tensorAt(tensors, key).data;
}

function floatAt(tensors: Tensors, key: string): Tensor {
  const t = tensorAt(tensors, key);
  if (!(t instanceof Tensor)) throw new Error(`"${key}" is an integer tensor; a float tensor was expected`);
  return t;
}

function inputOf(fixture: FixtureFile, tensors: Tensors, name: string): ModelInputs {
  const input = fixture.inputs[name];
  if (!input) throw new Error(`no input "${name}" in cases.json`);
  const out: ModelInputs = {};
  if (input.inputs_embeds !== undefined) out.inputsEmbeds = floatAt(tensors, input.inputs_embeds);
  if (input.input_ids) out.inputIds = intTensor(input.input_ids);
  if (input.attention_mask) out.attentionMask = intTensor(input.attention_mask);
  if (input.position_ids) out.positionIds = intTensor(input.position_ids);
  return out;
}

/** Parameters a case stores for its interventions (pyvene's state-dict names), set in place. */
const STORED_PARAMETERS = ["mask", "masks", "temperature", "intervention_boundaries", "intervention_population"];

/**
 * Sets what pyvene stored of an intervention. `valuesAt` reads a stored tensor's values whatever
 * its dtype: pyvene keeps some parameters as integers (Boundless's `intervention_population`, int64).
 */
function applyStoredParameters(
  intervention: Intervention,
  spec: Record<string, unknown>,
  tensor: (key: string) => Tensor,
  valuesAt: (key: string) => ArrayLike<number>,
): void {
  const dim = spec.interchange_dim;
  if (typeof dim === "number" || Array.isArray(dim)) intervention.setInterchangeDim(dim as number | number[]);
  if (typeof spec.rotate_weight === "string") {
    const layer = (intervention as { rotateLayer?: unknown }).rotateLayer;
    if (!(layer instanceof RotateLayer || layer instanceof LowRankRotateLayer))
      throw new Error(`${intervention.typeName} has no rotation to set`);
    layer.setWeight(tensor(spec.rotate_weight));
  }
  const params = new Map(intervention.namedParameters());
  for (const name of STORED_PARAMETERS) {
    const value = spec[name];
    if (value === undefined || value === null) continue;
    const p = params.get(name);
    if (!p) throw new Error(`${intervention.typeName} has no parameter "${name}"`);
    const data = typeof value === "string" ? valuesAt(value) : Float32Array.from([value].flat(2) as number[]);
    if (data.length !== p.size)
      throw new Error(`${intervention.typeName}.${name}: ${data.length} stored values for ${p.size}`);
    p.data.set(data);
  }
}

/** Runs one case; returns null when every compared output matches, else what differed. */
function runCase(model: PretrainedModel, fixture: FixtureFile, tensors: Tensors, c: FixtureCase): string | null {
  const representations = c.representations.map((r) => {
    const { intervention_type: type, source_representation: source, ...rest } = r;
    return {
      ...rest,
      interventionType: typeof type === "string" ? parseInterventionType(type) : null,
      sourceRepresentation: typeof source === "string" ? floatAt(tensors, source) : null,
    };
  });
  const im = new IntervenableModel<ModelOutput>(
    { representations, mode: c.mode, sortedKeys: c.intervention_keys },
    model,
  );
  c.interventions.forEach((spec, i) =>
    applyStoredParameters(
      im.interventions.get(c.intervention_keys[i])!,
      spec,
      (key) => floatAt(tensors, key),
      (key) => valuesOf(tensors, key),
    ),
  );

  const base = inputOf(fixture, tensors, c.base);
  const sources =
    c.sources === null ? null : c.sources.map((s) => (s === null ? null : (inputOf(fixture, tensors, s) as RunInput)));
  const reps = c.source_representations;
  const sourceRepresentations =
    reps === undefined || reps === null
      ? null
      : typeof reps === "string"
        ? floatAt(tensors, reps)
        : reps.map((k) => (k === null ? null : floatAt(tensors, k)));
  const mask = base.attentionMask ?? null;
  const problems: string[] = [];

  if (c.method === "forward") {
    const result = im.forward(base, sources, {
      unitLocations: c.unit_locations,
      subspaces: c.subspaces,
      sourceRepresentations,
      outputOriginalOutput: c.original_logits !== undefined,
    });
    const expected = c.logits_intended ?? c.logits;
    if (expected) compare(problems, "logits", result.intervened.logits, floatAt(tensors, expected), mask);
    if (c.original_logits)
      compare(problems, "original logits", result.original!.logits, floatAt(tensors, c.original_logits), mask);
    const collected = c.collected_intended ?? c.collected ?? [];
    if (collected.length !== result.collected.length)
      problems.push(`collected ${result.collected.length} tensors, expected ${collected.length}`);
    collected.forEach(
      (key, j) =>
        result.collected[j] && compare(problems, `collected[${j}]`, result.collected[j], floatAt(tensors, key), null),
    );
  } else {
    const kwargs = c.generate_kwargs ?? {};
    const eos = model.config.eos_token_id as number | number[] | undefined;
    const result = im.generate({ inputIds: base.inputIds!, attentionMask: base.attentionMask ?? null }, sources, {
      unitLocations: c.unit_locations,
      subspaces: c.subspaces,
      sourceRepresentations,
      interveneOnPrompt: c.intervene_on_prompt ?? false,
      outputOriginalOutput: c.original_sequences !== undefined,
      maxNewTokens: Number(kwargs.max_new_tokens ?? 20),
      doSample: false,
      eosTokenId: eos,
      padTokenId: typeof eos === "number" ? eos : eos?.[0],
    });
    const sequences = c.sequences_intended ?? c.sequences;
    const scores = c.scores_intended ?? c.scores;
    if (sequences) compareSequences(problems, "sequences", result.generated.sequences, tensorAt(tensors, sequences));
    if (scores) compareScores(problems, "scores", result.generated.scores, floatAt(tensors, scores));
    if (c.original_sequences)
      compareSequences(
        problems,
        "original sequences",
        result.original!.sequences,
        tensorAt(tensors, c.original_sequences),
      );
    if (c.original_scores)
      compareScores(problems, "original scores", result.original!.scores, floatAt(tensors, c.original_scores));
  }
  return problems.length === 0 ? null : problems.join("; ");
}

/** Max |a − b|, over positions whose attention mask is 1 when a mask [B, T] is given. */
function compare(problems: string[], what: string, actual: Tensor, expected: Tensor, mask: IntTensor | null): void {
  if (actual.size !== expected.size) {
    problems.push(`${what}: shape [${actual.shape}] vs expected [${expected.shape}]`);
    return;
  }
  const usable = mask !== null && expected.rank >= 2 && expected.shape[0] * expected.shape[1] === mask.size;
  const perPosition = usable ? expected.size / mask!.size : 1;
  let worst = 0;
  for (let i = 0; i < actual.size; i++) {
    if (usable && mask!.data[Math.floor(i / perPosition)] === 0) continue;
    const d = Math.abs(actual.data[i] - expected.data[i]);
    if (!(d <= worst)) worst = d;
  }
  if (!(worst <= TOLERANCE)) problems.push(`${what}: max |diff| ${worst.toExponential(2)} > ${TOLERANCE}`);
}

function compareSequences(problems: string[], what: string, actual: IntTensor, expected: Tensor | IntTensor): void {
  const same = actual.data.length === expected.data.length && actual.data.every((v, i) => v === expected.data[i]);
  if (!same)
    problems.push(`${what}: ${JSON.stringify(actual.toArray())} vs expected ${JSON.stringify(expected.toArray())}`);
}

function compareScores(problems: string[], what: string, actual: Tensor[], expected: Tensor): void {
  if (actual.length !== expected.shape[0]) {
    problems.push(`${what}: ${actual.length} steps vs expected ${expected.shape[0]}`);
    return;
  }
  const perStep = expected.size / expected.shape[0];
  actual.forEach((step, t) =>
    compare(
      problems,
      `${what}[${t}]`,
      step,
      new Tensor(expected.data.subarray(t * perStep, (t + 1) * perStep), step.shape),
      null,
    ),
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const dir = process.argv[2];
  if (!dir) {
    console.error("usage: npm run parity -- <fixtures-dir>");
    process.exit(2);
  }
  const report = await runParity(dir);
  process.exit(report.failed === 0 ? 0 : 1);
}
