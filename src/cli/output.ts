/**
 * Where results go: a text summary on stdout for people, JSON on stdout with --json, JSON in a
 * file with --out. Score grids print as a compact table of layers × tokens with the best cell
 * marked, and go into JSON as 2-D arrays with their row and column labels.
 */
import type { ScoreGrid } from "../sweeps/results.js";
import { formatScore } from "../viz/format.js";
import { toJson } from "../viz/grid-json.js";
import type { LabelledGrid } from "../viz/index.js";
import { textFile, writeOutputs, type OutputFile } from "./files.js";

export { formatScore } from "../viz/format.js";
export { gridJson, scoreGridJson, toJson } from "../viz/grid-json.js";

/**
 * Writes the command's files (its other outputs, and the JSON to --out when given) all or nothing,
 * then prints `text` (or the JSON with --json): nothing is printed as done unless every file is.
 */
export async function emit(
  result: unknown,
  text: string,
  options: { json?: boolean; out?: string },
  files: readonly OutputFile[] = [],
): Promise<void> {
  const json = toJson(result);
  const out = options.out === undefined ? [] : [textFile("--out", options.out, `${json}\n`)];
  await writeOutputs([...files, ...out]);
  process.stdout.write(options.json ? `${json}\n` : text);
}

/** A short, one-line form of a token for table headers: whitespace made visible, long tokens cut. */
export function shortLabel(token: string, width = 8): string {
  const visible = token.replace(/\n/g, "\\n").replace(/\t/g, "\\t").replace(/^ /, "·");
  return visible.length > width ? `${visible.slice(0, width - 1)}…` : visible;
}

/** The cell with the highest score: its row, column and value. */
export function bestCell(grid: ScoreGrid): { row: number; col: number; value: number } {
  let best = 0;
  for (let i = 1; i < grid.values.length; i++) if (grid.values[i] > grid.values[best]) best = i;
  return { row: Math.floor(best / grid.cols), col: best % grid.cols, value: grid.values[best] };
}

/**
 * A table with one row per layer and one column per position, headed by the tokens. Columns
 * marked in `highlight` (e.g. corrupted positions) get a "*" after their label; the best cell
 * is marked with ">" before its value.
 */
export function gridTable(grid: ScoreGrid, tokens: readonly string[], highlight: readonly number[] = []): string {
  const best = bestCell(grid);
  const cells = (row: number) =>
    grid.positions.map((_, c) => {
      const v = grid.values[row * grid.cols + c];
      return (row === best.row && c === best.col ? ">" : "") + formatScore(v);
    });
  const headers = grid.positions.map((p) => shortLabel(tokens[p] ?? String(p)) + (highlight.includes(p) ? "*" : ""));
  const body = grid.layers.map((_, r) => cells(r));
  const widths = headers.map((h, c) => Math.max(h.length, ...body.map((row) => row[c].length)));
  const layerWidth = Math.max("layer".length, ...grid.layers.map((l) => String(l).length));
  const line = (first: string, row: string[]) =>
    [first.padStart(layerWidth), ...row.map((s, c) => s.padStart(widths[c]))].join("  ");
  return `${[line("layer", headers), ...body.map((row, r) => line(String(grid.layers[r]), row))].join("\n")}\n`;
}

/**
 * A table of any labelled grid: one line per row, headed by the column labels. Columns in
 * `markedCols` get a "*" after their label; the best cell (the largest value, or with
 * `best: "magnitude"` the largest in size; none with "none") is marked with ">" before its value.
 * `cell` writes a cell's text (default: its value).
 */
export function labelledTable(
  grid: LabelledGrid,
  options: {
    markedCols?: readonly number[];
    best?: "max" | "magnitude" | "none";
    cell?: (row: number, col: number) => string;
  } = {},
): string {
  const cols = grid.colLabels.length;
  const best = options.best === "none" ? -1 : bestIndex(grid.values, options.best ?? "max");
  const format = options.cell ?? ((r: number, c: number) => formatScore(grid.values[r * cols + c]));
  const headers = grid.colLabels.map(
    (label, c) => shortLabel(label, 10) + (options.markedCols?.includes(c) ? "*" : ""),
  );
  const body = grid.rowLabels.map((_, r) =>
    Array.from({ length: cols }, (_, c) => (r * cols + c === best ? ">" : "") + format(r, c)),
  );
  const widths = headers.map((h, c) => Math.max(h.length, ...body.map((row) => row[c].length)));
  const firstWidth = Math.max(grid.rowTitle.length, ...grid.rowLabels.map((l) => l.length));
  const line = (first: string, row: string[]) =>
    [first.padStart(firstWidth), ...row.map((s, c) => s.padStart(widths[c]))].join("  ");
  return `${[line(grid.rowTitle, headers), ...body.map((row, r) => line(grid.rowLabels[r], row))].join("\n")}\n`;
}

/** The best cell of a labelled grid: its row and column labels and value, as one line of text. */
export function bestCellLine(grid: LabelledGrid, best: "max" | "magnitude" = "max"): string {
  const i = bestIndex(grid.values, best);
  const cols = grid.colLabels.length;
  const col = i % cols;
  const colText = grid.colKeys
    ? `${grid.colTitle} ${grid.colKeys[col]} ${JSON.stringify(grid.colLabels[col])}`
    : `${grid.colTitle} ${grid.colLabels[col]}`;
  return `${grid.rowTitle} ${grid.rowLabels[Math.floor(i / cols)]}, ${colText}: ${formatScore(grid.values[i])}`;
}

function bestIndex(values: ArrayLike<number>, best: "max" | "magnitude"): number {
  const score = (v: number) => (Number.isFinite(v) ? (best === "max" ? v : Math.abs(v)) : -Infinity);
  let index = 0;
  for (let i = 1; i < values.length; i++) if (score(values[i]) > score(values[index])) index = i;
  return index;
}
