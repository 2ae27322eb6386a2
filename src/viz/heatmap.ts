/**
 * A grid of scores as a standalone SVG heat map: one row per layer, one column per position (or
 * head, or anything the caller labels), a colour bar, and each cell's exact value in its <title>
 * for hover and screen readers. No scripts, fonts or other external assets, so it works pasted
 * into any page.
 */
import type { ScoreGrid } from "../sweeps/results.js";
import { colorScaleFor, type ColorScale, type Hue } from "./color-scale.js";
import { displayToken, escapeXml, exactFloat32, formatValue, truncate } from "./format.js";

/**
 * Row-major values with what each row and column is: the form every heat map and grid report
 * takes, whatever the sweep (layers × positions, layers × heads, …).
 */
export interface LabelledGrid {
  /** Row-major, rowLabels.length × colLabels.length. */
  values: ArrayLike<number>;
  /** Per cell, a standard deviation (e.g. over noise draws), shown as "± s" on hover. */
  spread?: ArrayLike<number>;
  /** What the rows and columns are, singular: "layer", "position", "head". */
  rowTitle: string;
  colTitle: string;
  rowLabels: readonly string[];
  /** Column labels as shown; tokens keep their spaces (control characters are made visible). */
  colLabels: readonly string[];
  /** Where a column's label is a token: the position it is at, which hover text gives with the token. */
  colKeys?: readonly number[];
}

export interface GridSvgOptions {
  /** Heading drawn above the grid; also the start of the accessible name. */
  title?: string;
  /** A smaller line under the title: how the values were made (model, noise, seed, samples). */
  subtitle?: string;
  /** What the values are, e.g. "p(Paris)": written over the colour bar and in each cell's title. */
  valueLabel?: string;
  /** Columns to mark with "*" after their label (ROME marks the corrupted subject this way). */
  markedCols?: readonly number[];
  /** Hue of the sequential scale. Default purple. */
  hue?: Hue;
  /** Force a scale kind; by default diverging when values straddle zero, else sequential. */
  scale?: "sequential" | "diverging";
  /** A scale made by the caller (centred on a reference, or shared by several maps); overrides hue and scale. */
  colorScale?: ColorScale;
  /** Prefix for ids inside the SVG (the legend gradient); distinct per heat map on one page. */
  idPrefix?: string;
}

export interface HeatmapOptions extends Omit<GridSvgOptions, "markedCols"> {
  /** The prompt's tokens, one per position; column c is labelled tokens[grid.positions[c]]. */
  tokens: readonly string[];
  /** Positions to mark with "*" after the token. */
  markedPositions?: readonly number[];
}

const FONT_SIZE = 12;
/** Rough width of one character of a 12px sans-serif font: labels are laid out without measuring text. */
const CHAR_WIDTH = 7.2;
const CELL_WIDTH = 32;
const CELL_HEIGHT = 22;
const MAX_TOKEN_CHARS = 14;
const LABEL_ANGLE = 45;
const COLORBAR_WIDTH = 12;
const COLORBAR_GAP = 18;
const PAD = 8;

/** A ScoreGrid's labels: layers for rows, the tokens at its positions for columns. */
export function labelledGrid(grid: ScoreGrid, tokens: readonly string[]): LabelledGrid {
  checkScoreGrid(grid, tokens);
  return {
    values: grid.values,
    ...(grid.spread && { spread: grid.spread }),
    rowTitle: "layer",
    colTitle: "position",
    rowLabels: grid.layers.map(String),
    colLabels: grid.positions.map((p) => tokens[p]),
    colKeys: grid.positions,
  };
}

/** The SVG markup of a heat map of a layers × positions `grid`; throws when the grid and its labels disagree. */
export function heatmapSvg(grid: ScoreGrid, options: HeatmapOptions): string {
  const { tokens, markedPositions = [], ...rest } = options;
  const marked = new Set(markedPositions);
  const markedCols = grid.positions.flatMap((p, c) => (marked.has(p) ? [c] : []));
  return gridSvg(labelledGrid(grid, tokens), { ...rest, markedCols });
}

