/**
 * Attention's products on heads read in place: the heads of a projection [B, T, H·d] (or of one
 * column block of a fused projection, such as GPT-2's q|k|v) and those of a key/value cache
 * [B, H, S, d] go to sgemm as strided matrices, so splitting heads, transposing keys and merging
 * heads copy nothing. Between the two products, attentionSoftmax scales, masks and normalises the
 * scores in one kernel pass.
 */
import { readOptions } from "../../options/index.js";
import { record } from "../autograd.js";
import { kernels } from "../kernels/index.js";
import { formatShape } from "../shape.js";
import { uninitialized } from "../storage.js";
import { Tensor } from "../tensor.js";

/**
 * `heads` matrices of rows×dim per example, read in place from `tensor`'s storage: head h of
 * example b starts at offset + b·batchStride + h·headStride, with row stride rowStride.
 */
export interface Heads {
  readonly tensor: Tensor;
  readonly batch: number;
  readonly heads: number;
  readonly rows: number;
  readonly dim: number;
  readonly offset: number;
  readonly batchStride: number;
  readonly headStride: number;
  readonly rowStride: number;
}

function checkPositiveInteger(value: number, name: string, op: string): void {
  if (!Number.isInteger(value) || value < 1)
    throw new RangeError(`${op}: ${name} must be a positive integer, got ${value}`);
}

/**
 * The heads of x [B, T, W] in columns [column, column + width): head h is the `width / heads`
 * columns from column + h·width/heads, as HF's view(B, T, H, d) of that block reads them.
 */
export function packedHeads(x: Tensor, heads: number, column = 0, width = x.shape[x.rank - 1] - column): Heads {
  if (x.rank !== 3) throw new RangeError(`packedHeads: x must be [B, T, W], got ${formatShape(x.shape)}`);
  checkPositiveInteger(heads, "heads", "packedHeads");
  const [batch, rows, total] = x.shape;
  if (!Number.isInteger(column) || !Number.isInteger(width) || column < 0 || width < 1 || column + width > total) {
    throw new RangeError(
      `packedHeads: columns [${column}, ${column + width}) are not inside the ${total} columns ` +
        `of x ${formatShape(x.shape)}`,
    );
  }
  if (width % heads !== 0)
    throw new RangeError(`packedHeads: the block's ${width} columns do not divide into ${heads} heads`);
  const dim = width / heads;
  return {
    tensor: x,
    batch,
    heads,
    rows,
    dim,
    offset: column,
    batchStride: rows * total,
    headStride: dim,
    rowStride: total,
  };
}

/** The heads of x [B, H, S, d] as stored (the layout of a key/value cache). */
export function stackedHeads(x: Tensor): Heads {
  if (x.rank !== 4) throw new RangeError(`stackedHeads: x must be [B, H, S, d], got ${formatShape(x.shape)}`);
  const [batch, heads, rows, dim] = x.shape;
  return {
    tensor: x,
    batch,
    heads,
    rows,
    dim,
    offset: 0,
    batchStride: heads * rows * dim,
    headStride: rows * dim,
    rowStride: dim,
  };
}

/** Where each (example, head) matrix starts, example-major. */
function headOffsets(h: Heads): Int32Array {
  const offsets = new Int32Array(h.batch * h.heads);
  for (let b = 0; b < h.batch; b++) {
    for (let i = 0; i < h.heads; i++) offsets[b * h.heads + i] = h.offset + b * h.batchStride + i * h.headStride;
  }
  return offsets;
}

/** Offsets of the consecutive rows×cols matrices of a contiguous [B, H, rows, cols] tensor. */
function denseOffsets(count: number, rows: number, cols: number): Int32Array {
  return Int32Array.from({ length: count }, (_, i) => i * rows * cols);
}

function describeHeads(h: Heads): string {
  return `${h.batch} examples × ${h.heads} heads of ${h.rows}×${h.dim}`;
}

/**
 * scores[b, h] = alpha · Q[b, h]·K[b, h]ᵀ: [B, H, T, S] for queries of T rows and keys of S rows,
 * with as many examples, heads and head dims on both sides.
 */
