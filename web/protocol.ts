/**
 * The messages between the page (app.ts) and the worker that runs tsvene (worker.ts). Every
 * request carries an id; the worker answers it with progress messages, then one result or error.
 */

/** Where a model comes from: the embedded one (served beside the page), dropped files, a Hub id. */
export type ModelSource = { kind: "default" } | { kind: "files"; files: File[] } | { kind: "hub"; id: string };

export interface TraceRequest {
  kind: "trace";
  prompt: string;
  subject: string;
  /** A component of the model, or "all" for ROME's three. */
  component: string;
  samples: number;
  seed: number;
  window: number;
  /** Noise standard deviation; null for ROME's default (3 × the embeddings' std). */
  noise: number | null;
}

export interface PatchRequest {
  kind: "patch";
  base: string;
  source: string;
  component: string;
}

export interface LensRequest {
  kind: "lens";
  prompt: string;
}

export interface HeadsRequest {
  kind: "heads";
  base: string;
  source: string;
  /** A head component, e.g. head_attention_value_output. */
  component: string;
  /** "all": each head patched at every position (one map); "each": one map per position. */
  positions: "all" | "each";
}

/** The run behind one cell of a trace or patch map (the sweep's request, one component), recomputed alone. */
export interface CellRequest {
  kind: "cell";
  of: TraceRequest | PatchRequest;
  layer: number;
  position: number;
}

export type WorkRequest =
  | { kind: "load"; source: ModelSource }
  | TraceRequest
  | PatchRequest
  | LensRequest
  | HeadsRequest
  | CellRequest;

/** What the page knows about the loaded model. */
export interface ModelInfo {
  name: string;
  family: string;
  layers: number;
  /** Components a trace or patch can restore at each position. */
  components: string[];
  /** Components split into attention heads, for head patching. */
  headComponents: string[];
  /** The example prompt and subject of the model's facts.json, when it has one. */
  demo: { prompt: string; subject: string } | null;
}

/** What computes: the kernel set (tv.kernels().name) and the threads its GEMM runs on. */
export interface Engine {
  kernels: string;
  threads: number;
}

/** A token of a run's prediction and its probability. */
export interface TopToken {
  token: string;
  probability: number;
}

/**
 * One heat map to draw, and how a clicked cell's top tokens are found: listed per cell (row-major)
 * when the sweep gave them, or recomputed from `cellRun` (the map's own request) when asked.
 */
export interface Panel {
  heading: string;
  svg: string;
  /** Columns of the map, to find a clicked cell (data-row, data-col) in cellTopTokens. */
  cols: number;
  cellTopTokens?: TopToken[][];
  cellRun?: TraceRequest | PatchRequest;
}

/** A recomputed cell's run: what it is, and its top tokens. */
export interface CellAnswer {
  about: string;
  top: TopToken[];
}

/** A finished sweep: the JSON the CLI's --json prints, the CLI's HTML report, the maps to draw. */
export interface SweepAnswer {
  summary: string;
  json: unknown;
  reportHtml: string;
  panels: Panel[];
}

export type WorkerMessage =
  | { id: number; type: "progress"; done: number; total: number; label: string }
  | { id: number; type: "loaded"; info: ModelInfo; engine: Engine }
  | { id: number; type: "result"; answer: SweepAnswer }
  | { id: number; type: "cell"; cell: CellAnswer }
  | { id: number; type: "error"; message: string };
