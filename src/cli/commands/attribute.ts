/**
 * `tsvene attribute`: attribution patching, the gradient estimate of activation patching. One clean
 * run, one corrupted run and one backward pass estimate, for every layer and position (or head),
 * how much patching the clean value into the corrupted run would move the target's metric.
 */
import { attributionPatching, type AttributionResult } from "../../sweeps/index.js";
import { intTensor } from "../../tensor/index.js";
import { gridReport, labelledGrid, type LabelledGrid } from "../../viz/index.js";
import { UsageError, type OptionTable } from "../args.js";
import { COMMON_OPTIONS, checkComponent, loadModel, type Command } from "../context.js";
import { checkOutputPaths, textFile } from "../files.js";
import { bestCellLine, emit, formatScore, gridJson, labelledTable } from "../output.js";
import { DEFAULT_PAIR, differingPositions, promptPair, targetToken, tokenLabels } from "../text.js";

const options = {
  clean: {
    kind: "string",
    form: "<text>",
    description: `The prompt the patched values come from (default on the embedded model: "${DEFAULT_PAIR.source}").`,
  },
  corrupted: {
    kind: "string",
    form: "<text>",
    description: `The prompt that is patched, same number of tokens (default "${DEFAULT_PAIR.base}").`,
  },
  component: {
    kind: "string",
    form: "<component>",
    description:
      "The component at each layer: per position (block_output, the default; mlp_output, attention_output, …) " +
      "or per head (head_attention_value_output, …).",
  },
  unit: {
    kind: "choice",
    choices: ["pos", "h", "h.pos"],
    description:
      "Cells per position (pos: the default for per-position components), per head (h: the default for " +
      "head components) or per head and position (h.pos).",
  },
  target: {
    kind: "string",
    form: "<token>",
    description: "The token to measure at the last position (default: the clean run's top token).",
  },
  contrast: {
    kind: "string",
    form: "<token>",
    description:
      "With --metric logitDiff (implied): the token whose logit is subtracted (default: the corrupted run's top).",
  },
  metric: {
    kind: "choice",
    choices: ["probability", "logit", "logitDiff"],
    description: "What is measured (default probability; logitDiff is target − contrast).",
  },
  report: { kind: "string", form: "<file.html>", description: "Write an HTML report with a heat map." },
  ...COMMON_OPTIONS,
} as const satisfies OptionTable;

export const attributeCommand: Command<typeof options> = {
  syntax: {
    name: "attribute",
    summary: "Attribution patching: a gradient estimate of activation patching for every site in one pass.",
    synopsis: '[--clean "<text>" --corrupted "<text>"] [options]',
    options,
    notes: [
      "Each cell estimates how much patching its clean value into the corrupted run changes the metric",
      "((clean − corrupted) · gradient). Prints the grid (the largest estimate in size >); --json prints the",
      "AttributionResult with the model and both prompts, its grid as rows of values with row and column labels.",
    ].join("\n"),
    examples: [
      "tsvene attribute --report attribute.html",
      'tsvene attribute --clean "Fact : Ro Bo speaks" --corrupted "Fact : Ka Bo speaks" ' +
        "--component head_attention_value_output --target Norwegian --contrast Arabic",
    ],
  },

  async run({ values }) {
    await checkOutputPaths({ "--report": values.report, "--out": values.out });
    const loaded = await loadModel(values.model, values.dtype);
    const { model, tokenizer } = loaded;
    // The pair's "base" is the corrupted run, as in activation patching; its "source" the clean one.
    const pair = promptPair(loaded, values, ["corrupted", "clean"]);
    const component = checkComponent(model, values.component ?? "block_output", "--component");
    const heads = model.site(component, 0).heads !== undefined;
    if (values.unit !== undefined && (values.unit === "pos") === heads) {
      throw new UsageError(
        `--unit ${values.unit} does not fit --component ${component} ` +
          `(expected ${heads ? "--unit h or h.pos for a head component" : "--unit pos for a per-position component"})`,
      );
    }
    const metric = values.metric ?? (values.contrast === undefined ? "probability" : "logitDiff");
    if (values.contrast !== undefined && metric !== "logitDiff") {
      throw new UsageError(`--contrast is only read by --metric logitDiff, got --metric ${metric}`);
    }
    const target =
      values.target === undefined ? undefined : targetToken(loaded, pair.source, values.target, "--target");
    if (target?.note) process.stderr.write(`tsvene attribute: ${target.note}\n`);
    const contrast =
      values.contrast === undefined ? undefined : targetToken(loaded, pair.base, values.contrast, "--contrast");
    if (contrast?.note) process.stderr.write(`tsvene attribute: ${contrast.note}\n`);
    if (contrast !== undefined && target !== undefined && contrast.id === target.id) {
      throw new UsageError(`--contrast must be another token than --target (both are ${JSON.stringify(target.label)})`);
    }
    const tokens = tokenLabels(tokenizer, pair.sourceIds);
    let result = attributionPatching(model, {
      clean: intTensor([pair.sourceIds]),
      corrupted: intTensor([pair.baseIds]),
      tokens,
      component,
      unit: values.unit,
      target: target?.id,
      targetLabel: target?.label,
      contrast: contrast?.id,
      metric,
    });
    // Without --target the sweep picks the clean run's top token, and only the tokenizer can name it.
    result = { ...result, targetLabel: target?.label ?? tokenizer.decode([result.target]) };
    const contrastLabel = result.contrast === null ? null : tokenizer.decode([result.contrast]);
    const grid = attributionGrid(result);
    const differing = differingPositions(tokens, tokenLabels(tokenizer, pair.baseIds));
    const run = { model: loaded.name, clean: pair.source, corrupted: pair.base, contrastLabel, differing };
    const files =
      values.report === undefined ? [] : [textFile("--report", values.report, attributionReport(result, grid, run))];
    const { kind, grid: scoreGrid, ...rest } = result;
    const json = {
      kind,
      model: loaded.name,
      cleanPrompt: pair.source,
      corruptedPrompt: pair.base,
      ...rest,
      contrastLabel,
      differingPositions: differing,
      grid: { layers: scoreGrid.layers, ...gridJson(grid) },
    };
    const text =
      describeAttribution(result, grid, contrastLabel, differing) +
      (values.report === undefined ? "" : `report: ${values.report}\n`);
    await emit(json, text, values, files);
    return 0;
  },
};

