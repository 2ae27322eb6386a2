/**
 * `tsvene lens`: the logit lens. The residual stream after each block (and the embeddings) is read
 * through the model's final norm and head, giving at each layer × position the target's probability
 * and the most likely tokens; --dla adds the direct logit attribution of each layer's attention and
 * MLP output (and each head) to the target's logit at the last position.
 */
import { directLogitAttribution, logitLens, type LensResult, type LogitAttributionResult } from "../../sweeps/index.js";
import { intTensor } from "../../tensor/index.js";
import { gridReport, labelledGrid, type GridPanel, type LabelledGrid } from "../../viz/index.js";
import { UsageError, type OptionTable } from "../args.js";
import { COMMON_OPTIONS, loadModel, type Command } from "../context.js";
import { factsFileOf, readFacts } from "../facts.js";
import { checkOutputPaths, textFile } from "../files.js";
import { bestCellLine, emit, formatScore, gridJson, labelledTable, shortLabel } from "../output.js";
import { promptIds, targetToken, tokenLabels } from "../text.js";

const options = {
  prompt: {
    kind: "string",
    form: "<text>",
    description: "The prompt (default: the example prompt of the model's facts.json).",
  },
  target: {
    kind: "string",
    form: "<token>",
    description: "The token whose probability is read in every cell (default: the model's prediction at the end).",
  },
  "top-k": { kind: "int", min: 1, description: "Most likely tokens listed per cell in the JSON (default 5)." },
  dla: {
    kind: "boolean",
    description: "Add the direct logit attribution of each layer's attention and MLP (and each head) to the target.",
  },
  contrast: {
    kind: "string",
    form: "<token>",
    description: "With --dla: attribute the logit difference target − contrast instead of the target's logit.",
  },
  report: { kind: "string", form: "<file.html>", description: "Write an HTML report with heat maps." },
  ...COMMON_OPTIONS,
} as const satisfies OptionTable;