export function attentionScores(queries: Heads, keys: Heads, alpha = 1): Tensor {
  if (queries.batch !== keys.batch || queries.heads !== keys.heads || queries.dim !== keys.dim) {
    throw new RangeError(
      `attentionScores: queries (${describeHeads(queries)}) and keys (${describeHeads(keys)}) must have the ` +
        "same examples, heads and head dim",
    );
  }
  if (typeof alpha !== "number") throw new TypeError(`attentionScores: alpha must be a number, got ${typeof alpha}`);
  const { batch, heads, rows: t, dim: d } = queries;
  const s = keys.rows;
  const qOffsets = headOffsets(queries);
  const kOffsets = headOffsets(keys);
  const sOffsets = denseOffsets(batch * heads, t, s);
  const out = uninitialized(batch * heads * t * s);
  if (out.length > 0) {
    const q = queries.tensor.data;
    const k = keys.tensor.data;
    kernels().sgemmBatch(
      false,
      true,
      t,
      s,
      d,
      alpha,
      q,
      queries.rowStride,
      qOffsets,
      k,
      keys.rowStride,
      kOffsets,
      0,
      out,
      s,
      sOffsets,
    );
  }
  return record(new Tensor(out, [batch, heads, t, s]), [queries.tensor, keys.tensor], (g) => {
    const k = kernels();
    let gq: Float32Array | null = null;
    let gk: Float32Array | null = null;
    if (queries.tensor.requiresGrad) {
      gq = new Float32Array(queries.tensor.size);
      k.sgemmBatch(
        false,
        false,
        t,
        d,
        s,
        alpha,
        g,
        s,
        sOffsets,
        keys.tensor.data,
        keys.rowStride,
        kOffsets,
        0,
        gq,
        queries.rowStride,
        qOffsets,
      );
    }
    if (keys.tensor.requiresGrad) {
      gk = new Float32Array(keys.tensor.size);
      k.sgemmBatch(
        true,
        false,
        s,
        d,
        t,
        alpha,
        g,
        s,
        sOffsets,
        queries.tensor.data,
        queries.rowStride,
        qOffsets,
        0,
        gk,
        keys.rowStride,
        kOffsets,
      );
    }
    return [gq, gk];
  });
}

export interface AttentionSoftmaxOptions {
  /** Each visible score is divided by this (rounded to float32); default 1. */
  divisor?: number;
  /** A key w or more positions behind the query is masked too (local attention); default none. */
  window?: number;
  /** The additive padding mask [B, 1, 1, S] (0 at real keys), added after the causal mask; a constant. */
  padding?: Tensor | null;
}

const SOFTMAX_OPTIONS = ["divisor", "window", "padding"] as const satisfies readonly (keyof AttentionSoftmaxOptions)[];

/**
 * GPT-2's attention probabilities from raw scores [B, H, T, S] of T queries at the last T of S
 * positions: scores / divisor where the key is at or before the query (and inside the window),
 * float32's lowest value elsewhere, plus the padding mask, then softmax over the keys; what
 * HF's div, torch.where(causal bias), + attention_mask and softmax give, in one pass.
 */