/** The result's grid, labelled by its unit: layer × token, layer × head, or layer.head × token. */
function attributionGrid(r: AttributionResult): LabelledGrid {
  if (r.unit === "pos") return labelledGrid(r.grid, r.tokens);
  if (r.unit === "h") {
    return {
      values: r.grid.values,
      rowTitle: "layer",
      colTitle: "head",
      rowLabels: r.grid.layers.map(String),
      colLabels: r.grid.positions.map(String),
    };
  }
  return {
    values: r.grid.values,
    rowTitle: "layer.head",
    colTitle: "position",
    rowLabels: r.grid.layers.map((l, row) => `${l}.${r.heads![row]}`),
    colLabels: r.grid.positions.map((p) => r.tokens[p]),
    colKeys: r.grid.positions,
  };
}

function metricName(r: AttributionResult, contrastLabel: string | null): string {
  if (r.metric === "logitDiff") return `logit(${r.targetLabel}) − logit(${contrastLabel})`;
  return `${r.metric === "probability" ? "p" : "logit"}(${r.targetLabel})`;
}

function describeAttribution(
  r: AttributionResult,
  grid: LabelledGrid,
  contrastLabel: string | null,
  differing: readonly number[],
): string {
  const marked = grid.colKeys ? differing.map((p) => grid.colKeys!.indexOf(p)) : [];
  return [
    `attribution patching of ${r.component} (unit ${r.unit}): estimated change of ${metricName(r, contrastLabel)} ` +
      "at the last position when the clean value is patched into the corrupted run",
    `clean ${formatScore(r.clean)}, corrupted ${formatScore(r.corrupted)}` +
      (marked.length > 0 ? " (positions where the prompts differ are marked *)" : ""),
    labelledTable(grid, { markedCols: marked, best: "magnitude" }).trimEnd(),
    `largest: ${bestCellLine(grid, "magnitude")}`,
    "",
  ].join("\n");
}

function attributionReport(
  r: AttributionResult,
  grid: LabelledGrid,
  run: { model: string; clean: string; corrupted: string; contrastLabel: string | null; differing: number[] },
): string {
  const metric = metricName(r, run.contrastLabel);
  return gridReport({
    title: "Attribution patching",
    tokens: r.tokens,
    markedPositions: run.differing,
    fields: [
      ["model", run.model],
      ["clean", run.clean],
      ["corrupted", run.corrupted],
      ["component", `${r.component} (unit ${r.unit})`],
      ["measured", `${metric} at the last position`],
      ["clean run", formatScore(r.clean)],
      ["corrupted run", formatScore(r.corrupted)],
    ],
    panels: [
      {
        grid,
        heading: `Estimated change of ${metric} from patching the clean value`,
        valueLabel: `Δ ${metric}`,
        markedCols: grid.colKeys ? run.differing.map((p) => grid.colKeys!.indexOf(p)) : [],
        caption: "Each cell: (clean − corrupted) · ∂metric/∂activation, summed over the cell's features.",
      },
    ],
  });
}
