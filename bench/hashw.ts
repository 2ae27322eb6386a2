/**
 * HASHW-v1: the deterministic GPT-2-small weights of ../shared/bench (README there), generated
 * element by element from a hash of the tensor name and index, and checked against the manifest's
 * sha256 of each tensor's float32 bytes.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Tensor } from "../src/index.js";

export const SHARED_BENCH = fileURLToPath(new URL("../../../shared/bench/", import.meta.url));

interface ManifestTensor {
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

export function readManifest(): HashwManifest {
  return JSON.parse(readFileSync(`${SHARED_BENCH}weights/gpt2s_hashw_v1_manifest.json`, "utf8")) as HashwManifest;
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

/** All HASHW-v1 tensors by HF name, each verified against the manifest's sha256. */
export function hashwWeights(manifest = readManifest()): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const spec of manifest.tensors) {
    const t = hashwTensor(manifest.salt, spec);
    const digest = createHash("sha256")
      .update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength))
      .digest("hex");
    if (digest !== spec.sha256_f32le)
      throw new Error(`HASHW-v1: ${spec.name} does not match the manifest (sha256 ${digest})`);
    out.set(spec.name, t);
  }
  return out;
}