/** The SVG markup of a heat map of any labelled grid. */
export function gridSvg(grid: LabelledGrid, options: GridSvgOptions = {}): string {
  checkGrid(grid);
  const rows = grid.rowLabels.length;
  const cols = grid.colLabels.length;
  const idPrefix = options.idPrefix ?? "heatmap";
  if (!/^[A-Za-z][\w-]*$/.test(idPrefix)) {
    throw new Error(
      `heatmapSvg: idPrefix ${JSON.stringify(idPrefix)} must be a letter followed by letters, digits, "_" or "-"`,
    );
  }
  const scale = options.colorScale ?? colorScaleFor(grid.values, options.hue, options.scale);
  const marked = new Set(options.markedCols ?? []);
  const mark = (c: number) => (marked.has(c) ? "*" : "");
  const columnLabels = grid.colLabels.map((label, c) => displayToken(label) + mark(c));
  const shownLabels = grid.colLabels.map((label, c) => truncate(displayToken(label), MAX_TOKEN_CHARS) + mark(c));
  const tickLabels = legendTicks(scale, Math.max(rows * CELL_HEIGHT, 60));

  // Text is laid out from character counts: an SVG string cannot measure its fonts.
  const sin = Math.sin((LABEL_ANGLE * Math.PI) / 180);
  const longestLabel = Math.max(0, ...shownLabels.map((l) => Array.from(l).length)) * CHAR_WIDTH;
  const labelDrop = Math.ceil(longestLabel * sin + FONT_SIZE);
  const rowLabelWidth = Math.max(...grid.rowLabels.map((l) => Array.from(l).length)) * CHAR_WIDTH;
  // Rotated column labels run down and to the left; the first must not leave the picture.
  const left = Math.ceil(Math.max(PAD + FONT_SIZE + 6 + rowLabelWidth + 6, PAD + longestLabel * sin - CELL_WIDTH / 2));
  const titleHeight = (options.title ? 22 : 0) + (options.subtitle ? 18 : 0);
  const valueLabelHeight = options.valueLabel ? 22 : 0;
  const top = PAD + titleHeight + Math.max(valueLabelHeight, 6);
  const gridWidth = cols * CELL_WIDTH;
  const gridHeight = rows * CELL_HEIGHT;
  const barX = left + gridWidth + COLORBAR_GAP;
  const barHeight = Math.max(gridHeight, 60);
  const tickWidth = Math.max(...tickLabels.map((t) => t.text.length)) * CHAR_WIDTH;
  const textWidth = (text = "") => Array.from(text).length * CHAR_WIDTH;
  const width = Math.ceil(
    Math.max(
      barX + COLORBAR_WIDTH + 5 + tickWidth,
      barX + textWidth(options.valueLabel),
      PAD + textWidth(options.title) * 1.1,
      PAD + textWidth(options.subtitle) * 0.95,
    ) + PAD,
  );
  const height = Math.ceil(top + Math.max(gridHeight + labelDrop + 6, barHeight) + PAD);

  const name = accessibleName(grid, options, scale);
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" class="heatmap" role="img" aria-label="${escapeXml(name)}" ` +
      `width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
      `font-family="sans-serif" font-size="${FONT_SIZE}">`,
  );
  parts.push(`<title>${escapeXml(name)}</title>`);
  parts.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  if (options.title) {
    parts.push(
      `<text class="heatmap-title" x="${PAD}" y="${PAD + 14}" font-size="13" font-weight="bold">` +
        `${escapeXml(options.title)}</text>`,
    );
  }
  if (options.subtitle) {
    const y = PAD + (options.title ? 22 : 0) + 12;
    parts.push(
      `<text class="heatmap-subtitle" x="${PAD}" y="${y}" font-size="11" fill="#555555">` +
        `${escapeXml(options.subtitle)}</text>`,
    );
  }

  parts.push(`<g class="cells">`);
  const what = options.valueLabel ? `${options.valueLabel} = ` : "";
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      const value = grid.values[i];
      const spread = grid.spread ? ` ± ${exactFloat32(grid.spread[i])}` : "";
      const column = grid.colKeys
        ? `${grid.colTitle} ${grid.colKeys[c]} ${JSON.stringify(columnLabels[c])}`
        : `${grid.colTitle} ${columnLabels[c]}`;
      const tip = `${grid.rowTitle} ${grid.rowLabels[r]}, ${column}: ${what}${exactFloat32(value)}${spread}`;
      parts.push(
        `<rect class="cell" data-row="${r}" data-col="${c}" ` +
          `x="${left + c * CELL_WIDTH}" y="${top + r * CELL_HEIGHT}" ` +
          `width="${CELL_WIDTH}" height="${CELL_HEIGHT}" fill="${scale.color(value)}">` +
          `<title>${escapeXml(tip)}</title></rect>`,
      );
    }
  }
  parts.push(`</g>`);

  parts.push(`<g class="row-labels" text-anchor="end">`);
  for (let r = 0; r < rows; r++) {
    parts.push(
      `<text x="${left - 6}" y="${top + r * CELL_HEIGHT + CELL_HEIGHT / 2 + 4}">${escapeXml(grid.rowLabels[r])}</text>`,
    );
  }
  parts.push(`</g>`);
  const axisY = top + gridHeight / 2;
  parts.push(
    `<text class="axis-title" x="${PAD + FONT_SIZE}" y="${axisY}" text-anchor="middle" ` +
      `transform="rotate(-90 ${PAD + FONT_SIZE} ${axisY})">${escapeXml(grid.rowTitle)}</text>`,
  );

  parts.push(`<g class="column-labels" text-anchor="end">`);
  const labelY = top + gridHeight + 10;
  for (let c = 0; c < cols; c++) {
    const x = left + c * CELL_WIDTH + CELL_WIDTH / 2 + 3;
    const text =
      `<text x="${x}" y="${labelY}" transform="rotate(-${LABEL_ANGLE} ${x} ${labelY})">` +
      `${escapeXml(shownLabels[c])}</text>`;
    // Where a label was cut, its group carries the full label as a tooltip
    // (outside the <text>, whose content is the label).
    parts.push(
      shownLabels[c] === columnLabels[c] ? text : `<g><title>${escapeXml(columnLabels[c])}</title>${text}</g>`,
    );
  }
  parts.push(`</g>`);

  parts.push(
    colorbar(scale, tickLabels, {
      x: barX,
      y: top,
      height: barHeight,
      id: `${idPrefix}-scale`,
      valueLabel: options.valueLabel,
    }),
  );
  parts.push(`</svg>`);
  return parts.join("\n");
}

function checkScoreGrid(grid: ScoreGrid, tokens: readonly string[]): void {
  const { rows, cols } = grid;
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1) {
    throw new Error(`heatmapSvg: grid.rows and grid.cols must be positive integers, got ${rows} × ${cols}`);
  }
  if (grid.layers.length !== rows)
    throw new Error(`heatmapSvg: grid.layers must name each of the ${rows} rows, got ${grid.layers.length}`);
  if (grid.positions.length !== cols)
    throw new Error(`heatmapSvg: grid.positions must name each of the ${cols} columns, got ${grid.positions.length}`);
  const bad = grid.positions.find((p) => !Number.isInteger(p) || p < 0 || p >= tokens.length);
  if (bad !== undefined) {
    throw new Error(
      `heatmapSvg: grid position ${bad} has no token; tokens must hold one label per position (got ${tokens.length})`,
    );
  }
}

/** Throws, naming the field, when a grid's values, spread and labels disagree. */
export function checkGrid(grid: LabelledGrid): void {
  const rows = grid.rowLabels?.length;
  const cols = grid.colLabels?.length;
  if (!rows || !cols) {
    throw new Error(
      `heatmapSvg: grid.rowLabels and grid.colLabels must each name at least one row or column, ` +
        `got ${rows ?? "none"} × ${cols ?? "none"}`,
    );
  }
  if (grid.values === undefined) throw new Error("heatmapSvg: grid.values is missing (row-major, rows × cols)");
  for (const key of ["values", "spread"] as const) {
    const length = grid[key]?.length;
    if (length !== undefined && length !== rows * cols) {
      throw new Error(
        `heatmapSvg: grid.${key} must hold rows × cols = ${rows * cols} values (row-major), got ${length}`,
      );
    }
  }
  if (grid.colKeys !== undefined && grid.colKeys.length !== cols)
    throw new Error(`heatmapSvg: grid.colKeys must give each of the ${cols} columns, got ${grid.colKeys.length}`);
  if (typeof grid.rowTitle !== "string" || typeof grid.colTitle !== "string")
    throw new Error('heatmapSvg: grid.rowTitle and grid.colTitle must name the rows and columns, e.g. "layer", "head"');
}

interface Tick {
  offset: number;
  text: string;
}

/**
 * Labels at the scale's ends, and at its centre (zero, or the reference a centred scale is
 * white at); a tick closer than a line of text to one already placed is left out, the ends and
 * the centre first.
 */
function legendTicks(scale: ColorScale, barHeight: number): Tick[] {
  const range = scale.max - scale.min;
  const wanted = [{ offset: 1, text: formatValue(scale.max) }];
  if (scale.center !== undefined && range > 0)
    wanted.push({ offset: (scale.center - scale.min) / range, text: formatValue(scale.center) });
  wanted.push({ offset: 0, text: formatValue(scale.min) });
  const ticks: Tick[] = [];
  for (const tick of wanted) {
    if (ticks.every((t) => Math.abs(t.offset - tick.offset) * barHeight >= FONT_SIZE)) ticks.push(tick);
  }
  return ticks.sort((a, b) => b.offset - a.offset);
}

function colorbar(
  scale: ColorScale,
  ticks: Tick[],
  at: { x: number; y: number; height: number; id: string; valueLabel?: string },
): string {
  const { x, y, height, id } = at;
  const parts = [`<g class="legend">`];
  if (at.valueLabel) parts.push(`<text class="value-label" x="${x}" y="${y - 10}">${escapeXml(at.valueLabel)}</text>`);
  // The gradient runs bottom (min) to top (max), like the axis of a chart.
  parts.push(`<defs><linearGradient id="${id}" x1="0" y1="1" x2="0" y2="0">`);
  for (const stop of scale.stops) parts.push(`<stop offset="${stop.offset}" stop-color="${stop.color}"/>`);
  parts.push(`</linearGradient></defs>`);
  parts.push(
    `<rect class="colorbar" x="${x}" y="${y}" width="${COLORBAR_WIDTH}" height="${height}" ` +
      `fill="url(#${id})" stroke="#888888" stroke-width="0.5"/>`,
  );
  for (const tick of ticks) {
    const ty = y + (1 - tick.offset) * height;
    parts.push(
      `<line x1="${x + COLORBAR_WIDTH}" y1="${ty}" x2="${x + COLORBAR_WIDTH + 3}" y2="${ty}" stroke="#444444"/>`,
    );
    parts.push(`<text class="tick" x="${x + COLORBAR_WIDTH + 5}" y="${ty + 4}">${escapeXml(tick.text)}</text>`);
  }
  parts.push(`</g>`);
  return parts.join("\n");
}

function accessibleName(grid: LabelledGrid, options: GridSvgOptions, scale: ColorScale): string {
  const what = options.valueLabel ?? "value";
  const lead = options.title ? `${options.title}: heat map` : "Heat map";
  const rows = grid.rowLabels;
  const centre = scale.kind === "centred" ? `, white at ${formatValue(scale.center!)}` : "";
  return (
    `${lead} of ${what} over ${rows.length} ${grid.rowTitle}s (${rows[0]}–${rows[rows.length - 1]}) ` +
    `and ${grid.colLabels.length} ${grid.colTitle}s; ` +
    `colour scale from ${formatValue(scale.min)} to ${formatValue(scale.max)}${centre}`
  );
}