export function attentionSoftmax(scores: Tensor, options: AttentionSoftmaxOptions = {}): Tensor {
  const op = "attentionSoftmax";
  // Runs once a layer: a plain check of the keys (each name is one word, the same in snake_case)
  // lets readOptions, with its suggestions, run only for objects it will refuse or normalise.
  const known =
    typeof options === "object" &&
    options !== null &&
    !Array.isArray(options) &&
    Object.keys(options).every((key) => (SOFTMAX_OPTIONS as readonly string[]).includes(key));
  const {
    divisor = 1,
    window,
    padding = null,
  } = known ? options : readOptions<AttentionSoftmaxOptions>(options, SOFTMAX_OPTIONS, `${op} options`);
  if (scores.rank !== 4) throw new RangeError(`${op}: scores must be [B, H, T, S], got ${formatShape(scores.shape)}`);
  const [batch, heads, queries, keys] = scores.shape;
  if (queries > keys) {
    throw new RangeError(
      `${op}: scores ${formatShape(scores.shape)} have more queries than keys ` +
        "(the queries are the last T of S positions)",
    );
  }
  if (typeof divisor !== "number" || !Number.isFinite(divisor) || divisor === 0)
    throw new RangeError(`${op}: divisor must be a finite non-zero number, got ${divisor}`);
  if (window !== undefined) checkPositiveInteger(window, "window", op);
  if (padding !== null) {
    const expected = [batch, 1, 1, keys];
    if (!(padding instanceof Tensor) || padding.rank !== 4 || padding.shape.some((dim, i) => dim !== expected[i])) {
      throw new RangeError(
        `${op}: padding must be a Tensor ${formatShape(expected)} for scores ${formatShape(scores.shape)}, ` +
          `got ${padding instanceof Tensor ? formatShape(padding.shape) : typeof padding}`,
      );
    }
  }
  const out = uninitialized(scores.size);
  const k = kernels();
  k.attentionSoftmax(scores.data, batch, heads, queries, keys, divisor, window ?? 0, padding?.data ?? null, out);
  return record(new Tensor(out, scores.shape), [scores], (g) => {
    const rows = batch * heads * queries;
    const grad = uninitialized(scores.size);
    k.softmaxRowsBackward(out, g, rows, keys, grad);
    // Masked scores were replaced, so they get no gradient; the visible ones were divided.
    const d = Math.fround(divisor);
    for (let r = 0; r < rows; r++) {
      const last = keys - queries + (r % queries);
      const first = window === undefined ? 0 : Math.max(0, last + 1 - window);
      const start = r * keys;
      for (let j = 0; j < keys; j++) grad[start + j] = j >= first && j <= last ? grad[start + j] / d : 0;
    }
    return [grad];
  });
}

/**
 * The attention output with heads merged: out[b, t, h·d : (h+1)·d] = P[b, h]·V[b, h] for
 * probabilities P [B, H, T, S] and values of S rows, as HF's (P @ V).transpose(1, 2).reshape(B, T, H·d).
 */
export function attentionContext(probs: Tensor, values: Heads): Tensor {
  const [batch, heads, t, s] = probs.shape;
  if (probs.rank !== 4 || batch !== values.batch || heads !== values.heads || s !== values.rows) {
    throw new RangeError(
      `attentionContext: probabilities ${formatShape(probs.shape)} do not match values (${describeHeads(values)}); ` +
        `expected [${values.batch}, ${values.heads}, T, ${values.rows}]`,
    );
  }
  const d = values.dim;
  const width = heads * d;
  const pOffsets = denseOffsets(batch * heads, t, s);
  const vOffsets = headOffsets(values);
  const outOffsets = headOffsets({
    ...values,
    rows: t,
    offset: 0,
    batchStride: t * width,
    headStride: d,
    rowStride: width,
  });
  const out = uninitialized(batch * t * width);
  if (out.length > 0) {
    kernels().sgemmBatch(
      false,
      false,
      t,
      d,
      s,
      1,
      probs.data,
      s,
      pOffsets,
      values.tensor.data,
      values.rowStride,
      vOffsets,
      0,
      out,
      width,
      outOffsets,
    );
  }
  return record(new Tensor(out, [batch, t, width]), [probs, values.tensor], (g) => {
    const k = kernels();
    let gp: Float32Array | null = null;
    let gv: Float32Array | null = null;
    if (probs.requiresGrad) {
      gp = uninitialized(probs.size);
      k.sgemmBatch(
        false,
        true,
        t,
        s,
        d,
        1,
        g,
        width,
        outOffsets,
        values.tensor.data,
        values.rowStride,
        vOffsets,
        0,
        gp,
        s,
        pOffsets,
      );
    }
    if (values.tensor.requiresGrad) {
      gv = new Float32Array(values.tensor.size);
      k.sgemmBatch(
        true,
        false,
        s,
        d,
        t,
        1,
        probs.data,
        s,
        pOffsets,
        g,
        width,
        outOffsets,
        0,
        gv,
        values.rowStride,
        vOffsets,
      );
    }
    return [gp, gv];
  });
}
