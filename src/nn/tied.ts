/**
 * An output projection whose weight belongs to another module: tied input and output embeddings
 * (`lm_head.weight` is `wte.weight`). The same Tensor is registered under both paths, so a
 * checkpoint may omit the tied key and training updates one weight.
 */
import * as tv from "../tensor/index.js";
import type { Tensor } from "../tensor/index.js";
import { Module } from "./module.js";

/** y = x·Wᵀ (no bias) with W [out, in] shared with its owner, e.g. an embedding table [vocab, dim]. */
export class TiedLinear extends Module {
  constructor(readonly weight: Tensor) {
    super();
    this.parameter("weight", weight);
  }

  protected forward(x: Tensor): Tensor {
    return tv.linear(x, this.weight);
  }
}
