/**
 * `tsvene generate`: greedy generation, optionally steered. Steering adds strength × a vector to a
 * component at one layer at every position, the prompt's and each generated token's (activation
 * addition: pyvene's AdditionIntervention with a source representation and no unit locations,
 * through IntervenableModel.generate with interveneOnPrompt); the vector is the mean input
 * embedding of the --steer text's tokens, or read from --steer-vector.
 */
import { extname } from "node:path";
import { readFile } from "node:fs/promises";
import { readSafetensors } from "../../io/safetensors.js";
import { AdditionIntervention } from "../../intervene/interventions/index.js";
import { IntervenableModel } from "../../intervene/intervenable-model.js";
import { generate, type GenerateOutput } from "../../models/generate.js";
import type { PretrainedModel } from "../../models/model.js";
import { Embedding } from "../../nn/layers.js";
import { Tensor, intTensor, mean, indexSelect } from "../../tensor/index.js";
import { UsageError, checkLayer, type OptionTable } from "../args.js";
import { COMMON_OPTIONS, checkComponent, loadModel, type Command, type LoadedModel } from "../context.js";
import { checkInputPath, checkOutputPaths, describeFsError } from "../files.js";
import { emit } from "../output.js";
import { checkVocabulary, contextLength, promptIds, tokenLabels } from "../text.js";

const DEFAULT_NEW_TOKENS = 20;

const options = {
  prompt: { kind: "string", form: "<text>", required: true, description: "The prompt to continue." },
  "max-new-tokens": {
    kind: "int",
    description: "How many tokens to generate at most (default 20, or what fits in the model's context).",
  },
  steer: {
    kind: "string",
    form: "<token or text>",
    description: "Steer towards this text: its tokens' mean input embedding is added.",
  },
  "steer-vector": {
    kind: "string",
    form: "<file>",
    description: "Steer with this vector instead: a JSON list of numbers, or a safetensors file with one tensor.",
  },
  layer: { kind: "int", description: "The layer steered (default: the middle layer)." },
  strength: { kind: "number", description: "The steering vector's multiplier (default 1)." },
  component: {
    kind: "string",
    form: "<component>",
    description: "The component the vector is added to (default block_output).",
  },
  ...COMMON_OPTIONS,
} as const satisfies OptionTable;

export const generateCommand: Command<typeof options> = {
  syntax: {
    name: "generate",
    summary: "Greedy generation, optionally steered by adding a vector at one layer.",
    synopsis:
      '--prompt "<text>" [--max-new-tokens N] [--steer "<text>" | --steer-vector <file>] ' +
      "[--layer L] [--strength s] [options]",
    options,
    notes: "The vector is added at every position: the prompt's tokens and each generated token.",
    examples: [
      'tsvene generate --prompt "Ka Bo lives in the city of" --max-new-tokens 3',
      'tsvene generate --prompt "Ka Bo lives in the city of" --max-new-tokens 6 --steer Paris --layer 2 --strength 4',
    ],
  },

  async run({ values }) {
    const steering = values.steer !== undefined || values["steer-vector"] !== undefined;
    if (values.steer !== undefined && values["steer-vector"] !== undefined)
      throw new UsageError("give --steer <text> or --steer-vector <file>, not both");
    for (const flag of ["layer", "strength", "component"] as const) {
      if (values[flag] !== undefined && !steering)
        throw new UsageError(`--${flag} only applies to steering: add --steer "<text>" or --steer-vector <file>`);
    }
    await checkOutputPaths({ "--out": values.out });
    const loaded = await loadModel(values.model, values.dtype);
    const { model, tokenizer } = loaded;
    const ids = promptIds(loaded, values.prompt!, "--prompt");
    const maxNewTokens = newTokenCount(ids.length, contextLength(model), values["max-new-tokens"]);
    const eos = tokenizer.eosTokenId ?? (model.config.eos_token_id as number | number[] | undefined);
    const generateOptions = { maxNewTokens, eosTokenId: eos, padTokenId: typeof eos === "number" ? eos : eos?.[0] };
    const inputIds = intTensor([ids]);

    let output: GenerateOutput;
    let steer: Record<string, unknown> | null = null;
    if (!steering) {
      output = generate(model, inputIds, generateOptions);
    } else {
      const layer = checkLayer(values.layer ?? Math.floor(model.numLayers / 2), model.numLayers, "--layer");
      const component = checkComponent(model, values.component ?? "block_output", "--component");
      const strength = values.strength ?? 1;
      const width = model.site(component, layer).dim;
      const { vector, from } =
        values.steer !== undefined
          ? steerEmbedding(loaded, values.steer)
          : { vector: await readVector(values["steer-vector"]!), from: values["steer-vector"]! };
      if (width !== null && vector.length !== width) {
        throw new UsageError(
          `the steering vector has ${vector.length} values, but ${component} at layer ${layer} is ${width} wide ` +
            `(expected a vector of ${width})`,
        );
      }
      const scaled = new Tensor(
        vector.map((v) => v * strength),
        [vector.length],
      );
      const im = new IntervenableModel({ layer, component, interventionType: AdditionIntervention }, model);
      // Without unit locations, interveneOnPrompt steers the prompt pass and every decoding step.
      output = im.generate({ inputIds }, null, {
        ...generateOptions,
        sourceRepresentations: scaled,
        interveneOnPrompt: true,
      }).generated;
      steer = { from, layer, component, strength };
    }

    const all = Array.from(output.sequences.data);
    const newIds = all.slice(ids.length);
    const text = tokenizer.decode(all, { skipSpecialTokens: true });
    const completion = tokenizer.decode(newIds, { skipSpecialTokens: true });
    const result = {
      prompt: values.prompt!,
      completion,
      text,
      ids: newIds,
      tokens: tokenLabels(tokenizer, newIds),
      steer,
    };
    await emit(result, `${result.text}\n`, values);
    return 0;
  },
};

