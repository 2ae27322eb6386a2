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
}

export type TraceComponent = "block_output" | "mlp_output" | "attention_output";

/** ROME-style causal tracing: the metric when one site of the corrupted run is restored from the clean run. */
export interface TraceResult {
  kind: "trace";
  component: TraceComponent;
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
  /** Noise draws averaged: `corrupted` and every cell are means over them. */
  samples: number;
  clean: number;
  corrupted: number;
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
