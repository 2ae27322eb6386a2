/**
 * Ragged rows for the restoring sweeps. Every row of a batch [R, L, D] runs the same L positions,
 * but a restored row differs from its patched run only from its restored position on: the slots
 * before it ("borrowed") hold the patched run's values and nothing reads them. The linear stages of
 * a block (the attention's projections and the MLP: nearly all of its work) act on each position
 * alone, so they run on the rows' own slots stacked into one matrix [1, N, W] (one GEMM per weight
 * for the whole batch, none spent on borrowed slots), and their outputs go back to the row layout
 * with the borrowed slots taken from the row's patched run, whose keys and values are exactly what
 * the attention of the restored row must see there. Everything else in the block (norms, residual
 * adds, the attention itself) runs on the rows as they are.
 */
import { writeSite } from "../intervene/index.js";
import type { DecoderModel } from "../models/decoder.js";
import type { Site } from "../models/sites.js";
import type { HookHandle } from "../nn/module.js";
import * as tv from "../tensor/index.js";
import type { Tensor } from "../tensor/index.js";

/** Which slots of each row are its own, and where the others take their values from. */
export class RaggedRows {
  /**
   * `packedSlots`: the flat slot (row · length + slot) of each own slot, in packed order;
   * `unpackedSlots`: for each flat slot, the packed index of its value.
   */
  private constructor(
    readonly length: number,
    private readonly packedSlots: Int32Array,
    private readonly unpackedSlots: Int32Array,
  ) {}

  /**
   * Row r owns slots firstOwn[r]..length−1 and borrows the slots before from row lender[r], which
   * must own every slot (a patched run lends to the rows restored from it).
   */
  static borrowing(length: number, firstOwn: readonly number[], lender: readonly number[]): RaggedRows {
    const rows = firstOwn.length;
    const packedIndex = new Int32Array(rows * length).fill(-1);
    const packed: number[] = [];
    for (let r = 0; r < rows; r++) {
      for (let t = firstOwn[r]; t < length; t++) {
        packedIndex[r * length + t] = packed.length;
        packed.push(r * length + t);
      }
    }
    const unpacked = new Int32Array(rows * length);
    for (let r = 0; r < rows; r++) {
      if (firstOwn[r] > 0 && firstOwn[lender[r]] !== 0)
        throw new RangeError(`RaggedRows: row ${r} borrows from row ${lender[r]}, which does not own every slot`);
      for (let t = 0; t < length; t++) {
        const own = packedIndex[r * length + t];
        unpacked[r * length + t] = own >= 0 ? own : packedIndex[lender[r] * length + t];
      }
    }
    return new RaggedRows(length, Int32Array.from(packed), unpacked);
  }

  /**
   * Each of `rows` rows owns only its last slot, for a stage whose other slots nothing reads (after
   * the last block's attention, only the last position's output matters): they repeat the last one.
   */
  static lastSlots(rows: number, length: number): RaggedRows {
    const packed = Int32Array.from({ length: rows }, (_, r) => r * length + length - 1);
    const unpacked = Int32Array.from({ length: rows * length }, (_, i) => Math.floor(i / length));
    return new RaggedRows(length, packed, unpacked);
  }

  get rows(): number {
    return this.unpackedSlots.length / this.length;
  }

  /** Whether any slot is borrowed: else packing would only copy. */
  get ragged(): boolean {
    return this.packedSlots.length < this.unpackedSlots.length;
  }

  /** The own slots of x [R, L, W], stacked as [1, N, W]. */
  pack(x: Tensor): Tensor {
    const width = this.checkRows(x, "pack");
    return tv.reshape(tv.indexSelect(tv.reshape(x, [-1, width]), 0, this.packedSlots), [1, -1, width]);
  }

  /**
   * Packed values y [1, N, W] back in the row layout [R, L, W], the slots a row does not own
   * filled as documented above.
   */
  unpack(y: Tensor): Tensor {
    const width = y.shape[y.rank - 1];
    if (y.rank !== 3 || y.shape[0] !== 1 || y.shape[1] !== this.packedSlots.length)
      throw new RangeError(
        `RaggedRows.unpack: expected packed values [1, ${this.packedSlots.length}, W], got [${y.shape}]`,
      );
    return tv.reshape(tv.indexSelect(tv.reshape(y, [-1, width]), 0, this.unpackedSlots), [
      this.rows,
      this.length,
      width,
    ]);
  }

  private checkRows(x: Tensor, what: string): number {
    if (x.rank !== 3 || x.shape[0] !== this.rows || x.shape[1] !== this.length)
      throw new RangeError(`RaggedRows.${what}: expected rows [${this.rows}, ${this.length}, W], got [${x.shape}]`);
    return x.shape[2];
  }
}

/** A block's linear stages: those whose outputs feed the attention's keys and values, and the rest. */
export interface LinearStages {
  /** The query, key and value projections. */
  readonly projections: readonly string[];
  /** The attention's output projection and the MLP. */
  readonly rest: readonly string[];
}

/**
 * The modules of block `layer` that act on each position alone and hold its matmuls, as the site
 * map names them: the query, key and value projections (their outputs' modules), the attention's
 * output projection (the module whose input is attention_value_output) and the MLP (mlp_input and
 * mlp_output on one module). Each runs packed on its own, its output back in the row layout before
 * anything else reads it, so any of them may be missing (GPT-NeoX names no query, key or value
 * output: its fused projection then runs on the rows). A stage enclosing the module of `kept` (the
 * site the sweep writes at) is left out: that site must see the row layout.
 */
export function linearStages(model: DecoderModel, layer: number, kept: Site): LinearStages {
  const site = (component: string): Site | null =>
    Object.hasOwn(model.sites, component) ? model.site(component, layer) : null;
  const whole = (s: Site | null, hook: Site["hook"]): s is Site => s?.hook === hook && s.heads === undefined;
  const outside = (module: string) => !kept.module.startsWith(`${module}.`);
  const queries = ["query_output", "key_output", "value_output"].map(site).filter((s) => whole(s, "output"));
  const rest: string[] = [];
  const output = site("attention_value_output");
  if (whole(output, "input")) rest.push(output.module);
  const mlpIn = site("mlp_input");
  const mlpOut = site("mlp_output");
  if (whole(mlpIn, "input") && whole(mlpOut, "output") && mlpIn.module === mlpOut.module) rest.push(mlpIn.module);
  return { projections: [...new Set(queries.map((s) => s!.module))].filter(outside), rest: rest.filter(outside) };
}

/** A stage's modules and the rows layout it packs. */
export interface PackedStage {
  readonly modules: readonly string[];
  readonly rows: RaggedRows;
}

/**
 * Hooks running the stages on their rows' own slots: their outputs unpacked (`unpackOutputs`, to
 * be registered before the sweep's own hooks at those modules) and their inputs packed
 * (`packInputs`, after them), so that every hook of the sweep sees the row layout.
 */
export function unpackOutputs(model: DecoderModel, stages: readonly PackedStage[]): HookHandle[] {
  return stages.flatMap(({ modules, rows }) =>
    modules.map((module) => writeSite(model, { module, hook: "output", dim: null }, (y) => rows.unpack(y))),
  );
}

export function packInputs(model: DecoderModel, stages: readonly PackedStage[]): HookHandle[] {
  return stages.flatMap(({ modules, rows }) =>
    modules.map((module) => writeSite(model, { module, hook: "input", dim: null }, (x) => rows.pack(x))),
  );
}