export const lensCommand: Command<typeof options> = {
  syntax: {
    name: "lens",
    summary: "Logit lens: what does each layer's residual stream predict, read through the model's head?",
    synopsis: '[--prompt "<text>"] [options]',
    options,
    notes: [
      'Prints the target\'s probability per layer × token (row "embed" is the embeddings) and the top token',
      "of each cell. --json prints the LensResult with the model and prompt: the grid as rows of values",
      "labelled by layer and token, and each cell's top tokens; with --dla also the per-layer contributions.",
    ].join("\n"),
    examples: [
      "tsvene lens --report lens.html",
      'tsvene lens --prompt "Fact : Ka Bo speaks" --target Arabic --top-k 3 --dla --contrast French ' +
        "--report lens.html",
    ],
  },

  async run({ values }) {
    await checkOutputPaths({ "--report": values.report, "--out": values.out });
    if (values.contrast !== undefined && !values.dla) {
      throw new UsageError("--contrast is read only with --dla (expected --dla --contrast <token>)");
    }
    const loaded = await loadModel(values.model, values.dtype);
    const { model, tokenizer, folder } = loaded;
    const prompt = values.prompt ?? (await demoPrompt(folder));
    const ids = promptIds(loaded, prompt, "--prompt");
    const tokens = tokenLabels(tokenizer, ids);
    const target = values.target === undefined ? undefined : targetToken(loaded, prompt, values.target, "--target");
    if (target?.note) process.stderr.write(`tsvene lens: ${target.note}\n`);
    const contrast =
      values.contrast === undefined ? undefined : targetToken(loaded, prompt, values.contrast, "--contrast");
    if (contrast?.note) process.stderr.write(`tsvene lens: ${contrast.note}\n`);
    const inputIds = intTensor([ids]);
    const topK = values["top-k"] ?? 5;
    if (topK > tokenizer.vocabSize) {
      throw new UsageError(`--top-k ${topK} is more than the vocabulary (expected --top-k 1..${tokenizer.vocabSize})`);
    }
    const lens = logitLens(model, { inputIds, tokens, target: target?.id, topK });
    const targetLabel = target?.label ?? tokenizer.decode([lens.target]);
    if (contrast !== undefined && contrast.id === lens.target) {
      throw new UsageError(
        `--contrast must be another token than the target (both are ${JSON.stringify(targetLabel)})`,
      );
    }
    const dla = values.dla
      ? directLogitAttribution(model, { inputIds, target: lens.target, contrast: contrast?.id })
      : null;
    const run = {
      model: loaded.name,
      prompt,
      targetLabel,
      contrastLabel: dla?.contrast == null ? null : tokenizer.decode([dla.contrast]),
    };
    const grid = lensGrid(lens);
    const topLabels = (cell: number) =>
      Array.from(lens.top.ids.subarray(cell * lens.top.k, (cell + 1) * lens.top.k), (id) => tokenizer.decode([id]));
    const cells = grid.values.length;
    const files =
      values.report === undefined ? [] : [textFile("--report", values.report, lensReport(lens, dla, grid, run))];
    const { kind, targetProbability, top, ...rest } = lens;
    const byRow = <T>(cell: (i: number) => T) =>
      grid.rowLabels.map((_, r) => Array.from({ length: tokens.length }, (_, c) => cell(r * tokens.length + c)));
    const json = {
      kind,
      model: loaded.name,
      prompt,
      ...rest,
      targetLabel,
      topK: top.k,
      targetProbability: {
        layers: targetProbability.layers,
        positions: targetProbability.positions,
        ...gridJson(grid),
      },
      top: {
        k: top.k,
        tokens: byRow(topLabels),
        ids: byRow((i) => Array.from(top.ids.subarray(i * top.k, (i + 1) * top.k))),
        probabilities: byRow((i) => Array.from(top.probabilities.subarray(i * top.k, (i + 1) * top.k))),
      },
      ...(dla && { directLogitAttribution: dlaJson(dla, run.contrastLabel) }),
    };
    const topToken = (r: number, c: number) => {
      const i = r * tokens.length + c;
      return `${shortLabel(topLabels(i)[0])} ${formatScore(top.probabilities[i * top.k])}`;
    };
    const text = [
      `logit lens: probability of ${JSON.stringify(targetLabel)} (token ${lens.target}) at each layer and position`,
      labelledTable(grid).trimEnd(),
      `best: ${bestCellLine(grid)}`,
      "top token of each cell (its probability):",
      labelledTable(
        { ...grid, values: new Float32Array(cells).fill(Number.NaN) },
        { cell: topToken, best: "none" },
      ).trimEnd(),
      ...(dla ? [describeDla(dla, run.targetLabel, run.contrastLabel)] : []),
      ...(values.report === undefined ? [] : [`report: ${values.report}`]),
      "",
    ].join("\n");
    await emit(json, text, values, files);
    return 0;
  },
};

/** The model's example prompt, used when no prompt is given. */
async function demoPrompt(folder: string): Promise<string> {
  const factsFile = factsFileOf(folder);
  if (factsFile === null) {
    throw new UsageError(
      '--prompt is required: this model has no facts.json to take an example from (expected --prompt "<text>")',
    );
  }
  return (await readFacts(factsFile)).demo.prompt;
}

/** The lens's target probabilities, layers × tokens, the embeddings' row labelled "embed". */
function lensGrid(lens: LensResult): LabelledGrid {
  const grid = labelledGrid(lens.targetProbability, lens.tokens);
  return { ...grid, rowLabels: lens.targetProbability.layers.map((l) => (l < 0 ? "embed" : String(l))) };
}

/** Per layer: the attention and the MLP output's contributions. */
function dlaLayerGrid(dla: LogitAttributionResult): LabelledGrid {
  const layers = dla.attention.length;
  return {
    values: Float32Array.from({ length: layers * 2 }, (_, i) => (i % 2 === 0 ? dla.attention : dla.mlp)[i >> 1]),
    rowTitle: "layer",
    colTitle: "part",
    rowLabels: Array.from({ length: layers }, (_, l) => String(l)),
    colLabels: ["attention", "mlp"],
  };
}

