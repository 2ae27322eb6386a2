/**
 * The page every report is: a summary, then one panel per heat map (a heading, the map, a note
 * when the map is flat, the cells that move the metric most), as one self-contained HTML file
 * with inline CSS and SVG, no scripts or external assets. `gridReport` opens it to any labelled
 * grid (layers × heads, layers × positions, …); traceReport and patchReport are built on it.
 */
import { describe, readOptions } from "../options/index.js";
import { centredScale, colorScaleFor, extentOf, type ColorScale, type Hue } from "./color-scale.js";
import { displayToken, escapeXml, exactFloat32, formatValue } from "./format.js";
import { checkGrid, gridSvg, type LabelledGrid } from "./heatmap.js";

export interface GridPanel {
  grid: LabelledGrid;
  /** The panel's heading. */
  heading?: string;
  /** What the values are, e.g. "p(Paris)". */
  valueLabel?: string;
  /**
   * The value the colour scale is white at and cells are ranked against (the corrupted run's
   * value, the base run's): hue above it, blue below. Without one, the scale spans the values.
   */
  reference?: number;
  /** What the reference is, e.g. "corrupted": names the table's "value − corrupted" column. */
  referenceName?: string;
  /** Columns marked "*" on the map. */
  markedCols?: readonly number[];
  hue?: Hue;
  /** Text under the map saying what a cell is. */
  caption?: string;
  /** A line on the picture itself: how the values were made (model, noise, seed, samples). */
  subtitle?: string;
}

export interface GridReportOptions {
  /** Page heading and <title>. */
  title: string;
  /** The prompt's tokens, shown as chips that wrap. */
  tokens?: readonly string[];
  /** Positions of `tokens` to mark "*". */
  markedPositions?: readonly number[];
  /** Summary lines, name and value, as plain text (model, seed, …). */
  fields?: readonly (readonly [string, string])[];
  panels: readonly GridPanel[];
  /** One colour scale for all panels, so that equal colours are equal values. Default false. */
  sharedScale?: boolean;
  /** How many cells the table under each heat map lists. Default 10. */
  topCells?: number;
}

const REPORT_OPTIONS = [
  "title",
  "tokens",
  "markedPositions",
  "fields",
  "panels",
  "sharedScale",
  "topCells",
] as const satisfies readonly (keyof GridReportOptions)[];

const PANEL_OPTIONS = [
  "grid",
  "heading",
  "valueLabel",
  "reference",
  "referenceName",
  "markedCols",
  "hue",
  "caption",
  "subtitle",
] as const satisfies readonly (keyof GridPanel)[];

/** A report of labelled grids: one heat map per panel under a summary of the prompt and the fields. */
export function gridReport(reportOptions: GridReportOptions): string {
  const where = "gridReport";
  const options = readOptions<GridReportOptions>(reportOptions, REPORT_OPTIONS, `${where} options`);
  if (typeof options.title !== "string")
    throw new Error(`${where}: title must be a string, got ${describe(options.title)}`);
  if (!Array.isArray(options.panels) || options.panels.length === 0)
    throw new Error(`${where}: panels must be a non-empty list of {grid, …}, got ${describe(options.panels)}`);
  const panels = options.panels.map((panel, i) => ({
    ...readOptions<GridPanel>(panel, PANEL_OPTIONS, `${where}: panels[${i}]`),
    id: `panel-${i}`,
  })) as PagePanel[];
  const fields = (options.fields ?? []).map(([name, value]) => field(name, escapeXml(value)));
  const summary = [
    `<section class="summary">`,
    ...(options.tokens ? [promptLine("Prompt", tokenChips(options.tokens, new Set(options.markedPositions)))] : []),
    `<dl>`,
    ...fields,
    `</dl>`,
    `</section>`,
  ].join("\n");
  return page(options.title, `${summary}\n${panelsHtml(panels, options, where)}`);
}

/** A panel as the page draws it: an id for its section and, from traceReport and patchReport, HTML over the map. */
export interface PagePanel extends GridPanel {
  id: string;
  introHtml?: string;
}

