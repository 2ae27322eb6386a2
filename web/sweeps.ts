/**
 * What the worker runs on the loaded model: causal tracing, activation patching, the logit lens and
 * head patching, each answered as the CLI would (its --json, its HTML report) plus the maps to
 * draw; and the run behind one clicked cell of a trace or patch map. Text is read as the CLI reads
 * it (the library's promptIds: unknown words and over-long prompts are refused with the same message).
 */
import * as tv from "../src/index.js";
import type {
  CellAnswer,
  CellRequest,
  HeadsRequest,
  Panel,
  PatchRequest,
  SweepAnswer,
  TopToken,
  TraceRequest,
} from "./protocol.js";

export interface Loaded extends tv.TextReader {
  name: string;
}

export type Progress = (done: number, total: number, label: string) => void;

/** ROME's three panels, traced by component "all" (as `tsvene trace --component all`). */
const ROME_COMPONENTS = ["block_output", "mlp_output", "attention_output"];
/** How many of a clicked cell's top tokens are shown. */
const CELL_TOP_TOKENS = 5;

function tokenLabels({ tokenizer }: Loaded, ids: readonly number[]): string[] {
  return ids.map((id) => tokenizer.decode([id]));
}

/** The trace's options for one component, the same for the whole map and for one clicked cell. */
function traceOptions(run: Loaded, request: TraceRequest, component: string): tv.TraceOptions {
  const { prompt, subject } = request;
  const ids = tv.promptIds(run, prompt, "prompt");
  if (subject.trim() !== "") tv.checkVocabulary(run, subject, "subject");
  return {
    inputIds: tv.intTensor([ids]),
    tokens: tokenLabels(run, ids),
    corruptedPositions: tv.subjectPositions(run.tokenizer, { text: prompt, ids }, subject, "subject"),
    component,
    window: request.window,
    seed: request.seed,
    samples: request.samples,
    ...(request.noise !== null && { noiseStd: request.noise }),
  };
}

export function trace(run: Loaded, request: TraceRequest, progress: Progress): SweepAnswer {
  const { prompt, subject } = request;
  const components = request.component === "all" ? ROME_COMPONENTS : [request.component];
  const results = components.map((component) => {
    const result = tv.causalTrace(run.model, {
      ...traceOptions(run, request, component),
      onProgress: (done, total) => progress(done, total, `trace ${component}`),
    });
    return { ...result, targetLabel: run.tokenizer.decode([result.target]) };
  });
  const json = results.map((r) => tv.traceResultJson(r, { model: run.name, prompt, subject }));
  const panels: Panel[] = results.map((r, i) => ({
    heading: `Restoring ${r.component} (window ${r.window})`,
    cols: r.grid.cols,
    svg: tv.heatmapSvg(r.grid, {
      tokens: r.tokens,
      markedPositions: r.corruptedPositions,
      valueLabel: `p(${r.targetLabel})`,
      subtitle: `${run.name}: σ ${r.noiseStd?.toPrecision(3)}, seed ${r.seed}, mean of ${r.samples}`,
      idPrefix: `trace-${i}`,
    }),
    cellRun: { ...request, component: r.component },
  }));
  const first = results[0];
  const corrupted = first.corruptedPositions.map((p) => first.tokens[p]).join("");
  return {
    summary:
      `p(${JSON.stringify(first.targetLabel)}) clean ${first.clean.toFixed(4)}, ` +
      `corrupted ${first.corrupted.toFixed(4)}; corrupted tokens: ${corrupted}`,
    json: json.length === 1 ? json[0] : json,
    reportHtml: tv.traceReport(results, { model: run.name }),
    panels,
  };
}

/** Two prompts of the same number of tokens, both read as the CLI reads them. */
function promptPair(run: Loaded, request: { base: string; source: string }) {
  const baseIds = tv.promptIds(run, request.base, "base prompt");
  const sourceIds = tv.promptIds(run, request.source, "source prompt");
  if (baseIds.length !== sourceIds.length) {
    throw new RangeError(
      `the source prompt must have as many tokens as the base: the base has ${baseIds.length}, ` +
        `the source ${sourceIds.length} (patching pairs positions one to one)`,
    );
  }
  const baseTokens = tokenLabels(run, baseIds);
  const sourceTokens = tokenLabels(run, sourceIds);
  return { base: tv.intTensor([baseIds]), source: tv.intTensor([sourceIds]), baseTokens, sourceTokens };
}

function patchOptions(run: Loaded, request: PatchRequest): tv.PatchOptions {
  return { ...promptPair(run, request), component: request.component };
}

