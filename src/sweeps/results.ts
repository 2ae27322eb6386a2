/**
 * What sweeps return: typed arrays of scores with the labels that say what each cell is, ready
 * for JSON output and heat maps. Grids are row-major [rows × cols]; rows are layers.
 */

export interface ScoreGrid {
  /** Row-major values, rows × cols. */
  values: Float32Array;
  rows: number;
  cols: number;
  /** Layer of each row. */
  layers: number[];
  /** Position of each column. */
  positions: number[];
  /** Per cell, the standard deviation over noise draws (causal tracing), row-major like `values`. */
  spread?: Float32Array;
}

/** ROME's three components (hidden states, MLP, attention); a trace may be of any per-position component. */
export type TraceComponent = "block_output" | "mlp_output" | "attention_output";

/** ROME-style causal tracing: the metric when one site of the corrupted run is restored from the clean run. */
export interface TraceResult {
  kind: "trace";
  component: string;
  /** Layers restored together around each layer (1 = the layer alone; ROME uses 10 for MLP/attention). */
  window: number;
  /** The prompt's tokens, one label per position. */
  tokens: string[];
  /** Positions whose input embeddings were corrupted. */
  corruptedPositions: number[];
  /** The token whose probability (or logit) is measured at the last position. */
  target: number;
  targetLabel: string;
  metric: "probability" | "logit";
  /** Standard deviation of the embedding noise; null when the caller gave the noise itself. */
  noiseStd: number | null;
  /** Seed of the noise draws; null when the caller gave the noise itself. */
  seed: number | null;
  /** Noise draws averaged: `corrupted` and every cell are means over them. */
  samples: number;
  clean: number;
  corrupted: number;
  /** Standard deviation of the corrupted run's metric over the draws (n − 1 divisor; 0 for one draw). */
  corruptedSpread: number;
  /** Means over the draws; `grid.spread` holds each cell's standard deviation over them. */
  grid: ScoreGrid;
}

/** Activation patching: the metric on the base run when one site takes its value from the source run. */
export interface PatchResult {
  kind: "patch";
  component: string;
  baseTokens: string[];
  sourceTokens: string[];
  target: number;
  targetLabel: string;
  metric: "probability" | "logit";
  base: number;
  source: number;
  grid: ScoreGrid;
}

/** Activations collected over a dataset: per layer, [examples, positions, width]. */
export interface CollectResult {
  kind: "collect";
  component: string;
  layers: number[];
  /** One entry per layer: shape [examples, positions, width] and its values. */
  activations: { layer: number; shape: number[]; values: Float32Array }[];
}

/** One head grid: row-major [layers × heads] of the metric with that head patched. */
export interface HeadGrid {
  values: Float32Array;
  rows: number;
  cols: number;
  /** Layer of each row. */
  layers: number[];
  /** Head of each column. */
  heads: number[];
  /** The position patched, or null when each cell patches every position of its head. */
  position: number | null;
}

/** Head patching: the metric on the base run when one head (at one position, or all) takes its source value. */
export interface HeadPatchResult {
  kind: "heads";
  component: string;
  positions: "all" | "each";
  baseTokens: string[];
  sourceTokens: string[];
  target: number;
  targetLabel: string;
  metric: "probability" | "logit";
  base: number;
  source: number;
  /** positions "all": one grid (position null); "each": one grid per position, in order. */
  grids: HeadGrid[];
}

/** A head at a layer (sender of a path). */
export interface HeadSite {
  layer: number;
  head: number;
}

/** A component at a layer (receiver of a path). */
export interface ComponentSite {
  layer: number;
  component: string;
}

/** Path patching: the metric when only the senders' effect through the receivers is taken from the source run. */
export interface PathPatchResult {
  kind: "path";
  /** The component whose heads send (and are frozen everywhere else): head_attention_value_output. */
  senderComponent: string;
  senders: HeadSite[];
  receivers: ComponentSite[];
  baseTokens: string[];
  sourceTokens: string[];
  target: number;
  targetLabel: string;
  metric: "probability" | "logit";
  base: number;
  source: number;
  /** The base run with the receivers patched to their values in the sender-patched run. */
  patched: number;
}
