/**
 * loadPretrained for model files read without a file system (io/sources.ts: dropped `File`s,
 * a base URL, a Hub repo through fetch): the same checks and steps as loadPretrained on a folder.
 * config.json picks the family, the config is checked against the weights' headers before the
 * model is built, and the tokenizer comes from the same files when they have one.
 */
import {
  CONFIG_FILE,
  GENERATION_CONFIG_FILE,
  parseWeightIndex,
  WEIGHTS_FILE,
  WEIGHTS_INDEX_FILE,
} from "../io/checkpoint.js";
import { checkWeightDtype, type WeightDtype } from "../io/dtypes.js";
import { parseJsonObject, type JsonObject } from "../io/files.js";
import { readOptions } from "../options/index.js";
import { parseSafetensors, parseSafetensorsHeader, type SafetensorsHeader } from "../io/safetensors-format.js";
import type { ModelFiles } from "../io/sources.js";
import { Tokenizer } from "../io/tokenizer.js";
import type { IntTensor, Tensor } from "../tensor/index.js";
import { familyOf, modelWithWeights, type Pretrained } from "./auto.js";
import { checkConfigFitsWeights } from "./weights-check.js";

/** A weight file's bytes with its parsed header. */
interface WeightFile {
  name: string;
  bytes: Uint8Array;
  header: SafetensorsHeader;
}

/**
 * Loads a model (and its tokenizer, when the files include one) from `files`, e.g.
 * `loadPretrainedFrom(filesFromBlobs(input.files))` or `loadPretrainedFrom(filesFromHub("gpt2"))`.
 * `folder` of the result names where the files came from.
 */
export async function loadPretrainedFrom(
  files: ModelFiles,
  options: { dtype?: WeightDtype } = {},
): Promise<Pretrained> {
  const optionsWhere = "loadPretrainedFrom options";
  const dtype = checkWeightDtype(
    readOptions<{ dtype?: WeightDtype }>(options, ["dtype"], optionsWhere).dtype,
    optionsWhere,
  );
  const where = files.where;
  const texts = new Map<string, Promise<string | undefined>>();
  const readText = (name: string) => {
    if (!texts.has(name))
      texts.set(
        name,
        files.read(name).then((b) => b && new TextDecoder().decode(b)),
      );
    return texts.get(name)!;
  };
  const readJson = async (name: string) => {
    const text = await readText(name);
    return text === undefined ? undefined : parseJsonObject(text, `${where}/${name}`);
  };
  const config = await readJson(CONFIG_FILE);
  if (config === undefined)
    throw new Error(`${where}: no ${CONFIG_FILE} (every HF model folder has one; are these the right files?)`);
  const family = familyOf(config);
  const weightFiles = await readWeightFiles(files, readText);
  const headers = new Map(weightFiles.flatMap((file) => [...file.header.tensors]));
  checkConfigFitsWeights(family, config, headers, where);
  const model = modelWithWeights(family, config, decodeWeights(weightFiles, where, dtype));
  const hasTokenizer = (await readText("tokenizer.json")) !== undefined || (await readText("vocab.json")) !== undefined;
  const tokenizer = hasTokenizer ? await Tokenizer.fromFiles(readText, where) : null;
  const generationConfig: JsonObject | null = (await readJson(GENERATION_CONFIG_FILE)) ?? null;
  return { model, tokenizer, config, generationConfig, folder: where };
}

/** model.safetensors, or the shards its index names (each once), with their headers checked. */
async function readWeightFiles(
  files: ModelFiles,
  readText: (name: string) => Promise<string | undefined>,
): Promise<WeightFile[]> {
  const where = files.where;
  const single = await files.read(WEIGHTS_FILE);
  if (single !== undefined) return [weightFile(WEIGHTS_FILE, single, where)];
  const indexText = await readText(WEIGHTS_INDEX_FILE);
  if (indexText === undefined) {
    throw new Error(
      `${where}: no ${WEIGHTS_FILE} or ${WEIGHTS_INDEX_FILE} (tsvene reads safetensors weights; ` +
        "give the model folder's files, including its weights)",
    );
  }
  const map = parseWeightIndex(indexText, `${where}/${WEIGHTS_INDEX_FILE}`);
  const shards: WeightFile[] = [];
  for (const shard of new Set(map.values())) {
    const bytes = await files.read(shard);
    if (bytes === undefined) throw new Error(`${where}: ${WEIGHTS_INDEX_FILE} names shard ${shard}, which is missing`);
    const file = weightFile(shard, bytes, where);
    const absent = [...map].find(([name, inFile]) => inFile === shard && !file.header.tensors.has(name));
    if (absent !== undefined)
      throw new Error(
        `${where}: ${WEIGHTS_INDEX_FILE} puts "${absent[0]}" in shard ${shard}, which does not contain it`,
      );
    shards.push(file);
  }
  return shards;
}

function weightFile(name: string, bytes: Uint8Array, where: string): WeightFile {
  return { name, bytes, header: parseSafetensorsHeader(bytes, `${where}/${name}`) };
}

/** Every weight of the files (parsed again as a whole: the header was only checked so far). */
function decodeWeights(
  files: readonly WeightFile[],
  where: string,
  dtype: WeightDtype,
): Map<string, Tensor | IntTensor> {
  const tensors = new Map<string, Tensor | IntTensor>();
  for (const { name, bytes } of files) {
    for (const [weight, t] of parseSafetensors(bytes, { source: `${where}/${name}`, dtype }).tensors)
      tensors.set(weight, t);
  }
  return tensors;
}
