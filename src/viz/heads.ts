/**
 * Head patching as it is shown: its grids labelled layers × heads, the JSON `tsvene heads --json`
 * prints and the page downloads, and the HTML report (`tsvene heads --report`, the page's download).
 */
import type { HeadGrid, HeadPatchResult } from "../sweeps/results.js";
import { differingPositions, formatScore } from "./format.js";
import { gridJson } from "./grid-json.js";
import { gridReport, type GridPanel } from "./grid-report.js";
import type { LabelledGrid } from "./heatmap.js";

/** The prompts a head patching ran on, and the model's name. */
export interface HeadsRun {
  model: string;
  base: string;
  source: string;
}

/** A layers × heads grid of head patching as a labelled grid (rows layers, columns heads). */
export function headLabelledGrid(grid: HeadGrid): LabelledGrid {
  return {
    values: grid.values,
    rowTitle: "layer",
    colTitle: "head",
    rowLabels: grid.layers.map(String),
    colLabels: grid.heads.map(String),
  };
}

/** The result for JSON: what it ran on, the result, the differing positions, and each grid as labelled rows. */
export function headsResultJson(r: HeadPatchResult, run: HeadsRun) {
  const { kind, grids, ...rest } = r;
  return {
    kind,
    model: run.model,
    basePrompt: run.base,
    sourcePrompt: run.source,
    ...rest,
    differingPositions: differingPositions(r.baseTokens, r.sourceTokens),
    grids: grids.map((g) => ({ position: g.position, ...gridJson(headLabelledGrid(g)) })),
  };
}

/** What a grid's cells are: each head patched at every position, or at one position. */
export function headGridHeading(r: HeadPatchResult, g: HeadGrid): string {
  return g.position === null
    ? "each head patched at every position"
    : `each head patched at position ${g.position} ${JSON.stringify(r.baseTokens[g.position])}`;
}

/** What a cell's value is, e.g. "p(Rome)". */
export function headsValueLabel(r: HeadPatchResult): string {
  return `${r.metric === "probability" ? "p" : "logit"}(${r.targetLabel})`;
}

/** The HTML report: the run's fields, then a heat map per grid, white at the base run's value. */
export function headsReport(r: HeadPatchResult, run: HeadsRun): string {
  const value = headsValueLabel(r);
  const panels: GridPanel[] = r.grids.map((g) => ({
    grid: headLabelledGrid(g),
    heading: `${value} with ${headGridHeading(r, g)}`,
    valueLabel: value,
    reference: r.base,
    referenceName: "base",
    caption: `Each cell: the base run with that layer's head ${r.component} taken from the source run.`,
  }));
  return gridReport({
    title: "Head patching",
    tokens: r.baseTokens,
    markedPositions: differingPositions(r.baseTokens, r.sourceTokens),
    fields: [
      ["model", run.model],
      ["base", run.base],
      ["source", run.source],
      ["component", r.component],
      ["measured", `${r.metric} of ${JSON.stringify(r.targetLabel)} (token ${r.target}) at the last position`],
      ["base run", formatScore(r.base)],
      ["source run", formatScore(r.source)],
    ],
    panels,
  });
}