/**
 * How many tokens to generate: never past the model's context, where positions beyond it have no
 * meaning. A count asked for that does not fit is refused; the default shrinks to what fits, with a note.
 */
function newTokenCount(promptLength: number, context: number | null, asked: number | undefined): number {
  const room = context === null ? Infinity : context - promptLength;
  if (asked === undefined) {
    if (room < DEFAULT_NEW_TOKENS) {
      process.stderr.write(
        `tsvene generate: generating ${room} tokens, as many as fit in the model's context of ${context}\n`,
      );
    }
    return Math.min(DEFAULT_NEW_TOKENS, room);
  }
  if (asked > room) {
    throw new UsageError(
      `--max-new-tokens ${asked}: the prompt is ${promptLength} tokens and the model's context is ${context}, ` +
        `so at most ${room} new tokens fit`,
    );
  }
  return asked;
}

/** The mean input-embedding row of the text's tokens. */
function steerEmbedding(loaded: LoadedModel, text: string): { vector: Float32Array; from: string[] } {
  const { model, tokenizer } = loaded;
  const ids = tokenizer.encode(text, { addSpecialTokens: false });
  if (ids.length === 0)
    throw new UsageError(`--steer must be text with at least one token, got ${JSON.stringify(text)}`);
  checkVocabulary(loaded, text, "--steer");
  const table = inputEmbedding(model, tokenizer.vocabSize);
  return { vector: mean(indexSelect(table, 0, ids), 0).data, from: tokenLabels(tokenizer, ids) };
}

/**
 * The token embedding table: the model's first Embedding with a row for every vocabulary entry
 * (position tables have fewer).
 */
function inputEmbedding(model: PretrainedModel, vocabSize: number): Tensor {
  const table = [...model.namedModules()]
    .map(([, m]) => m)
    .find((m): m is Embedding => m instanceof Embedding && m.numEmbeddings >= vocabSize);
  if (table === undefined)
    throw new UsageError(
      `--steer: this ${model.family} model has no token embedding table; give the vector with --steer-vector <file>`,
    );
  return table.weight;
}

/** A vector from a JSON list of numbers or a safetensors file holding one tensor. */
async function readVector(path: string): Promise<Float32Array> {
  const wrong = (why: string): never => {
    throw new UsageError(
      `--steer-vector ${path}: ${why} (expected a JSON list of numbers, or a safetensors file with one tensor)`,
    );
  };
  await checkInputPath("--steer-vector", path, "file", "a JSON list of numbers, or a safetensors file with one tensor");
  if (extname(path) === ".safetensors") {
    const { tensors } = await readSafetensors(path).catch((e: Error) => wrong(e.message));
    if (tensors.size !== 1) wrong(`the file holds ${tensors.size} tensors`);
    const [t] = tensors.values();
    return t instanceof Tensor ? t.data : Float32Array.from(t.data);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, "utf8"));
  } catch (e) {
    wrong(e instanceof SyntaxError ? `not valid JSON (${e.message})` : describeFsError(e));
  }
  if (
    !Array.isArray(parsed) ||
    parsed.length === 0 ||
    !parsed.every((v) => typeof v === "number" && Number.isFinite(v))
  )
    wrong("not a non-empty list of numbers");
  return Float32Array.from(parsed as number[]);
}
