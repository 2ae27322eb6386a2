/**
 * Sweep results as one self-contained HTML file (grid-report.ts draws the page): what was run,
 * the numbers that frame it (with how the noise was made, so the run can be repeated), the heat
 * maps and the cells that matter most.
 */
import { readOptions } from "../options/index.js";
import type { CollectResult, PatchResult, TraceComponent, TraceResult } from "../sweeps/results.js";
import type { Hue } from "./color-scale.js";
import { displayToken, escapeXml, formatValue } from "./format.js";
import { field, number, page, panelsHtml, promptLine, tokenChips, type PagePanel } from "./grid-report.js";
import { labelledGrid } from "./heatmap.js";

export interface ReportOptions {
  /** Page heading and <title>; by default named after the kind of sweep. */
  title?: string;
  /** How many cells the table under each heat map lists. Default 10. */
  topCells?: number;
  /** How to name the model in the summary and on each picture (the results do not know it). */
  model?: string;
  /** ROME's three panels on one colour scale, so that equal colours are equal values. Default false. */
  sharedScale?: boolean;
}

const REPORT_OPTIONS = [
  "title",
  "topCells",
  "model",
  "sharedScale",
] as const satisfies readonly (keyof ReportOptions)[];

/** ROME's panel order, wording and colours; other components follow them in the state's colours. */
const TRACE_PANELS: Record<TraceComponent, { order: number; what: string; hue: Hue }> = {
  block_output: { order: 0, what: "state", hue: "purple" },
  mlp_output: { order: 1, what: "MLP", hue: "green" },
  attention_output: { order: 2, what: "attention", hue: "red" },
};

/** A causal trace, or ROME's panels: traces of one prompt for several components, shown block, MLP, attention. */
export function traceReport(traces: TraceResult | readonly TraceResult[], reportOptions: ReportOptions = {}): string {
  const options = readOptions<ReportOptions>(reportOptions, REPORT_OPTIONS, "traceReport options");
  const list = Array.isArray(traces) ? (traces as readonly TraceResult[]) : [traces as TraceResult];
  return page(options.title ?? "Causal tracing", traceBody(list, options));
}

export function patchReport(patch: PatchResult, reportOptions: ReportOptions = {}): string {
  const options = readOptions<ReportOptions>(reportOptions, REPORT_OPTIONS, "patchReport options");
  if (patch.kind !== "patch")
    throw new Error(`patchReport: expected a PatchResult (kind "patch"), got kind ${JSON.stringify(patch.kind)}`);
  return page(options.title ?? "Activation patching", patchBody(patch, options));
}

/** Collected activations as a per-layer table (shape, mean, norm): there is no score grid to draw. */
export function collectReport(collect: CollectResult, options: Pick<ReportOptions, "title"> = {}): string {
  if (collect.kind !== "collect")
    throw new Error(
      `collectReport: expected a CollectResult (kind "collect"), got kind ${JSON.stringify(collect.kind)}`,
    );
  return page(options.title ?? "Collected activations", collectBody(collect), "Made by tsvene.");
}

function panelOf(component: string): { order: number; what: string; hue: Hue } {
  if (Object.hasOwn(TRACE_PANELS, component)) return TRACE_PANELS[component as TraceComponent];
  return { order: 3, what: component, hue: "purple" };
}

