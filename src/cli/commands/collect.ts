/**
 * `tsvene collect`: a component's activations over a list of prompts, written as a safetensors
 * file with one [examples, positions, width] tensor per layer (`layer_{l}.{component}`), and a
 * JSON summary beside it saying which positions of each example are real tokens.
 */
import { readFile, writeFile } from "node:fs/promises";
import { writeSafetensors } from "../../io/safetensors.js";
import { collectActivations } from "../../sweeps/index.js";
import type { CollectResult } from "../../sweeps/results.js";
import { Tensor } from "../../tensor/index.js";
import { UsageError, parseLayerList, type OptionTable } from "../args.js";
import { COMMON_OPTIONS, checkComponent, loadModel, type Command } from "../context.js";
import { emit, toJson } from "../output.js";
import { progressBar } from "../progress.js";

const options = {
  prompts: { kind: "string", form: "<file>", description: "A text file with one prompt per line (empty lines are skipped)." },
  prompt: { kind: "string", form: "<text>", multiple: true, description: "A prompt; repeat the flag for several (instead of --prompts)." },
  layers: { kind: "string", form: "0,1,2|all", description: "The layers to collect (default all)." },
  component: { kind: "string", form: "<component>", description: "The component collected, e.g. block_output, mlp_output (default block_output)." },
  "batch-size": { kind: "int", min: 1, description: "Prompts per forward pass (default 8)." },
  ...COMMON_OPTIONS,
  out: { kind: "string", form: "<file.safetensors>", required: true, description: "The safetensors file to write; the summary goes beside it as .json." },
} as const satisfies OptionTable;

export const collectCommand: Command<typeof options> = {
  syntax: {
    name: "collect",
    summary: "Collect a component's activations over prompts into a safetensors file.",
    synopsis: "(--prompts <file> | --prompt <text> ...) --out <file.safetensors> [options]",
    options,
    notes: [
      "Prompts are padded on the right to the longest; the summary's `lengths` says how many positions",
      "of each example are real tokens (the rest are padding and carry no meaning).",
      "",
      'Example: tsvene collect --prompt "Ada Lovelace lives in" --prompt "Alan Turing lives in" --layers 0,1 --out acts.safetensors',
    ].join("\n"),
  },

  async run({ values }) {
    const prompts = await readPrompts(values.prompts, values.prompt);
    const { model, tokenizer } = await loadModel(values.model);
    const component = checkComponent(model, values.component ?? "block_output", "--component");
    const layers = parseLayerList(values.layers ?? "all", model.numLayers, "--layers");
    // Right padding keeps position i as every prompt's i-th token.
    const { inputIds, attentionMask } = tokenizer.encodeBatch(prompts, { paddingSide: "right", padTokenId: tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0 });
    const longest = inputIds.shape[1];
    const lengths = prompts.map((_, b) => attentionMask.data.subarray(b * longest, (b + 1) * longest).reduce((n, m) => n + m, 0));
    const empty = lengths.indexOf(0);
    if (empty >= 0) throw new UsageError(`prompt ${empty + 1} (${JSON.stringify(prompts[empty])}) has no tokens; every prompt needs at least one`);

    const bar = progressBar(`collect ${component}`, { quiet: values.quiet });
    let result: CollectResult;
    try {
      result = collectActivations(model, { inputIds, attentionMask, component, layers, batchSize: values["batch-size"] ?? 8, onProgress: bar.update });
    } finally {
      bar.finish();
    }

    const file = values.out!;
    const summaryFile = file.endsWith(".safetensors") ? file.slice(0, -".safetensors".length) + ".json" : `${file}.json`;
    const tensors = Object.fromEntries(result.activations.map((a) => [`layer_${a.layer}.${component}`, new Tensor(a.values, a.shape)]));
    await writeSafetensors(file, tensors, { metadata: { component, layers: layers.join(","), lengths: lengths.join(",") } });
    const summary = {
      kind: "collect", component, layers, file,
      tensors: result.activations.map((a) => ({ name: `layer_${a.layer}.${component}`, shape: a.shape })),
      prompts, lengths,
    };
    await writeFile(summaryFile, toJson(summary) + "\n");
    const [examples, positions, width] = result.activations[0]?.shape ?? [prompts.length, 0, 0];
    const text = `collected ${component} at ${layers.length} layer(s) for ${examples} prompt(s): [${examples}, ${positions}, ${width}] each\n`
      + `activations: ${file}\nsummary: ${summaryFile}\n`;
    await emit(summary, text, { json: values.json });
    return 0;
  },
};

/** The prompts from --prompts (a file of lines) or the --prompt flags: exactly one of the two. */
async function readPrompts(file: string | undefined, given: string[] | undefined): Promise<string[]> {
  if ((file === undefined) === (given === undefined)) {
    throw new UsageError('give the prompts either as --prompts <file> (one per line) or as --prompt "<text>" (repeatable), not both and not neither');
  }
  if (given !== undefined) return given;
  let text: string;
  try {
    text = await readFile(file!, "utf8");
  } catch (e) {
    throw new UsageError(`--prompts ${file}: cannot read the file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); expected a text file with one prompt per line`);
  }
  const prompts = text.split(/\r?\n/).filter((line) => line.trim() !== "");
  if (prompts.length === 0) throw new UsageError(`--prompts ${file}: the file has no prompts (expected one prompt per line)`);
  return prompts;
}
