/**
 * The grid of a restoring sweep (causal tracing, activation patching): for each patched run (each
 * noise draw's corrupted run, or the base run), layer l and position p, the patched run with the
 * restored run's (clean or source) component written at position p at every layer of l's window,
 * measured at the last position.
 *
 * A pass computes many cells as the rows of one batch, block by block: the patched runs and the
 * restored run themselves, and one row per cell, which joins at the first layer of its window from
 * its patched run's row there (a block_output restored at that layer is the next block's input, so
 * that row joins one block later with the value written in: the block it skips would only
 * recompute the patched run); the values written come from the restored run's row of the same
 * block. A row restored at position p equals its patched run before p (the causal mask), so those
 * slots are borrowed from the patched run's row, and the blocks' linear stages run on the own
 * slots of all rows stacked (row-packing.ts): about the work of computing each cell alone from its
 * first changed position, in GEMMs of hundreds of rows, with one pass over the weights per block.
 * A prompt too long for one pass is split into passes of consecutive positions, each computed from
 * its first position on over the recorded runs' keys and values before it.
 */
import { gatherUnits, scatterUnits, writeSite } from "../intervene/index.js";
import type { DecoderModel } from "../models/decoder.js";
import type { KeyValueCache } from "../nn/attention.js";
import type { HookHandle } from "../nn/module.js";
import * as tv from "../tensor/index.js";
import { IntTensor, Tensor } from "../tensor/index.js";
import {
  byPosition,
  type Corruption,
  measure,
  type Metric,
  type RecordedRun,
  recordRun,
  topToken,
  windowLayers,
} from "./engine.js";
import type { ScoreGrid } from "./results.js";
import {
  type LinearStages,
  linearStages,
  type PackedStage,
  packInputs,
  RaggedRows,
  unpackOutputs,
} from "./row-packing.js";

/** What a restoring sweep needs: the prompts, the patched runs, what is restored where, and what is measured. */
export interface GridRequest {
  model: DecoderModel;
  /** The patched runs' prompt [1, T]. */
  inputIds: IntTensor;
  component: string;
  window: number;
  /**
   * One patched run per entry: the prompt with this corruption (tracing: one per noise draw, all
   * at the same positions) or as it is (null; patching).
   */
  patched: readonly (Corruption | null)[];
  /** The run the written values come from (the clean or the source run): its prompt [1, T], or the run recorded. */
  restored: IntTensor | RecordedRun;
  /** The token measured; null for the restored run's top token at the last position. */
  target: number | null;
  metric: Metric;
  onProgress?: (done: number, total: number) => void;
  /** Packed positions at the last block above which a pass is split (default PASS_POSITIONS). */
  passPositions?: number;
}

export interface GridScores {
  /** Per patched run, its grid (layers × positions, row-major). */
  grids: Float32Array[];
  /** Per patched run, the metric of the run itself. */
  patched: Float32Array;
  /** The metric of the restored run. */
  restored: number;
  target: number;
}

/**
 * GEMMs run near their peak from a few hundred rows on; above this many packed positions a pass
 * gains nothing from being larger and only holds more memory, so it is split.
 */
const PASS_POSITIONS = 2048;

/** A grid's values (layers × positions, row-major) with its axes. */
export function scoreGrid(values: Float32Array, numLayers: number, length: number): ScoreGrid {
  return {
    values,
    rows: numLayers,
    cols: length,
    layers: Array.from({ length: numLayers }, (_, l) => l),
    positions: Array.from({ length }, (_, p) => p),
  };
}