/** The panels' sections, their colour scales made (shared or each its own) and their grids checked. */
export function panelsHtml(
  panels: readonly PagePanel[],
  options: { sharedScale?: boolean; topCells?: number },
  where: string,
): string {
  const topCells = options.topCells ?? 10;
  if (!Number.isInteger(topCells) || topCells < 0)
    throw new Error(`${where}: options.topCells must be a non-negative integer, got ${describe(topCells)}`);
  if (options.sharedScale !== undefined && typeof options.sharedScale !== "boolean")
    throw new Error(`${where}: options.sharedScale must be true or false, got ${describe(options.sharedScale)}`);
  panels.forEach((panel, i) => {
    try {
      checkGrid(panel.grid ?? ({} as LabelledGrid));
    } catch (error) {
      throw new Error(`${where}: panels[${i}].${(error as Error).message.replace(/^heatmapSvg: /, "")}`);
    }
    if (panel.reference !== undefined && typeof panel.reference !== "number")
      throw new Error(`${where}: panels[${i}].reference must be a number, got ${describe(panel.reference)}`);
  });
  const shared = options.sharedScale ? sharedExtent(panels) : null;
  return panels.map((panel) => panelHtml(panel, scaleFor(panel, shared), topCells)).join("\n");
}

/** The smallest and largest of every panel's values and references. */
function sharedExtent(panels: readonly PagePanel[]): { min: number; max: number } {
  const all = panels.flatMap((p) => [
    ...Array.from(p.grid.values),
    ...(p.reference === undefined ? [] : [p.reference]),
  ]);
  return extentOf(all) ?? { min: 0, max: 0 };
}

function scaleFor(panel: PagePanel, shared: { min: number; max: number } | null): ColorScale {
  const extent = shared ?? extentOf(panel.grid.values) ?? { min: 0, max: 0 };
  if (panel.reference !== undefined) return centredScale(panel.reference, extent.min, extent.max, panel.hue);
  return shared ? colorScaleFor([shared.min, shared.max], panel.hue) : colorScaleFor(panel.grid.values, panel.hue);
}

function panelHtml(panel: PagePanel, scale: ColorScale, topCells: number): string {
  const marks = panel.markedCols ?? [];
  return [
    `<section class="panel" id="${escapeXml(panel.id)}">`,
    ...(panel.heading ? [`<h2>${escapeXml(panel.heading)}</h2>`] : []),
    ...(panel.introHtml ? [panel.introHtml] : []),
    `<figure>`,
    gridSvg(panel.grid, {
      subtitle: panel.subtitle,
      valueLabel: panel.valueLabel,
      markedCols: marks,
      colorScale: scale,
      idPrefix: panel.id,
    }),
    ...(panel.caption ? [`<figcaption>${escapeXml(panel.caption)}</figcaption>`] : []),
    `</figure>`,
    flatNote(panel),
    topCellsTable(panel, topCells),
    `</section>`,
  ]
    .filter((part) => part !== "")
    .join("\n");
}

/** Cells all within this fraction of the largest magnitude (values and reference) make a flat map. */
const FLAT = 1e-3;

/** A note when no cell stands out: white (or one colour) everywhere reads as "nothing here", which it is. */
function flatNote(panel: GridPanel): string {
  const extent = extentOf(panel.grid.values);
  if (extent === null) return "";
  const size = Math.max(Math.abs(extent.min), Math.abs(extent.max), Math.abs(panel.reference ?? 0));
  if (extent.max - extent.min > FLAT * size) return "";
  const range =
    extent.max === extent.min
      ? `every cell is ${formatValue(extent.min)}`
      : `every cell lies between ${formatValue(extent.min)} and ${formatValue(extent.max)}`;
  const reference =
    panel.reference === undefined ? "" : ` (${panel.referenceName ?? "reference"}: ${formatValue(panel.reference)})`;
  return (
    `<p class="note flat">This map is flat: ${range}${escapeXml(reference)}. ` +
    `No ${escapeXml(panel.grid.rowTitle)} or ${escapeXml(panel.grid.colTitle)} stands out here.</p>`
  );
}

