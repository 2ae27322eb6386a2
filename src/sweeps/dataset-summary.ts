/**
 * The aggregate of a dataset sweep: for each layer and aligned column, the mean over examples and
 * its spread (standard deviation, n − 1 divisor). Prompts differ in length, so columns are not
 * positions but roles a position plays in every prompt:
 * - trace: ROME's six token groups (Meng et al. 2022, average indirect effect): the first, middle
 *   and last subject tokens, the first token after the subject, the further tokens, the last token.
 *   An example contributes to a group the mean of its positions in the group; tokens before the
 *   subject belong to none; a one-token subject is both first and last; a token right after the
 *   subject that is also the prompt's last counts as the last token only.
 * - patch: position counted back from the last token ("last", "last-1", …), which lines up prompts
 *   of any length at the position the metric is read from.
 * `counts` says how many examples each column's mean is over; a column no example has is NaN.
 */
import type { ExampleResult } from "./dataset.js";
import type { CollectResult, PatchResult, ScoreGrid, TraceResult } from "./results.js";

/** Mean and spread over examples, row-major [layers × columns], with what the rows and columns are. */
export interface MeanMap {
  rowTitle: "layer";
  colTitle: string;
  rowLabels: string[];
  colLabels: string[];
  values: Float64Array;
  spread: Float64Array;
  /** Per column, how many examples have it. */
  counts: number[];
}

export interface MeanSpread {
  mean: number;
  spread: number;
}

export interface GridSweepSummary {
  kind: "trace" | "patch";
  examples: number;
  component: string;
  metric: string;
  /** How columns line up across prompts of different lengths. */
  alignment: string;
  /** The runs' own scores over examples: clean and corrupted (trace), base and source (patch). */
  scores: Record<string, MeanSpread>;
  map: MeanMap;
}

export interface CollectSweepSummary {
  kind: "collect";
  examples: number;
  component: string;
  layers: number[];
  /** Real tokens of each example (activations are padded on the right to the longest). */
  lengths: number[];
  width: number;
}

export type SweepSummary = GridSweepSummary | CollectSweepSummary;

/** ROME's groups, short enough for a table header; `alignment` spells them out. */
const ROME_GROUPS = ["subj first", "subj mid", "subj last", "next", "further", "last"] as const;

export function summarizeSweep(results: readonly ExampleResult[]): SweepSummary {
  const first = results[0];
  if (first === undefined) throw new RangeError("summarizeSweep: no results to summarize");
  if (results.some((r) => r.kind !== first.kind)) throw new RangeError("summarizeSweep: results of mixed kinds");
  if (first.kind === "collect") return summarizeCollect(results as CollectResult[]);
  if (first.kind === "trace") {
    const traces = results as TraceResult[];
    return {
      kind: "trace",
      examples: traces.length,
      component: first.component,
      metric: first.metric,
      alignment:
        "ROME's token groups: the first, middle and last subject tokens (subj first, subj mid, subj last), " +
        "the first token after the subject (next), the tokens after it (further), the last token (last)",
      scores: { clean: meanSpread(traces.map((r) => r.clean)), corrupted: meanSpread(traces.map((r) => r.corrupted)) },
      map: meanMap(
        traces.map((r) => ({ grid: r.grid, columns: romeGroups(r.corruptedPositions, r.tokens.length) })),
        "token group",
        [...ROME_GROUPS],
      ),
    };
  }
  const patches = results as PatchResult[];
  const longest = Math.max(...patches.map((r) => r.baseTokens.length));
  const labels = Array.from({ length: longest }, (_, c) => {
    const back = longest - 1 - c;
    return back === 0 ? "last" : `last-${back}`;
  });
  return {
    kind: "patch",
    examples: patches.length,
    component: first.component,
    metric: first.metric,
    alignment: "position counted back from the last token",
    scores: { base: meanSpread(patches.map((r) => r.base)), source: meanSpread(patches.map((r) => r.source)) },
    map: meanMap(
      patches.map((r) => {
        const length = r.baseTokens.length;
        const columns = labels.map((_, c) => {
          const position = length - longest + c;
          return position >= 0 ? [position] : [];
        });
        return { grid: r.grid, columns };
      }),
      "position from the end",
      labels,
    ),
  };
}

/** The positions in each of ROME's groups, for a prompt of `length` tokens whose subject is at `subject`. */
export function romeGroups(subject: readonly number[], length: number): number[][] {
  const sorted = [...subject].sort((a, b) => a - b);
  const start = sorted[0];
  const end = sorted[sorted.length - 1];
  const last = length - 1;
  const between = (from: number, to: number) => Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
  return [[start], sorted.slice(1, -1), [end], end + 1 < last ? [end + 1] : [], between(end + 2, last), [last]];
}

/** Per layer and column: each example's mean over its positions in the column, then mean and spread over examples. */
function meanMap(
  examples: readonly { grid: ScoreGrid; columns: number[][] }[],
  colTitle: string,
  colLabels: string[],
): MeanMap {
  const layers = examples[0].grid.layers;
  const cols = colLabels.length;
  const perCell: number[][] = Array.from({ length: layers.length * cols }, () => []);
  for (const { grid, columns } of examples) {
    if (grid.layers.join() !== layers.join())
      throw new RangeError("summarizeSweep: the examples' grids cover different layers");
    const colOf = new Map(grid.positions.map((p, c) => [p, c]));
    columns.forEach((positions, c) => {
      const present = positions.filter((p) => colOf.has(p));
      if (present.length === 0) return;
      for (let row = 0; row < layers.length; row++) {
        const sum = present.reduce((a, p) => a + grid.values[row * grid.cols + colOf.get(p)!], 0);
        perCell[row * cols + c].push(sum / present.length);
      }
    });
  }
  const cells = perCell.map(meanSpread);
  return {
    rowTitle: "layer",
    colTitle,
    rowLabels: layers.map(String),
    colLabels,
    values: Float64Array.from(cells, (c) => c.mean),
    spread: Float64Array.from(cells, (c) => c.spread),
    counts: colLabels.map((_, c) => perCell[c].length),
  };
}

/** Mean and standard deviation (n − 1 divisor, 0 for one value, NaN for none). */
export function meanSpread(values: readonly number[]): MeanSpread {
  const n = values.length;
  if (n === 0) return { mean: NaN, spread: NaN };
  const mean = values.reduce((a, v) => a + v, 0) / n;
  const squares = values.reduce((a, v) => a + (v - mean) * (v - mean), 0);
  return { mean, spread: n > 1 ? Math.sqrt(squares / (n - 1)) : 0 };
}

function summarizeCollect(results: readonly CollectResult[]): CollectSweepSummary {
  const first = results[0];
  return {
    kind: "collect",
    examples: results.length,
    component: first.component,
    layers: first.layers,
    lengths: results.map((r) => r.activations[0].shape[1]),
    width: first.activations[0].shape[2],
  };
}

/**
 * The collected activations of every example in one [examples, longest, width] array per layer,
 * padded on the right with zeros (the summary's `lengths` says which positions are real).
 */
export function stackActivations(results: readonly CollectResult[]): CollectResult["activations"] {
  const longest = Math.max(...results.map((r) => r.activations[0].shape[1]));
  return results[0].activations.map(({ layer, shape }, i) => {
    const width = shape[2];
    const values = new Float32Array(results.length * longest * width);
    results.forEach((r, e) => values.set(r.activations[i].values, e * longest * width));
    return { layer, shape: [results.length, longest, width], values };
  });
}
