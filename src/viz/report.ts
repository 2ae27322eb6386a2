/**
 * Sweep results as one self-contained HTML file (inline CSS and SVG, no scripts or external
 * assets): what was run, the numbers that frame it, the heat maps and the cells that matter most.
 */
import type { CollectResult, PatchResult, ScoreGrid, TraceComponent, TraceResult } from "../sweeps/results.js";
import type { Hue } from "./color-scale.js";
import { displayToken, escapeXml, exactFloat32, formatValue } from "./format.js";
import { heatmapSvg } from "./heatmap.js";

export interface ReportOptions {
  /** Page heading and <title>; by default named after the kind of sweep. */
  title?: string;
  /** How many cells the table under each heat map lists. Default 10. */
  topCells?: number;
}

/** ROME's panel order, wording and colours. */
const TRACE_PANELS: Record<TraceComponent, { order: number; what: string; hue: Hue }> = {
  block_output: { order: 0, what: "state", hue: "purple" },
  mlp_output: { order: 1, what: "MLP", hue: "green" },
  attention_output: { order: 2, what: "attention", hue: "red" },
};

/** A causal trace, or ROME's panels: traces of one prompt for several components, shown block, MLP, attention. */
export function traceReport(traces: TraceResult | readonly TraceResult[], options: ReportOptions = {}): string {
  const list = Array.isArray(traces) ? (traces as readonly TraceResult[]) : [traces as TraceResult];
  return page(options.title ?? "Causal tracing", traceBody(list, topCellCount(options)));
}

export function patchReport(patch: PatchResult, options: ReportOptions = {}): string {
  if (patch.kind !== "patch")
    throw new Error(`patchReport: expected a PatchResult (kind "patch"), got kind ${JSON.stringify(patch.kind)}`);
  return page(options.title ?? "Activation patching", patchBody(patch, topCellCount(options)));
}

/** Collected activations as a per-layer table (shape, mean, norm): there is no score grid to draw. */
export function collectReport(collect: CollectResult, options: Pick<ReportOptions, "title"> = {}): string {
  if (collect.kind !== "collect")
    throw new Error(
      `collectReport: expected a CollectResult (kind "collect"), got kind ${JSON.stringify(collect.kind)}`,
    );
  return page(options.title ?? "Collected activations", collectBody(collect), "Made by tsvene.");
}

function topCellCount(options: ReportOptions): number {
  const topCells = options.topCells ?? 10;
  if (!Number.isInteger(topCells) || topCells < 0) {
    throw new Error(`options.topCells must be a non-negative integer, got ${topCells}`);
  }
  return topCells;
}

