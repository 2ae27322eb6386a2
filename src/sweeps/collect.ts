/**
 * Activation collection over a dataset: a component at chosen layers and every position, in
 * batches. Hooks record each site's value; on a decoder the run stops after the last block it
 * needs, so neither the later blocks nor the LM head are computed.
 */
import { readSite } from "../intervene/index.js";
import type { HookHandle } from "../nn/module.js";
import { DecoderModel } from "../models/decoder.js";
import type { PretrainedModel } from "../models/model.js";
import { describe, readOptions } from "../options/index.js";
import * as tv from "../tensor/index.js";
import { IntTensor, type Tensor } from "../tensor/index.js";
import { formatShape, sameShape } from "../tensor/shape.js";
import { uninitialized } from "../tensor/storage.js";
import type { CollectResult } from "./results.js";

export interface CollectOptions {
  /** Prompts [N, T] (pad to a common length and pass attentionMask). */
  inputIds: IntTensor;
  attentionMask?: IntTensor | null;
  component?: string;
  /** Default: every layer. */
  layers?: number[];
  batchSize?: number;
  onProgress?: (done: number, total: number) => void;
}

const COLLECT_OPTIONS = [
  "inputIds",
  "attentionMask",
  "component",
  "layers",
  "batchSize",
  "onProgress",
] as const satisfies readonly (keyof CollectOptions)[];

/**
 * One site's values over all batches, in one array of every example's rows: each batch's values are
 * copied in as its hook reads them, still in cache, so that neither the batches' tensors stay alive
 * until the end nor a concatenation copies them again. A single batch of every example is kept as it is.
 */
class Gathered {
  private values: Float32Array | null = null;
  private rowShape: readonly number[] = [];
  private rowSize = 0;
  private rows = 0;

  constructor(
    private readonly examples: number,
    private readonly layer: number,
  ) {}

  add(view: Tensor): void {
    const [batch, ...rowShape] = view.shape;
    if (this.values !== null && !sameShape(rowShape, this.rowShape)) {
      throw new RangeError(
        `collectActivations: layer ${this.layer} gave rows of shape ${formatShape(rowShape)} after ` +
          formatShape(this.rowShape),
      );
    }
    this.rowShape = rowShape;
    this.rowSize = view.size / batch;
    if (this.values === null && batch >= this.examples) {
      this.values = view.data;
    } else {
      const filled = this.rows * this.rowSize;
      if (this.values === null || this.values.length < filled + view.size) {
        const grown = uninitialized(Math.max(filled + view.size, this.examples * this.rowSize));
        if (this.values !== null) grown.set(this.values.subarray(0, filled));
        this.values = grown;
      }
      this.values.set(view.data, filled);
    }
    this.rows += batch;
  }

  result(): { layer: number; shape: number[]; values: Float32Array } {
    if (this.values === null) throw new RangeError(`collectActivations: layer ${this.layer} was never read`);
    const size = this.rows * this.rowSize;
    const values = this.values.length === size ? this.values : this.values.subarray(0, size);
    return { layer: this.layer, shape: [this.rows, ...this.rowShape], values };
  }
}

export function collectActivations(model: PretrainedModel, collectOptions: CollectOptions): CollectResult {
  const options = readOptions<CollectOptions>(collectOptions, COLLECT_OPTIONS, "collectActivations options");
  const { inputIds, attentionMask = null, component = "block_output", batchSize = 8 } = options;
  const layers = options.layers ?? Array.from({ length: model.numLayers }, (_, l) => l);
  if (!(inputIds instanceof IntTensor) || inputIds.shape.length !== 2) {
    throw new RangeError(
      "collectActivations: inputIds must be an IntTensor [N, T], " +
        `got ${inputIds instanceof IntTensor ? `[${inputIds.shape.join(", ")}]` : describe(inputIds)}`,
    );
  }
  if (
    attentionMask !== null &&
    (!(attentionMask instanceof IntTensor) || attentionMask.shape.join() !== inputIds.shape.join())
  ) {
    throw new RangeError(
      `collectActivations: attentionMask must be an IntTensor [${inputIds.shape.join(", ")}] like inputIds`,
    );
  }
  if (!Array.isArray(layers) || new Set(layers).size !== layers.length) {
    throw new RangeError(
      `collectActivations: layers must be a list of distinct layer numbers, got ${describe(layers)}`,
    );
  }
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new RangeError(`collectActivations: batchSize must be a positive integer, got ${batchSize}`);
  if (layers.length === 0) throw new RangeError("collectActivations: layers must not be empty");
  const sites = layers.map((layer) => model.site(component, layer));
  const [n, length] = inputIds.shape;
  const gathered = layers.map((layer) => new Gathered(n, layer));
  const rows = (t: IntTensor, start: number, end: number) =>
    new IntTensor(t.data.slice(start * length, end * length), [end - start, length]);
  const handles: HookHandle[] = [];
  const lastLayer = Math.max(...layers);
  try {
    sites.forEach((site, i) => handles.push(readSite(model, site, (view) => gathered[i].add(view))));
    for (let start = 0; start < n; start += batchSize) {
      const end = Math.min(n, start + batchSize);
      const batch = {
        inputIds: rows(inputIds, start, end),
        attentionMask: attentionMask ? rows(attentionMask, start, end) : null,
      };
      // A decoder stops after the last block collected from: the later blocks and the head would be wasted work.
      tv.noGrad(() => (model instanceof DecoderModel ? model.runBlocks(batch, lastLayer) : model.run(batch)));
      options.onProgress?.(end, n);
    }
  } finally {
    for (const h of handles) h.remove();
  }
  return {
    kind: "collect",
    component,
    layers,
    activations: gathered.map((g) => g.result()),
  };
}