/** The `count` cells furthest from the reference (or zero), either way. */
function topCellsTable(panel: GridPanel, count: number): string {
  if (count === 0) return "";
  const { grid } = panel;
  const cols = grid.colLabels.length;
  const reference = panel.reference ?? 0;
  const cells: { row: number; col: number; value: number }[] = [];
  for (let i = 0; i < grid.values.length; i++) {
    const value = grid.values[i];
    if (Number.isFinite(value)) cells.push({ row: Math.floor(i / cols), col: i % cols, value });
  }
  cells.sort((a, b) => Math.abs(b.value - reference) - Math.abs(a.value - reference) || a.row - b.row || a.col - b.col);
  const effectName = panel.reference === undefined ? null : `value − ${panel.referenceName ?? "reference"}`;
  const label = panel.valueLabel ?? "value";
  const rows = cells.slice(0, count).map(({ row, col, value }, rank) => {
    const column = grid.colKeys
      ? `<td>${grid.colKeys[col]}</td><td class="token">${escapeXml(displayToken(grid.colLabels[col]))}</td>`
      : `<td>${escapeXml(grid.colLabels[col])}</td>`;
    const effect = effectName === null ? "" : number(value - reference, "td");
    const rowLabel = `<td>${escapeXml(grid.rowLabels[row])}</td>`;
    return `<tr><td>${rank + 1}</td>${rowLabel}${column}${number(value, "td")}${effect}</tr>`;
  });
  const columnHeads = grid.colKeys
    ? `<th>${escapeXml(grid.colTitle)}</th><th>token</th>`
    : `<th>${escapeXml(grid.colTitle)}</th>`;
  const ranking = effectName ?? label;
  return [
    `<table class="top-cells">`,
    `<caption>Top ${rows.length} cells by |${escapeXml(ranking)}|</caption>`,
    `<thead><tr><th>#</th><th>${escapeXml(grid.rowTitle)}</th>${columnHeads}` +
      `<th>${escapeXml(label)}</th>${effectName === null ? "" : `<th>${escapeXml(effectName)}</th>`}</tr></thead>`,
    `<tbody>`,
    ...rows,
    `</tbody>`,
    `</table>`,
  ].join("\n");
}

/** A number as shown everywhere (4 significant digits), its exact float32 value on hover. */
export function number(value: number, tag = "span"): string {
  return `<${tag} title="${exactFloat32(value)}">${formatValue(value)}</${tag}>`;
}

export function promptLine(name: string, chips: string): string {
  return `<p class="prompt-line"><span class="field">${escapeXml(name)}</span> ${chips}</p>`;
}

/** The prompt's tokens as chips that wrap between tokens; marked ones get "*" and `markTitle` on hover. */
export function tokenChips(tokens: readonly string[], marked: ReadonlySet<number>, markTitle = "marked"): string {
  const chips = tokens.map((token, i) => {
    const text = escapeXml(displayToken(token));
    return marked.has(i)
      ? `<span class="token marked" title="position ${i}, ${escapeXml(markTitle)}">${text}*</span>`
      : `<span class="token" title="position ${i}">${text}</span>`;
  });
  return `<span class="prompt">${chips.join("")}</span>`;
}

export function field(name: string, valueHtml: string): string {
  return `<dt>${escapeXml(name)}</dt><dd>${valueHtml}</dd>`;
}

const STYLE = `
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
dl { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 0.25rem 1rem; }
dt, .field { font-weight: 600; } dd { margin: 0; overflow-wrap: anywhere; }
.field { margin-right: 0.5rem; }
.prompt .token { display: inline-block; white-space: pre-wrap; overflow-wrap: anywhere; border: 1px solid #ccc; \
border-radius: 3px; padding: 0 2px; margin: 0 1px 2px 0; font-family: ui-monospace, monospace; }
.prompt .marked { background: #fde2e2; border-color: #d88; }
figure { margin: 1rem 0; } figcaption { font-size: 0.85rem; color: #555; }
svg.heatmap { max-width: 100%; height: auto; }
table { border-collapse: collapse; font-size: 0.9rem; margin-top: 0.5rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.2rem 0.6rem; text-align: right; }
td.token { text-align: left; white-space: pre-wrap; overflow-wrap: anywhere; font-family: ui-monospace, monospace; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.25rem; }
.note { font-size: 0.85rem; color: #555; } .note.flat { color: #8a4b00; }
`;

export function page(
  title: string,
  body: string,
  footer = "Made by tsvene. Hover a cell or a number for its exact value.",
): string {
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
