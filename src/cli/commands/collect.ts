/**
 * `tsvene collect`: a component's activations over a list of prompts, written as a safetensors
 * file with one [examples, positions, width] tensor per layer (`layer_{l}.{component}`), and a
 * JSON summary beside it saying which positions of each example are real tokens.
 */
import { readFile } from "node:fs/promises";
import { writeSafetensors } from "../../io/safetensors.js";
import { collectActivations } from "../../sweeps/index.js";
import type { CollectResult } from "../../sweeps/results.js";
import { Tensor, intTensor } from "../../tensor/index.js";
import { UsageError, parseLayerList, type OptionTable } from "../args.js";
import { COMMON_OPTIONS, checkComponent, loadModel, type Command } from "../context.js";
import { checkInputPath, checkOutputPaths, describeFsError, textFile } from "../files.js";
import { emit, toJson } from "../output.js";
import { progressBar } from "../progress.js";
import { promptIds } from "../text.js";

const options = {
  prompts: {
    kind: "string",
    form: "<file>",
    description: "A text file with one prompt per line (empty lines are skipped).",
  },
  prompt: {
    kind: "string",
    form: "<text>",
    multiple: true,
    description: "A prompt; repeat the flag for several (instead of --prompts).",
  },
  layers: { kind: "string", form: "0,1,2|all", description: "The layers to collect (default all)." },
  component: {
    kind: "string",
    form: "<component>",
    description: "The component collected, e.g. block_output, mlp_output (default block_output).",
  },
  "batch-size": { kind: "int", min: 1, description: "Prompts per forward pass (default 8)." },
  ...COMMON_OPTIONS,
  out: {
    kind: "string",
    form: "<file.safetensors>",
    required: true,
    description: "The safetensors file to write; the summary goes beside it as .json.",
  },
} as const satisfies OptionTable;

/** How the summary file beside --out is named in errors. */
const SUMMARY_FLAG = "--out (its .json summary)";

export const collectCommand: Command<typeof options> = {
  syntax: {
    name: "collect",
    summary: "Collect a component's activations over prompts into a safetensors file.",
    synopsis: "(--prompts <file> | --prompt <text> ...) --out <file.safetensors> [options]",
    options,
    notes: [
      "Prompts are padded on the right to the longest; the summary's `lengths` says how many positions",
      "of each example are real tokens (the rest are padding and carry no meaning).",
    ].join("\n"),
    examples: [
      'tsvene collect --prompt "Ka Bo lives in the city of" --prompt "Ro Vi speaks" ' +
        "--layers 0,1 --out acts.safetensors",
      'tsvene collect --prompt "Mi Ro Ka plays" --component mlp_output --out mlp.safetensors',
    ],
  },

  async run({ values }) {
    const file = values.out!;
    const summaryFile = file.endsWith(".safetensors")
      ? `${file.slice(0, -".safetensors".length)}.json`
      : `${file}.json`;
    await checkOutputPaths({ "--out": file, [SUMMARY_FLAG]: summaryFile });
    const prompts = await readPrompts(values.prompts, values.prompt);
    const loaded = await loadModel(values.model, values.dtype);
    const { model, tokenizer } = loaded;
    const component = checkComponent(model, values.component ?? "block_output", "--component");
    const layers = parseLayerList(values.layers ?? "all", model.numLayers, "--layers");
    const rows = prompts.map((p) => promptIds(loaded, p.text, p.label));
    const lengths = rows.map((row) => row.length);
    // Right padding keeps position i as every prompt's i-th token.
    const longest = Math.max(...lengths);
    const fill = (count: number, value: number) => new Array<number>(count).fill(value);
    const padId = tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0;
    const inputIds = intTensor(rows.map((row) => [...row, ...fill(longest - row.length, padId)]));
    const attentionMask = intTensor(rows.map((row) => [...fill(row.length, 1), ...fill(longest - row.length, 0)]));

    const bar = progressBar(`collect ${component}`, { quiet: values.quiet });
    let result: CollectResult;
    try {
      result = collectActivations(model, {
        inputIds,
        attentionMask,
        component,
        layers,
        batchSize: values["batch-size"] ?? 8,
        onProgress: bar.update,
      });
    } finally {
      bar.finish();
    }

    const tensors = Object.fromEntries(
      result.activations.map((a) => [`layer_${a.layer}.${component}`, new Tensor(a.values, a.shape)]),
    );
    const summary = {
      kind: "collect",
      component,
      layers,
      file,
      tensors: result.activations.map((a) => ({ name: `layer_${a.layer}.${component}`, shape: a.shape })),
      prompts: prompts.map((p) => p.text),
      lengths,
    };
    const metadata = { component, layers: layers.join(","), lengths: lengths.join(",") };
    const activations = {
      flag: "--out",
      path: file,
      write: (path: string) => writeSafetensors(path, tensors, { metadata }),
    };
    const [examples, positions, width] = result.activations[0]?.shape ?? [prompts.length, 0, 0];
    const text =
      `collected ${component} at ${layers.length} layer(s) for ${examples} prompt(s): ` +
      `[${examples}, ${positions}, ${width}] each\n` +
      `activations: ${file}\nsummary: ${summaryFile}\n`;
    const summaryJson = textFile(SUMMARY_FLAG, summaryFile, `${toJson(summary)}\n`);
    await emit(summary, text, { json: values.json }, [activations, summaryJson]);
    return 0;
  },
};

/** A prompt and where it came from, for errors: "line 3 of --prompts lines.txt" or "--prompt". */
interface SourcedPrompt {
  text: string;
  label: string;
}

/** The prompts from --prompts (a file of lines) or the --prompt flags: exactly one of the two. */
async function readPrompts(file: string | undefined, given: string[] | undefined): Promise<SourcedPrompt[]> {
  if ((file === undefined) === (given === undefined)) {
    throw new UsageError(
      'give the prompts either as --prompts <file> (one per line) or as --prompt "<text>" (repeatable), ' +
        "not both and not neither",
    );
  }
  if (given !== undefined) {
    return given.map((text, i) => ({
      text,
      label: given.length === 1 ? "--prompt" : `--prompt (${i + 1} of ${given.length})`,
    }));
  }
  const expected = "a text file with one prompt per line";
  await checkInputPath("--prompts", file!, "file", expected);
  const text = await readFile(file!, "utf8").catch((e: unknown) => {
    throw new UsageError(`--prompts ${file}: cannot read the file (${describeFsError(e)}); expected ${expected}`);
  });
  // Line numbers count every line, empty ones too, so they match what an editor shows.
  const prompts = text
    .split(/\r?\n/)
    .flatMap((line, i) => (line.trim() === "" ? [] : [{ text: line, label: `line ${i + 1} of --prompts ${file}` }]));
  if (prompts.length === 0)
    throw new UsageError(`--prompts ${file}: the file has no prompts (expected one prompt per line)`);
  return prompts;
}