export function patch(run: Loaded, request: PatchRequest, progress: Progress): SweepAnswer {
  const raw = tv.activationPatching(run.model, {
    ...patchOptions(run, request),
    onProgress: (done, total) => progress(done, total, `patch ${request.component}`),
  });
  const result = { ...raw, targetLabel: run.tokenizer.decode([raw.target]) };
  const differing = tv.differingPositions(result.baseTokens, result.sourceTokens);
  const { kind, grid, ...rest } = result;
  const json = {
    kind,
    model: run.name,
    basePrompt: request.base,
    sourcePrompt: request.source,
    ...rest,
    differingPositions: differing,
    grid: tv.scoreGridJson(grid, result.baseTokens),
  };
  const svg = tv.heatmapSvg(grid, {
    tokens: result.baseTokens,
    markedPositions: differing,
    valueLabel: `p(${result.targetLabel})`,
    idPrefix: "patch",
  });
  return {
    summary: `p(${JSON.stringify(result.targetLabel)}) base ${result.base.toFixed(4)}, source ${result.source.toFixed(4)}`,
    json,
    reportHtml: tv.patchReport(result, { model: run.name }),
    panels: [{ heading: `Patching ${request.component} from the source run`, svg, cols: grid.cols, cellRun: request }],
  };
}

export function heads(run: Loaded, request: HeadsRequest, progress: Progress): SweepAnswer {
  const raw = tv.headPatching(run.model, {
    ...promptPair(run, request),
    component: request.component,
    positions: request.positions,
    onProgress: (done, total) => progress(done, total, `heads ${request.component}`),
  });
  const result = { ...raw, targetLabel: run.tokenizer.decode([raw.target]) };
  const about = { model: run.name, base: request.base, source: request.source };
  const valueLabel = tv.headsValueLabel(result);
  const panels: Panel[] = result.grids.map((g, i) => ({
    heading: `${valueLabel} with ${tv.headGridHeading(result, g)}`,
    cols: g.cols,
    svg: tv.gridSvg(tv.headLabelledGrid(g), { valueLabel, idPrefix: `heads-${i}` }),
  }));
  return {
    summary:
      `head patching of ${result.component}: p(${JSON.stringify(result.targetLabel)}) ` +
      `base ${result.base.toFixed(4)}, source ${result.source.toFixed(4)}`,
    json: tv.headsResultJson(result, about),
    reportHtml: tv.headsReport(result, about),
    panels,
  };
}

export function lens(run: Loaded, prompt: string): SweepAnswer {
  const ids = tv.promptIds(run, prompt, "prompt");
  const tokens = tokenLabels(run, ids);
  const result = tv.logitLens(run.model, { inputIds: tv.intTensor([ids]), tokens });
  const targetLabel = run.tokenizer.decode([result.target]);
  const grid = { ...tv.labelledGrid(result.targetProbability, tokens), rowLabels: lensRows(result) };
  const { k, ids: topIds, probabilities } = result.top;
  const cellTopTokens = Array.from({ length: grid.values.length }, (_, cell) =>
    Array.from({ length: k }, (_, i) => ({
      token: run.tokenizer.decode([topIds[cell * k + i]]),
      probability: probabilities[cell * k + i],
    })),
  );
  const valueLabel = `p(${targetLabel})`;
  const svg = tv.gridSvg(grid, { valueLabel, idPrefix: "lens" });
  return {
    summary: `logit lens: probability of ${JSON.stringify(targetLabel)} read from each layer's residual stream`,
    json: { kind: result.kind, model: run.name, prompt, target: result.target, targetLabel, ...tv.gridJson(grid) },
    reportHtml: tv.gridReport({ title: "Logit lens", tokens, panels: [{ grid, valueLabel, heading: "Logit lens" }] }),
    panels: [{ heading: "Logit lens", svg, cols: tokens.length, cellTopTokens }],
  };
}

/** Row labels of the lens: "embed" for the embeddings (layer −1), then the layers. */
function lensRows(result: tv.LensResult): string[] {
  return result.targetProbability.layers.map((l) => (l < 0 ? "embed" : String(l)));
}

/**
 * The run behind a clicked cell, recomputed by the library (traceCellRun, patchCellRun) from the
 * map's own request: for a trace, the top tokens of the noise draws' probabilities averaged (so
 * the target's is the cell's value); for a patching, of the one patched run.
 */
export function cell(run: Loaded, request: CellRequest): CellAnswer {
  const { of, layer, position } = request;
  const at = { layer, position };
  const found =
    of.kind === "trace"
      ? tv.traceCellRun(run.model, traceOptions(run, of, of.component), at)
      : tv.patchCellRun(run.model, patchOptions(run, of), at);
  const top: TopToken[] = tv
    .topVals(run.tokenizer, new tv.Tensor(found.probabilities, [found.probabilities.length]), CELL_TOP_TOKENS)
    .map((t) => ({ token: run.tokenizer.decode([t.id]), probability: t.value }));
  const layers = found.layers.length > 1 ? `layers ${found.layers[0]}–${found.layers.at(-1)}` : `layer ${layer}`;
  const about =
    of.kind === "trace"
      ? `the corrupted run with ${of.component} restored from the clean run at ${layers}, position ${position}; ` +
        `top tokens of the mean of its ${found.draws} noise draws' probabilities`
      : `the base run with ${of.component} patched from the source run at ${layers}, position ${position}; top tokens`;
  return { about, top };
}