/** Every patched run's grid and metric, the restored run's metric and the target measured. */
export function restoreGrids(request: GridRequest): GridScores {
  const { model, inputIds, patched, metric } = request;
  const length = inputIds.shape[1];
  const numLayers = model.numLayers;
  const corrupted = patched.filter((c) => c !== null);
  if (corrupted.length > 0 && corrupted.length < patched.length)
    throw new RangeError("restoreGrids: the patched runs must all be corrupted, or none");
  if (corrupted.some((c) => c.positions.join() !== corrupted[0].positions.join()))
    throw new RangeError("restoreGrids: every corruption must be at the same positions");
  const plan = gridPlan(request);
  const passes = planPasses(length, plan.running, patched.length, request.passPositions ?? PASS_POSITIONS);
  // The restored run rides along as a row of each pass when all start at position 0; else it is recorded first.
  let recorded = request.restored instanceof IntTensor ? null : request.restored;
  if (request.restored instanceof IntTensor && passes.some((pass) => pass.start > 0))
    recorded = recordRun(model, { inputIds: request.restored }, request.component, null);
  let target = request.target ?? (recorded ? topToken(recorded.logits) : null);
  const grids = patched.map(() => new Float32Array(numLayers * length));
  const patchedScores = new Float32Array(patched.length);
  let restoredScore = recorded && target !== null ? measure(recorded.logits, target, metric)[0] : Number.NaN;
  const patchedRuns = new Map<number, RecordedRun>();
  passes.forEach((pass, i) => {
    let prefix: KeyValueCache | null = null;
    if (pass.start > 0) {
      const draw = pass.draws[0];
      if (!patchedRuns.has(draw)) patchedRuns.set(draw, recordRun(model, { inputIds }, "block_output", patched[draw]));
      prefix = patchedRuns.get(draw)!.cache.prefix(pass.start);
    }
    const progress =
      request.onProgress && ((j: number) => request.onProgress!(i * numLayers + j, passes.length * numLayers));
    const { rows, last } = runPass(request, plan, pass, recorded, prefix, progress);
    const restoredRow = rows.findIndex((row) => row.kind === "restored");
    target ??= topToken(tv.noGrad(() => model.unembed(tv.slice(last, 0, restoredRow, restoredRow + 1))));
    const scores = scoresOf(model, last, target, metric);
    rows.forEach((row, r) => {
      if (row.kind === "patched") patchedScores[row.draw] = scores[r];
      else if (row.kind === "restored") restoredScore = scores[r];
      else grids[row.draw][row.layer * length + row.position] = scores[r];
    });
  });
  return { grids, patched: patchedScores, restored: restoredScore, target: target! };
}

function scoresOf(model: DecoderModel, last: Tensor, target: number, metric: Metric): Float32Array {
  return tv.noGrad(() =>
    metric === "logit" ? model.tokenLogits(last, [target]).data : measure(model.unembed(last), target, metric),
  );
}

/** What every pass of a request shares. */
interface GridPlan {
  windows: number[][];
  /** Per block 0..numLayers, the layers whose rows join before it (at numLayers: after the last block). */
  joiningAt: number[][];
  /** Layers whose rows run at least one block. */
  running: number;
  /** Per block, its linear stages that may run packed. */
  stages: LinearStages[];
}

function gridPlan({ model, component, window }: GridRequest): GridPlan {
  const numLayers = model.numLayers;
  const windows = Array.from({ length: numLayers }, (_, l) => windowLayers(l, window, numLayers));
  const joinsAfterFirst = component === "block_output";
  const joiningAt = Array.from({ length: numLayers + 1 }, (): number[] => []);
  windows.forEach((w, l) => joiningAt[w[0] + (joinsAfterFirst ? 1 : 0)].push(l));
  const stages = Array.from({ length: numLayers }, (_, j) => linearStages(model, j, model.site(component, j)));
  return { windows, joiningAt, running: numLayers - joiningAt[numLayers].length, stages };
}

/** Some patched runs, restored at positions start..end−1, computed from position `start` on. */
interface Pass {
  draws: number[];
  start: number;
  end: number;
}

/**
 * Passes of at most `budget` packed positions at the last block where possible: whole grids, as
 * many patched runs together as fit; else one patched run's positions in consecutive ranges.
 */