function traceBody(traces: readonly TraceResult[], topCells: number): string {
  if (traces.length === 0) throw new Error("traceReport: expected at least one TraceResult, got an empty list");
  for (const trace of traces) {
    if (trace.kind !== "trace")
      throw new Error(
        `traceReport: expected TraceResults (kind "trace"), got one of kind ${JSON.stringify(trace.kind)}`,
      );
    if (!(trace.component in TRACE_PANELS)) {
      throw new Error(
        `traceReport: trace component must be one of ${Object.keys(TRACE_PANELS).join(", ")}, ` +
          `got ${JSON.stringify(trace.component)}`,
      );
    }
  }
  const first = traces[0];
  const seen = new Set<TraceComponent>();
  for (const trace of traces) {
    if (seen.has(trace.component))
      throw new Error(`traceReport: two traces for ${trace.component}; give one per component`);
    seen.add(trace.component);
    const sameRun =
      sameList(trace.tokens, first.tokens) && trace.target === first.target && trace.metric === first.metric;
    if (!sameRun) {
      throw new Error(
        "traceReport: traces shown together must share tokens, target and metric; " +
          `${trace.component} differs from ${first.component}`,
      );
    }
  }
  const panels = [...traces].sort((a, b) => TRACE_PANELS[a.component].order - TRACE_PANELS[b.component].order);
  const label = valueLabel(first.metric, first.targetLabel);
  const corrupted = new Set(first.corruptedPositions);

  const parts = [
    `<section class="summary">`,
    `<p class="prompt-line"><span class="field">Prompt</span> ${tokenChips(first.tokens, corrupted)}</p>`,
    `<dl>`,
    field("Metric", metricDescription(first.metric, first.targetLabel, first.target)),
    field("Corrupted positions", corruptedDescription(first)),
    `</dl>`,
    `</section>`,
  ];
  for (const trace of panels) {
    const panel = TRACE_PANELS[trace.component];
    const windowNote = trace.window > 1 ? ` (window of ${trace.window} layers around each)` : "";
    parts.push(
      `<section class="panel" id="${trace.component}">`,
      `<h2>Impact of restoring ${panel.what} after corrupted input</h2>`,
      `<p class="values">Restored: ${trace.component}${escapeXml(windowNote)}. ` +
        `Clean run: <span class="clean">${escapeXml(label)} = ${exactFloat32(trace.clean)}</span>; ` +
        `corrupted run: <span class="corrupted-value">` +
        `${escapeXml(label)} = ${exactFloat32(trace.corrupted)}</span>.</p>`,
      `<figure>`,
      heatmapSvg(trace.grid, {
        tokens: trace.tokens,
        markedPositions: trace.corruptedPositions,
        valueLabel: label,
        hue: panel.hue,
        idPrefix: `trace-${trace.component}`,
      }),
      `<figcaption>Each cell: ${escapeXml(label)} when that layer's ${escapeXml(trace.component)} ` +
        "at that position is restored from the clean run. * marks corrupted positions.</figcaption>",
      `</figure>`,
      topCellsTable(trace.grid, trace.tokens, trace.corrupted, topCells, "value − corrupted", label),
      `</section>`,
    );
  }
  return parts.join("\n");
}