function traceBody(traces: readonly TraceResult[], options: Partial<ReportOptions>): string {
  if (traces.length === 0) throw new Error("traceReport: expected at least one TraceResult, got an empty list");
  for (const trace of traces) {
    if (trace.kind !== "trace")
      throw new Error(
        `traceReport: expected TraceResults (kind "trace"), got one of kind ${JSON.stringify(trace.kind)}`,
      );
  }
  const first = traces[0];
  const seen = new Set<string>();
  for (const trace of traces) {
    if (seen.has(trace.component))
      throw new Error(`traceReport: two traces for ${trace.component}; give one per component`);
    seen.add(trace.component);
    // The summary states one prompt, target and noise for all panels: it must be true of each.
    const sameRun =
      sameList(trace.tokens, first.tokens) &&
      (["target", "metric", "noiseStd", "seed", "samples"] as const).every((key) => trace[key] === first[key]);
    if (!sameRun) {
      throw new Error(
        "traceReport: traces shown together must share tokens, target, metric, noiseStd, seed and samples; " +
          `${trace.component} differs from ${first.component}`,
      );
    }
  }
  const label = valueLabel(first.metric, first.targetLabel);
  const corrupted = new Set(first.corruptedPositions);
  const how = noiseDescription(first);
  const summary = [
    `<section class="summary">`,
    promptLine("Prompt", tokenChips(first.tokens, corrupted, "corrupted")),
    `<dl>`,
    ...(options.model === undefined ? [] : [field("Model", escapeXml(options.model))]),
    field("Metric", metricDescription(first.metric, first.targetLabel, first.target)),
    field("Corrupted positions", corruptedDescription(first)),
    field("Noise", escapeXml(how)),
    `</dl>`,
    `</section>`,
  ];
  const subtitle = [options.model === undefined ? [] : [`model ${options.model}`], [how]].flat().join(" · ");
  const spread = first.samples > 1;
  const drawsNote = spread ? `, the mean over ${first.samples} noise draws (± their standard deviation on hover)` : "";
  const panels = [...traces]
    .sort((a, b) => panelOf(a.component).order - panelOf(b.component).order)
    .map((trace): PagePanel => {
      const panel = panelOf(trace.component);
      const windowNote = trace.window > 1 ? ` (window of ${trace.window} layers around each)` : "";
      const grid = labelledGrid(trace.grid, trace.tokens);
      const corruptedSpread = spread ? ` ± ${number(trace.corruptedSpread)}` : "";
      return {
        id: trace.component,
        heading: `Impact of restoring ${panel.what} after corrupted input`,
        introHtml:
          `<p class="values">Restored: ${trace.component}${escapeXml(windowNote)}. ` +
          `Clean run: <span class="clean">${escapeXml(label)} = ${number(trace.clean)}</span>; ` +
          `corrupted run: <span class="corrupted-value">${escapeXml(label)} = ${number(trace.corrupted)}` +
          `${corruptedSpread}</span>.</p>`,
        grid: spread ? grid : { ...grid, spread: undefined },
        valueLabel: label,
        reference: trace.corrupted,
        referenceName: "corrupted",
        markedCols: trace.grid.positions.flatMap((p, c) => (corrupted.has(p) ? [c] : [])),
        hue: panel.hue,
        subtitle,
        caption:
          `Each cell: ${label} when that layer's ${trace.component} at that position is restored from the clean ` +
          `run${drawsNote}. ` +
          `White is the corrupted run's value; * marks corrupted positions.`,
      };
    });
  return [...summary, panelsHtml(panels, options, "traceReport")].join("\n");
}

function patchBody(patch: PatchResult, options: Partial<ReportOptions>): string {
  const label = valueLabel(patch.metric, patch.targetLabel);
  // Where the prompts differ is what the patch carries; sites elsewhere can only matter through them.
  const differing = new Set(patch.baseTokens.flatMap((t, i) => (t !== patch.sourceTokens[i] ? [i] : [])));
  const panel: PagePanel = {
    id: "patch",
    heading: `Impact of patching ${patch.component} from the source run`,
    grid: labelledGrid(patch.grid, patch.baseTokens),
    valueLabel: label,
    reference: patch.base,
    referenceName: "base",
    markedCols: patch.grid.positions.flatMap((p, c) => (differing.has(p) ? [c] : [])),
    ...(options.model === undefined ? {} : { subtitle: `model ${options.model}` }),
    caption:
      `Each cell: ${label} on the base run when that layer's ${patch.component} at that base position takes ` +
      "its source value. White is the base run's value; * marks positions where base and source differ.",
  };
  return [
    `<section class="summary">`,
    promptLine("Base", tokenChips(patch.baseTokens, differing, "differs from the source")),
    promptLine("Source", tokenChips(patch.sourceTokens, differing, "differs from the base")),
    `<dl>`,
    ...(options.model === undefined ? [] : [field("Model", escapeXml(options.model))]),
    field("Metric", metricDescription(patch.metric, patch.targetLabel, patch.target)),
    field("Patched", `${escapeXml(patch.component)}, from the source run into the base run`),
    field("Base run", `<span class="base-value">${escapeXml(label)} = ${number(patch.base)}</span>`),
    field("Source run", `<span class="source-value">${escapeXml(label)} = ${number(patch.source)}</span>`),
    `</dl>`,
    `</section>`,
    panelsHtml([panel], options, "patchReport"),
  ].join("\n");
}