function planPasses(length: number, running: number, draws: number, budget: number): Pass[] {
  const packed = (start: number, end: number) => {
    let restored = 0;
    for (let p = start; p < end; p++) restored += length - p;
    return 2 * (length - start) + running * restored;
  };
  const passes: Pass[] = [];
  const whole = packed(0, length);
  if (whole <= budget) {
    const together = Math.floor(budget / whole);
    for (let d = 0; d < draws; d += together)
      passes.push({ draws: range(d, Math.min(draws, d + together)), start: 0, end: length });
    return passes;
  }
  for (let draw = 0; draw < draws; draw++) {
    for (let start = 0; start < length; ) {
      let end = start + 1;
      while (end < length && packed(start, end + 1) <= budget) end++;
      passes.push({ draws: [draw], start, end });
      start = end;
    }
  }
  return passes;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

/** A row of a pass: a patched run, the restored run, or a patched run restored at a cell. */
type Row =
  | { kind: "patched"; draw: number }
  | { kind: "restored" }
  | { kind: "cell"; draw: number; layer: number; position: number };

/** The state of a pass at one block. */
interface PassState {
  request: GridRequest;
  pass: Pass;
  rows: Row[];
  /** The restored run's row, when it runs in the pass; else its recorded run. */
  restoredRow: number | null;
  recorded: RecordedRun | null;
}

/** Runs one pass; returns its rows and their last position's residual stream [R, 1, D]. */
function runPass(
  request: GridRequest,
  plan: GridPlan,
  pass: Pass,
  recorded: RecordedRun | null,
  prefix: KeyValueCache | null,
  onProgress: ((block: number) => void) | undefined,
): { rows: Row[]; last: Tensor } {
  const numLayers = request.model.numLayers;
  const rows: Row[] = pass.draws.map((draw) => ({ kind: "patched", draw }));
  if (!recorded) rows.push({ kind: "restored" });
  const state: PassState = { request, pass, rows, restoredRow: recorded ? null : pass.draws.length, recorded };
  const ids = (row: Row) => (row.kind === "restored" ? (request.restored as IntTensor) : request.inputIds);
  let hidden: Tensor | null = null;
  for (let j = 0; j <= numLayers; j++) {
    const joining = pass.draws.flatMap((draw) =>
      plan.joiningAt[j].flatMap((layer) =>
        range(pass.start, pass.end).map((position): Row => ({ kind: "cell", draw, layer, position })),
      ),
    );
    if (hidden !== null && joining.length > 0) hidden = tv.concat([hidden, joiningRows(state, j, hidden, joining)], 0);
    rows.push(...joining);
    if (j === numLayers) break;
    hidden = runBlock(state, plan.stages[j], plan.windows, j, hidden, prefix, ids);
    onProgress?.(j + 1);
  }
  return { rows, last: tv.slice(hidden!, 1, -1) };
}

/** The first own slot of each row in the pass, and the row it borrows the slots before from. */
function raggedRows(state: PassState, span: number): RaggedRows {
  const { rows, pass } = state;
  const own = (row: Row) => (row.kind === "cell" ? row.position - pass.start : 0);
  const lender = (row: Row, r: number) => (row.kind === "cell" ? pass.draws.indexOf(row.draw) : r);
  return RaggedRows.borrowing(span, rows.map(own), rows.map(lender));
}

/**
 * Block j's linear stages on the rows' own slots; in the last block, the stages after the
 * attention's projections on each row's last slot alone, the only output read after it.
 */
function packedStages(stages: LinearStages, ragged: RaggedRows, last: boolean): PackedStage[] {
  const rows = ragged.rows;
  const packed: PackedStage[] = [];
  if (ragged.ragged) packed.push({ modules: stages.projections, rows: ragged });
  if (last && ragged.length > 1) packed.push({ modules: stages.rest, rows: RaggedRows.lastSlots(rows, ragged.length) });
  else if (ragged.ragged) packed.push({ modules: stages.rest, rows: ragged });
  return packed;
}

/** The restored run's value [1, T, …] (by position) at a site, from the recorded run or from `view`'s restored row. */
function restoredValue(state: PassState, recorded: Tensor | undefined, view: Tensor): Tensor {
  if (state.restoredRow === null) return byPosition(recorded!);
  return tv.indexSelect(byPosition(view), 0, [state.restoredRow]);
}

/**
 * Rows joining before block j > 0: their patched runs' rows of the stream, with a block_output
 * restored at layer j − 1 written in at their positions.
 */
function joiningRows(state: PassState, j: number, hidden: Tensor, joining: Row[]): Tensor {
  const { request, pass } = state;
  const cells = joining as Extract<Row, { kind: "cell" }>[];
  const fresh = tv.indexSelect(
    hidden,
    0,
    cells.map((row) => pass.draws.indexOf(row.draw)),
  );
  if (request.component !== "block_output") return fresh;
  const value = restoredValue(state, state.recorded?.component[j - 1], hidden);
  const clean = gatherUnits(
    tv.expand(value, [cells.length, ...value.shape.slice(1)]),
    "pos",
    cells.map((row) => [row.position]),
    "joining rows",
  );
  return scatterUnits(
    fresh,
    "pos",
    cells.map((row) => [row.position - pass.start]),
    clean,
    "joining rows",
  );
}

/** Block j on the pass's rows (from the embeddings at block 0), its restored rows written, its linear stages packed. */
function runBlock(
  state: PassState,
  stages: LinearStages,
  windows: readonly number[][],
  j: number,
  hidden: Tensor | null,
  prefix: KeyValueCache | null,
  ids: (row: Row) => IntTensor,
): Tensor {
  const { request, pass, rows } = state;
  const model = request.model;
  const span = request.inputIds.shape[1] - pass.start;
  const packed = packedStages(stages, raggedRows(state, span), j === model.numLayers - 1);
  const handles: HookHandle[] = [];
  try {
    handles.push(...unpackOutputs(model, packed));
    if (j === 0) handles.push(...corrupt(state));
    const restoring = rows.map((row) => row.kind === "cell" && windows[row.layer].includes(j));
    if (restoring.some(Boolean)) handles.push(restore(state, j, restoring));
    handles.push(...packInputs(model, packed));
    const inputIds = new IntTensor(
      Int32Array.from(
        { length: rows.length * span },
        (_, i) => ids(rows[Math.floor(i / span)]).data[pass.start + (i % span)],
      ),
      [rows.length, span],
    );
    const inputs = {
      inputIds,
      ...(prefix ? { cache: prefix } : {}),
      ...(hidden ? { resumeFrom: { layer: j, hidden } } : {}),
    };
    return tv.noGrad(() => model.runBlocks(inputs, j));
  } finally {
    for (const handle of handles) handle.remove();
  }
}

/**
 * Each patched run's corruption (and its cells') added to the layer-0 block input at the
 * corrupted positions this pass computes; the restored run's row stays clean.
 */
function corrupt({ request, pass, rows }: PassState): HookHandle[] {
  const first = request.patched[pass.draws[0]];
  if (first === null) return [];
  const kept = first.positions.flatMap((p, i) => (p >= pass.start ? [i] : []));
  if (kept.length === 0) return [];
  const at = [kept.map((i) => first.positions[i] - pass.start)];
  const width = first.noise.shape[1];
  const noise = tv.stack(
    rows.map((row) =>
      row.kind === "restored"
        ? tv.zeros([kept.length, width])
        : tv.indexSelect(request.patched[row.draw]!.noise, 0, kept),
    ),
    0,
  );
  const write = (view: Tensor) =>
    scatterUnits(view, "pos", at, tv.add(gatherUnits(view, "pos", at, "corruption"), noise), "corruption");
  return [writeSite(request.model, request.model.site("block_input", 0), write)];
}

/** The restored run's component written at block j into the rows that restore there, each at its own position. */
function restore(state: PassState, j: number, restoring: boolean[]): HookHandle {
  const { request, pass, rows } = state;
  const count = rows.length;
  const positions = rows.map((row) => [row.kind === "cell" ? row.position : pass.start]);
  const slots = positions.map(([p]) => [p - pass.start]);
  const write = (view: Tensor) => {
    const atPositions = byPosition(view);
    const value = restoredValue(state, state.recorded?.component[j], view);
    const clean = gatherUnits(tv.expand(value, [count, ...value.shape.slice(1)]), "pos", positions, "restored rows");
    const rowMask = new Tensor(
      Float32Array.from(restoring, (r) => (r ? 1 : 0)),
      [count, ...clean.shape.slice(1).map(() => 1)],
    );
    const kept = gatherUnits(atPositions, "pos", slots, "restored rows");
    return byPosition(scatterUnits(atPositions, "pos", slots, tv.where(rowMask, clean, kept), "restored rows"));
  };
  return writeSite(request.model, request.model.site(request.component, j), write);
}