function patchBody(patch: PatchResult, topCells: number): string {
  const label = valueLabel(patch.metric, patch.targetLabel);
  return [
    `<section class="summary">`,
    `<p class="prompt-line"><span class="field">Base</span> ${tokenChips(patch.baseTokens)}</p>`,
    `<p class="prompt-line"><span class="field">Source</span> ${tokenChips(patch.sourceTokens)}</p>`,
    `<dl>`,
    field("Metric", metricDescription(patch.metric, patch.targetLabel, patch.target)),
    field("Patched", `${escapeXml(patch.component)}, from the source run into the base run`),
    field("Base run", `<span class="base-value">${escapeXml(label)} = ${exactFloat32(patch.base)}</span>`),
    field("Source run", `<span class="source-value">${escapeXml(label)} = ${exactFloat32(patch.source)}</span>`),
    `</dl>`,
    `</section>`,
    `<section class="panel" id="patch">`,
    `<h2>Impact of patching ${escapeXml(patch.component)} from the source run</h2>`,
    `<figure>`,
    heatmapSvg(patch.grid, { tokens: patch.baseTokens, valueLabel: label, idPrefix: "patch" }),
    `<figcaption>Each cell: ${escapeXml(label)} on the base run when that layer's ${escapeXml(patch.component)} ` +
      "at that base position takes its source value.</figcaption>",
    `</figure>`,
    topCellsTable(patch.grid, patch.baseTokens, patch.base, topCells, "value − base", label),
    `</section>`,
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

/** The `count` cells that move the metric furthest from `reference`, either way. */
function topCellsTable(
  grid: ScoreGrid,
  tokens: readonly string[],
  reference: number,
  count: number,
  effectName: string,
  label: string,
): string {
  if (count === 0) return "";
  const cells: { row: number; col: number; value: number }[] = [];
  for (let row = 0; row < grid.rows; row++) {
    for (let col = 0; col < grid.cols; col++) {
      const value = grid.values[row * grid.cols + col];
      if (Number.isFinite(value)) cells.push({ row, col, value });
    }
  }
  cells.sort((a, b) => Math.abs(b.value - reference) - Math.abs(a.value - reference) || a.row - b.row || a.col - b.col);
  const rows = cells.slice(0, count).map(({ row, col, value }, rank) => {
    const position = grid.positions[col];
    return (
      `<tr><td>${rank + 1}</td><td>${grid.layers[row]}</td><td>${position}</td>` +
      `<td class="token">${escapeXml(displayToken(tokens[position]))}</td>` +
      `<td>${formatValue(value, 4)}</td><td>${formatValue(value - reference, 4)}</td></tr>`
    );
  });
  return [
    `<table class="top-cells">`,
    `<caption>Top ${rows.length} cells by |${escapeXml(effectName)}|</caption>`,
    `<thead><tr><th>#</th><th>layer</th><th>position</th><th>token</th>` +
      `<th>${escapeXml(label)}</th><th>${escapeXml(effectName)}</th></tr></thead>`,
    `<tbody>`,
    ...rows,
    `</tbody>`,
    `</table>`,
  ].join("\n");
}

function valueLabel(metric: "probability" | "logit", targetLabel: string): string {
  return `${metric === "probability" ? "p" : "logit"}(${displayToken(targetLabel)})`;
}

function metricDescription(metric: "probability" | "logit", targetLabel: string, target: number): string {
  return `${metric} of ${escapeXml(JSON.stringify(targetLabel))} (token ${target}) at the last position`;
}

function corruptedDescription(trace: TraceResult): string {
  if (trace.corruptedPositions.length === 0) return "none";
  return trace.corruptedPositions.map((p) => `${p} ${escapeXml(JSON.stringify(trace.tokens[p] ?? ""))}`).join(", ");
}

function tokenChips(tokens: readonly string[], marked: ReadonlySet<number> = new Set()): string {
  const chips = tokens.map((token, i) =>
    marked.has(i)
      ? `<span class="token marked" title="position ${i}, corrupted">${escapeXml(displayToken(token))}*</span>`
      : `<span class="token" title="position ${i}">${escapeXml(displayToken(token))}</span>`,
  );
  return `<span class="prompt">${chips.join("")}</span>`;
}

function field(name: string, valueHtml: string): string {
  return `<dt>${escapeXml(name)}</dt><dd>${valueHtml}</dd>`;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

const STYLE = `
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.25rem 1rem; }
dt, .field { font-weight: 600; } dd { margin: 0; }
.field { margin-right: 0.5rem; }
.prompt .token { white-space: pre; border: 1px solid #ccc; border-radius: 3px; padding: 0 2px; \
margin-right: 1px; font-family: ui-monospace, monospace; }
.prompt .marked { background: #fde2e2; border-color: #d88; }
figure { margin: 1rem 0; overflow-x: auto; } figcaption { font-size: 0.85rem; color: #555; }
table { border-collapse: collapse; font-size: 0.9rem; margin-top: 0.5rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.2rem 0.6rem; text-align: right; }
td.token { text-align: left; white-space: pre; font-family: ui-monospace, monospace; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.25rem; }
.note { font-size: 0.85rem; color: #555; }
`;

function page(title: string, body: string, footer = "Made by tsvene. Hover a cell for its exact value."): string {
  return [
    `<!DOCTYPE html>`,
    `<html lang="en">`,
    `<head>`,
    `<meta charset="utf-8">`,
    `<meta name="viewport" content="width=device-width, initial-scale=1">`,
    `<title>${escapeXml(title)}</title>`,
    `<style>${STYLE}</style>`,
    `</head>`,
    `<body>`,
    `<h1>${escapeXml(title)}</h1>`,
    body,
    `<footer class="note">${footer}</footer>`,
    `</body>`,
    `</html>`,
    ``,
  ].join("\n");
}
