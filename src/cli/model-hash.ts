/**
 * A model's identity for sweep results: SHA-256 over its config and every parameter (name, shape
 * and stored bytes), so two runs that would compute different numbers never share results, and
 * the same weights read from another folder or machine do.
 */
import { createHash } from "node:crypto";
import type { PretrainedModel } from "../models/model.js";

export function modelHash(model: PretrainedModel): string {
  const hash = createHash("sha256");
  hash.update(JSON.stringify(model.config));
  for (const [name, parameter] of model.namedParameters()) {
    // 16-bit weights are hashed as they are stored, their dtype named, never widened; float32
    // ones as before, so earlier sweep folders keep their model's hash.
    const dtype = parameter.half === null ? "" : ` ${parameter.dtype}`;
    hash.update(`\n${name} [${parameter.shape.join(",")}]${dtype}\n`);
    const { buffer, byteOffset, byteLength } = parameter.half?.bits ?? parameter.data;
    hash.update(new Uint8Array(buffer, byteOffset, byteLength));
  }
  return hash.digest("hex");
}
