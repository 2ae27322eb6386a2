/**
 * The HASHW-v1 recipe of ../shared/bench (README there): each element of each GPT-2-small tensor
 * generated from a hash of the tensor name and index. Free of Node, so the browser benchmark
 * generates the very same weights; bench/hashw.ts adds the Node side (reading the manifest,
 * checking each tensor's sha256).
 */
import { type PretrainedModel, Tensor, modelFromConfig } from "../src/index.js";

export interface ManifestTensor {
  name: string;
  shape: number[];
  offset: number;
  sha256_f32le: string;
}

export interface HashwManifest {
  salt: string;
  config: Record<string, unknown>;
  tensors: ManifestTensor[];
}

function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

const SCALE = 0.02 * Math.sqrt(3);

export function hashwTensor(salt: string, spec: ManifestTensor): Tensor {
  const seed = fnv1a32(`${salt}:${spec.name}`);
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let x = (seed + Math.imul(i, 0x9e3779b9)) >>> 0;
    x ^= x >>> 16;
    x = Math.imul(x, 0x85ebca6b) >>> 0;
    x ^= x >>> 13;
    x = Math.imul(x, 0xc2b2ae35) >>> 0;
    x ^= x >>> 16;
    const u = x >>> 8;
    data[i] = spec.offset + ((u - 8388608) / 8388608) * SCALE;
  }
  return new Tensor(data, spec.shape);
}

/** The manifest's GPT-2-small as an HF GPT2LMHeadModel, with no weights loaded yet. */
export function hashwModel(manifest: HashwManifest): PretrainedModel {
  return modelFromConfig({ ...manifest.config, model_type: "gpt2", architectures: ["GPT2LMHeadModel"] });
}
