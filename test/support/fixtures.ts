/** Reading the shared pyvene fixtures (../shared/fixtures beside the repository). */
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import * as tv from "../../src/index.js";

export const FIXTURE_ROOT = fileURLToPath(new URL("../../../../shared/fixtures/pyvene-0.1.8/", import.meta.url));

export function fixtureFolder(model: string): string {
  return `${FIXTURE_ROOT}${model}`;
}

export interface FixtureInput {
  input_ids?: number[][];
  attention_mask?: number[][];
  inputs_embeds?: string;
}

export interface FixtureCases {
  model: string;
  inputs: Record<string, FixtureInput>;
  references: Record<string, { logits: string; hidden_states: string[] }>;
  cases: Array<Record<string, unknown> & { name: string; method: string }>;
}

export async function readCases(model: string): Promise<FixtureCases> {
  return JSON.parse(await readFile(`${fixtureFolder(model)}/cases.json`, "utf8")) as FixtureCases;
}

export async function readFixtureTensors(model: string): Promise<Map<string, tv.Tensor | tv.IntTensor>> {
  return (await tv.readSafetensors(`${fixtureFolder(model)}/tensors.safetensors`)).tensors;
}

/** The model inputs of a named fixture input. */
export function modelInputs(
  cases: FixtureCases,
  tensors: Map<string, tv.Tensor | tv.IntTensor>,
  name: string,
): tv.ModelInputs {
  const input = cases.inputs[name];
  if (input.inputs_embeds !== undefined) return { inputsEmbeds: tensors.get(input.inputs_embeds) as tv.Tensor };
  return {
    inputIds: tv.intTensor(input.input_ids!),
    attentionMask: input.attention_mask ? tv.intTensor(input.attention_mask) : null,
  };
}

/** Largest |a − b| over positions whose attention mask is 1 (all positions when mask is null). */
export function maxAbsDiff(a: tv.Tensor, b: tv.Tensor, mask: tv.IntTensor | null = null): number {
  if (a.size !== b.size) throw new RangeError(`shapes differ: [${a.shape}] vs [${b.shape}]`);
  const perPosition = mask === null ? a.size : a.size / mask.size;
  let worst = 0;
  for (let i = 0; i < a.size; i++) {
    if (mask !== null && mask.data[Math.floor(i / perPosition)] === 0) continue;
    worst = Math.max(worst, Math.abs(a.data[i] - b.data[i]));
  }
  return worst;
}
