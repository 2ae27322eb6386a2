/**
 * Sweep results as JSON, the form `tsvene … --json` prints and the page downloads: grids as one
 * array per row with what the rows and columns are, numbers as the shortest decimal that reads
 * back as the same float32 (NaN as null), typed arrays as plain arrays.
 */
import type { PatchResult, ScoreGrid, TraceResult } from "../sweeps/results.js";
import { differingPositions, exactFloat32 } from "./format.js";
import { labelledGrid, type LabelledGrid } from "./heatmap.js";

/** JSON with typed arrays (grid values, shapes) written as plain arrays. */
export function toJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_key, v: unknown) => (ArrayBuffer.isView(v) && !(v instanceof DataView) ? Array.from(v as Float32Array) : v),
    2,
  );
}

/** A grid for JSON: values (and spread) as one array per row, with what the rows and columns are. */
export function gridJson(grid: LabelledGrid) {
  const cols = grid.colLabels.length;
  const byRow = (flat: ArrayLike<number>) =>
    grid.rowLabels.map((_, r) => Array.from({ length: cols }, (_, c) => jsonNumber(flat[r * cols + c])));
  return {
    rowTitle: grid.rowTitle,
    colTitle: grid.colTitle,
    rowLabels: grid.rowLabels,
    colLabels: grid.colLabels,
    values: byRow(grid.values),
    ...(grid.spread && { spread: byRow(grid.spread) }),
  };
}

/** A layers × positions grid for JSON: gridJson's form, its columns labelled by their tokens, plus the indices. */
export function scoreGridJson(grid: ScoreGrid, tokens: readonly string[]) {
  return { layers: grid.layers, positions: grid.positions, ...gridJson(labelledGrid(grid, tokens)) };
}

/** A trace for JSON: what it ran on (model, prompt, subject), then the result with its grid as labelled rows. */
export function traceResultJson(r: TraceResult, run: { model: string; prompt: string; subject: string }) {
  const { kind, grid, ...rest } = r;
  return { kind, ...run, ...rest, grid: scoreGridJson(grid, r.tokens) };
}

/** A patching for JSON: what it ran on, the result, where the prompts differ, its grid as labelled rows. */
export function patchResultJson(r: PatchResult, run: { model: string; basePrompt: string; sourcePrompt: string }) {
  const { kind, grid, ...rest } = r;
  return {
    kind,
    ...run,
    ...rest,
    differingPositions: differingPositions(r.baseTokens, r.sourceTokens),
    grid: scoreGridJson(grid, r.baseTokens),
  };
}

function jsonNumber(value: number): number | null {
  return Number.isFinite(value) ? Number(exactFloat32(value)) : null;
}
