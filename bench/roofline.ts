/**
 * The floors under W3 and W4 on this machine, measured in the same run as the workloads so that
 * both see the same load. Both are the workload's matrix products alone, each at its fastest:
 *
 * - W3: every product of a batch's rows with a block matrix, timed with the weights in cache (the
 *   most favourable case), times the batches. Attention's small products are left out.
 * - W4: one pass of one-row products over every weight matrix, the tied LM head included (about
 *   half a GB in float32, far beyond any cache: a pass streams it from memory), times the 20
 *   passes of 20 new tokens (the prompt's pass reads the same weights once).
 *
 * Whatever else a workload does (norms, attention, GELU, the JavaScript between kernels) is on top.
 */
import * as tv from "../src/index.js";
import { timed } from "./timing.js";

/** A matrix of GPT-2's forward pass with its layout: Conv1D [in, out], or the tied LM head [vocab, hidden]. */
export interface Matrix {
  weight: tv.Tensor;
  layout: tv.WeightLayout;
}

/** Every weight matrix a GPT-2 token's forward pass multiplies by, in `weights` (HF names). */
export function gpt2Matrices(weights: Map<string, tv.Tensor>): Matrix[] {
  const matrices: Matrix[] = [];
  for (const [name, weight] of weights) {
    if (weight.rank !== 2 || name.endsWith("wpe.weight")) continue;
    matrices.push({ weight, layout: name.endsWith("wte.weight") ? "out_in" : "in_out" });
  }
  return matrices;
}

/** Bytes of the matrices as stored. */
export function matrixBytes(matrices: Matrix[]): number {
  return matrices.reduce((sum, m) => sum + m.weight.size * (m.weight.dtype === "float32" ? 4 : 2), 0);
}

function input(rows: number, features: number): tv.Tensor {
  return tv.randn([rows, features], { generator: new tv.Generator(features) });
}

/** Seconds for `rows` rows times every block matrix, `batches` times, each product at its fastest. */
export function w3GemmFloor(matrices: Matrix[], rows: number, batches: number): number {
  let total = 0;
  for (const { weight, layout } of matrices) {
    if (layout !== "in_out") continue;
    const x = input(rows, weight.shape[0]);
    const bias = tv.zeros([weight.shape[1]]);
    total += timed(() => tv.linear(x, weight, bias, layout), 10).min * batches;
  }
  return total;
}

/** Seconds for one pass of one-row products over all the matrices, at the fastest of several passes. */
export function decodingPassFloor(matrices: Matrix[]): number {
  const inputs = matrices.map(({ weight, layout }) =>
    input(1, layout === "in_out" ? weight.shape[0] : weight.shape[1]),
  );
  return timed(() => {
    matrices.forEach(({ weight, layout }, i) => tv.linear(inputs[i], weight, null, layout));
  }, 8).min;
}
