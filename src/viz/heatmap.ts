/**
 * A ScoreGrid as a standalone SVG heat map: one row per layer, one column per position labelled
 * with its token, a colour bar, and each cell's exact value in its <title> for hover and screen
 * readers. No scripts, fonts or other external assets, so it works pasted into any page.
 */
import type { ScoreGrid } from "../sweeps/results.js";
import { colorScaleFor, type ColorScale, type Hue } from "./color-scale.js";
import { displayToken, escapeXml, exactFloat32, formatValue, truncate } from "./format.js";

export interface HeatmapOptions {
  /** The prompt's tokens, one per position; column c is labelled tokens[grid.positions[c]]. */
  tokens: readonly string[];
  /** Heading drawn above the grid; also the start of the accessible name. */
  title?: string;
  /** What the values are, e.g. "p(Paris)": written over the colour bar and in each cell's title. */
  valueLabel?: string;
  /** Positions to mark with "*" after the token (ROME marks the corrupted subject this way). */
  markedPositions?: readonly number[];
  /** Hue of the sequential scale. Default purple. */
  hue?: Hue;
  /** Force a scale; by default diverging when values straddle zero, else sequential. */
  scale?: ColorScale["kind"];
  /** Prefix for ids inside the SVG (the legend gradient); distinct per heat map on one page. */
  idPrefix?: string;
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

/** The SVG markup of a heat map of `grid`; throws when the grid and its labels disagree. */
export function heatmapSvg(grid: ScoreGrid, options: HeatmapOptions): string {
  checkGrid(grid, options.tokens);
  const idPrefix = options.idPrefix ?? "heatmap";
  if (!/^[A-Za-z][\w-]*$/.test(idPrefix)) {
    throw new Error(
      `heatmapSvg: idPrefix ${JSON.stringify(idPrefix)} must be a letter followed by letters, digits, "_" or "-"`,
    );
  }
  const scale = colorScaleFor(grid.values, options.hue, options.scale);
  const marked = new Set(options.markedPositions ?? []);
  const mark = (p: number) => (marked.has(p) ? "*" : "");
  const columnLabels = grid.positions.map((p) => displayToken(options.tokens[p]) + mark(p));
  const shownLabels = grid.positions.map((p) => truncate(displayToken(options.tokens[p]), MAX_TOKEN_CHARS) + mark(p));
  const tickLabels = legendTicks(scale);

  // Text is laid out from character counts: an SVG string cannot measure its fonts.
  const sin = Math.sin((LABEL_ANGLE * Math.PI) / 180);
  const longestLabel = Math.max(0, ...shownLabels.map((l) => Array.from(l).length)) * CHAR_WIDTH;
  const labelDrop = Math.ceil(longestLabel * sin + FONT_SIZE);
  const rowLabelWidth = Math.max(...grid.layers.map((l) => String(l).length)) * CHAR_WIDTH;
  // Rotated token labels run down and to the left; the first must not leave the picture.
  const left = Math.ceil(Math.max(PAD + FONT_SIZE + 6 + rowLabelWidth + 6, PAD + longestLabel * sin - CELL_WIDTH / 2));
  const titleHeight = options.title ? 22 : 0;
  const valueLabelHeight = options.valueLabel ? 22 : 0;
  const top = PAD + titleHeight + Math.max(valueLabelHeight, 6);
  const gridWidth = grid.cols * CELL_WIDTH;
  const gridHeight = grid.rows * CELL_HEIGHT;
  const barX = left + gridWidth + COLORBAR_GAP;
  const barHeight = Math.max(gridHeight, 60);
  const tickWidth = Math.max(...tickLabels.map((t) => t.text.length)) * CHAR_WIDTH;
  const valueLabelWidth = options.valueLabel ? Array.from(options.valueLabel).length * CHAR_WIDTH : 0;
  const width = Math.ceil(Math.max(barX + COLORBAR_WIDTH + 5 + tickWidth, barX + valueLabelWidth) + PAD);
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

  parts.push(`<g class="cells">`);
  for (let r = 0; r < grid.rows; r++) {
    for (let c = 0; c < grid.cols; c++) {
      const value = grid.values[r * grid.cols + c];
      const what = options.valueLabel ? `${options.valueLabel} = ` : "";
      const tip =
        `layer ${grid.layers[r]}, position ${grid.positions[c]} ${JSON.stringify(columnLabels[c])}: ` +
        `${what}${exactFloat32(value)}`;
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
  for (let r = 0; r < grid.rows; r++) {
    parts.push(`<text x="${left - 6}" y="${top + r * CELL_HEIGHT + CELL_HEIGHT / 2 + 4}">${grid.layers[r]}</text>`);
  }
  parts.push(`</g>`);
  const axisY = top + gridHeight / 2;
  parts.push(
    `<text class="axis-title" x="${PAD + FONT_SIZE}" y="${axisY}" text-anchor="middle" ` +
      `transform="rotate(-90 ${PAD + FONT_SIZE} ${axisY})">layer</text>`,
  );

  parts.push(`<g class="column-labels" text-anchor="end">`);
  const labelY = top + gridHeight + 10;
  for (let c = 0; c < grid.cols; c++) {
    const x = left + c * CELL_WIDTH + CELL_WIDTH / 2 + 3;
    const text =
      `<text x="${x}" y="${labelY}" transform="rotate(-${LABEL_ANGLE} ${x} ${labelY})">` +
      `${escapeXml(shownLabels[c])}</text>`;
    // Where a label was cut, its group carries the full token as a tooltip
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

function checkGrid(grid: ScoreGrid, tokens: readonly string[]): void {
  const { rows, cols } = grid;
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1) {
    throw new Error(`heatmapSvg: grid.rows and grid.cols must be positive integers, got ${rows} × ${cols}`);
  }
  if (grid.values.length !== rows * cols) {
    throw new Error(
      `heatmapSvg: grid.values must hold rows × cols = ${rows * cols} values (row-major), got ${grid.values.length}`,
    );
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

interface Tick {
  offset: number;
  text: string;
}

/** Labels at the scale's ends, and at zero on a diverging scale. */
function legendTicks(scale: ColorScale): Tick[] {
  const ticks: Tick[] = [{ offset: 1, text: formatValue(scale.max) }];
  if (scale.kind === "diverging") ticks.push({ offset: 0.5, text: "0" });
  ticks.push({ offset: 0, text: formatValue(scale.min) });
  return ticks;
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

function accessibleName(grid: ScoreGrid, options: HeatmapOptions, scale: ColorScale): string {
  const what = options.valueLabel ?? "value";
  const lead = options.title ? `${options.title}: heat map` : "Heat map";
  return (
    `${lead} of ${what} over ${grid.rows} layers (${grid.layers[0]}–${grid.layers[grid.rows - 1]}) ` +
    `and ${grid.cols} positions; ` +
    `colour scale from ${formatValue(scale.min)} to ${formatValue(scale.max)}`
  );
}