/** Per layer and head: each head's contribution through the output projection. */
function dlaHeadGrid(dla: LogitAttributionResult): LabelledGrid | null {
  if (dla.heads === null) return null;
  return {
    values: dla.heads.values,
    rowTitle: "layer",
    colTitle: "head",
    rowLabels: Array.from({ length: dla.attention.length }, (_, l) => String(l)),
    colLabels: Array.from({ length: dla.heads.count }, (_, h) => String(h)),
  };
}

function dlaMeasure(targetLabel: string, contrastLabel: string | null): string {
  return contrastLabel === null ? `logit(${targetLabel})` : `logit(${targetLabel}) − logit(${contrastLabel})`;
}

function sum(values: Float32Array): number {
  return values.reduce((a, b) => a + b, 0);
}

function dlaJson(dla: LogitAttributionResult, contrastLabel: string | null) {
  const heads = dlaHeadGrid(dla);
  const { kind, attention, mlp, heads: headValues, ...rest } = dla;
  return {
    kind,
    ...rest,
    contrastLabel,
    layers: gridJson(dlaLayerGrid(dla)),
    ...(heads && { heads: { ...gridJson(heads), bias: Array.from(headValues!.bias) } }),
  };
}

function describeDla(dla: LogitAttributionResult, targetLabel: string, contrastLabel: string | null): string {
  const heads = dlaHeadGrid(dla);
  return [
    `direct logit attribution of ${dlaMeasure(targetLabel, contrastLabel)} at position ${dla.position}: ` +
      `total ${formatScore(dla.total)} = embeddings ${formatScore(dla.embeddings)} ` +
      `+ attention ${formatScore(sum(dla.attention))} + MLP ${formatScore(sum(dla.mlp))} ` +
      `+ bias ${formatScore(dla.bias)}`,
    labelledTable(dlaLayerGrid(dla), { best: "magnitude" }).trimEnd(),
    ...(heads ? ["per head:", labelledTable(heads, { best: "magnitude" }).trimEnd()] : []),
  ].join("\n");
}

function lensReport(
  lens: LensResult,
  dla: LogitAttributionResult | null,
  grid: LabelledGrid,
  run: { model: string; prompt: string; targetLabel: string; contrastLabel: string | null },
): string {
  const k = lens.top.k;
  const top1 = {
    ...grid,
    values: Float32Array.from({ length: grid.values.length }, (_, i) => lens.top.probabilities[i * k]),
  };
  const panels: GridPanel[] = [
    {
      grid,
      heading: `Probability of ${JSON.stringify(run.targetLabel)} read from each layer`,
      valueLabel: `p(${run.targetLabel})`,
      caption: "Each cell: the residual stream after that layer, through the final norm and head.",
    },
    {
      grid: top1,
      heading: "Probability of each cell's most likely token",
      valueLabel: "top-1 p",
      caption: "How sure each layer's reading is; the tokens themselves are in the --json output.",
    },
  ];
  if (dla) {
    const measure = dlaMeasure(run.targetLabel, run.contrastLabel);
    panels.push({
      grid: dlaLayerGrid(dla),
      heading: `Direct contribution of each layer to ${measure}`,
      valueLabel: `Δ ${measure}`,
      caption:
        `At position ${dla.position}; the embeddings add ${formatScore(dla.embeddings)}, ` +
        `the biases ${formatScore(dla.bias)}.`,
    });
    const heads = dlaHeadGrid(dla);
    if (heads) {
      panels.push({
        grid: heads,
        heading: `Direct contribution of each head to ${measure}`,
        valueLabel: `Δ ${measure}`,
        caption: "Through the attention output projection; its bias is not any head's.",
      });
    }
  }
  return gridReport({
    title: "Logit lens",
    tokens: lens.tokens,
    fields: [
      ["model", run.model],
      ["prompt", run.prompt],
      ["target", `${JSON.stringify(run.targetLabel)} (token ${lens.target})`],
      ...(dla ? [["direct logit attribution", `total ${formatScore(dla.total)}`] as const] : []),
    ],
    panels,
  });
}