function collectBody(collect: CollectResult): string {
  const rows = collect.activations.map(({ layer, shape, values }) => {
    const size = shape.reduce((a, b) => a * b, 1);
    if (shape.length === 0 || size !== values.length) {
      throw new Error(
        `collectReport: layer ${layer}'s activations must have shape [examples, positions, width] ` +
          `matching its ${values.length} values, got [${shape.join(", ")}]`,
      );
    }
    const stats = activationStats(values, shape[shape.length - 1]);
    return (
      `<tr><td>${layer}</td><td>${shape.join(" × ")}</td>` +
      `<td>${formatValue(stats.mean, 4)}</td><td>${formatValue(stats.meanNorm, 4)}</td></tr>`
    );
  });
  return [
    `<section class="summary">`,
    `<dl>`,
    field("Component", escapeXml(collect.component)),
    field("Layers", collect.layers.join(", ")),
    `</dl>`,
    `</section>`,
    `<section class="panel" id="collect">`,
    `<h2>Activations per layer</h2>`,
    `<table class="collect-summary">`,
    `<thead><tr><th>layer</th><th>shape</th><th>mean</th><th>mean vector norm</th></tr></thead>`,
    `<tbody>`,
    ...rows,
    `</tbody>`,
    `</table>`,
    `<p class="note">Mean vector norm: the L2 norm of each activation vector (the last dimension), ` +
      `averaged over examples and positions.</p>`,
    `</section>`,
  ].join("\n");
}

/** Mean of all values, and the mean L2 norm of the `width`-long vectors they are made of. */
function activationStats(values: Float32Array, width: number): { mean: number; meanNorm: number } {
  let sum = 0;
  let normSum = 0;
  const vectors = width > 0 ? values.length / width : 0;
  for (let v = 0; v < vectors; v++) {
    let squares = 0;
    for (let i = v * width; i < (v + 1) * width; i++) {
      sum += values[i];
      squares += values[i] * values[i];
    }
    normSum += Math.sqrt(squares);
  }
  return { mean: values.length > 0 ? sum / values.length : NaN, meanNorm: vectors > 0 ? normSum / vectors : NaN };
}

function valueLabel(metric: "probability" | "logit", targetLabel: string): string {
  return `${metric === "probability" ? "p" : "logit"}(${displayToken(targetLabel)})`;
}

function metricDescription(metric: "probability" | "logit", targetLabel: string, target: number): string {
  return `${metric} of ${escapeXml(JSON.stringify(targetLabel))} (token ${target}) at the last position`;
}

/** How the corrupted runs were made, in words: the noise level, its seed and the draws averaged. */
function noiseDescription(trace: TraceResult): string {
  const draws = `${trace.samples} draw${trace.samples === 1 ? "" : "s"}`;
  if (trace.noiseStd === null) return `given by the caller, ${draws}`;
  return `Gaussian, σ = ${formatValue(trace.noiseStd)}, seed ${trace.seed}, ${draws}`;
}

function corruptedDescription(trace: TraceResult): string {
  if (trace.corruptedPositions.length === 0) return "none";
  return trace.corruptedPositions.map((p) => `${p} ${escapeXml(JSON.stringify(trace.tokens[p] ?? ""))}`).join(", ");
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
