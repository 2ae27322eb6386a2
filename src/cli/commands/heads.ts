/**
 * `tsvene heads`: head patching between two prompts of the same length. Each attention head of
 * each layer of the base run takes its value from the source run in turn (at every position, or at
 * one position at a time); the target's metric on the base run shows which heads carry the difference.
 */
import { headPatching } from "../../sweeps/index.js";
import type { HeadPatchResult } from "../../sweeps/results.js";
import { intTensor } from "../../tensor/index.js";
import { headGridHeading, headLabelledGrid, headsReport, headsResultJson } from "../../viz/heads.js";
import { UsageError, type OptionTable } from "../args.js";
import { COMMON_OPTIONS, checkComponent, loadModel, type Command, type LoadedModel } from "../context.js";
import { checkOutputPaths, textFile } from "../files.js";
import { bestCellLine, emit, formatScore, labelledTable } from "../output.js";
import { progressBar } from "../progress.js";
import { DEFAULT_PAIR, differingPositions, promptPair, targetToken, tokenLabels } from "../text.js";

/** The embedded model's example pair: two people of two-token names who live in different cities. */

const options = {
  base: {
    kind: "string",
    form: "<text>",
    description: `The prompt that is patched (default on the embedded model: "${DEFAULT_PAIR.base}").`,
  },
  source: {
    kind: "string",
    form: "<text>",
    description: `The prompt the patched values come from, same number of tokens (default "${DEFAULT_PAIR.source}").`,
  },
  component: {
    kind: "string",
    form: "<component>",
    description: "The head component patched, e.g. head_attention_value_output (the default) or head_query_output.",
  },
  positions: {
    kind: "choice",
    choices: ["all", "each"],
    description: "all: patch each head at every position (one grid, the default); each: one grid per position.",
  },
  target: {
    kind: "string",
    form: "<token>",
    description: "The token to measure at the last position (default: the source run's top token).",
  },
  metric: { kind: "choice", choices: ["probability", "logit"], description: "What is measured (default probability)." },
  report: { kind: "string", form: "<file.html>", description: "Write an HTML report with a heat map per grid." },
  ...COMMON_OPTIONS,
} as const satisfies OptionTable;

export const headsCommand: Command<typeof options> = {
  syntax: {
    name: "heads",
    summary: "Head patching: which attention heads carry the difference between a base and a source prompt?",
    synopsis: '[--base "<text>" --source "<text>"] [options]',
    options,
    notes: [
      "Prints a table of layers × heads (the best cell >). --json prints the HeadPatchResult with the model",
      "and both prompts; its grids (one, or one per position with --positions each) as rows of values",
      "labelled by layer and head.",
    ].join("\n"),
    examples: [
      "tsvene heads --report heads.html",
      'tsvene heads --base "Fact : Ka Bo speaks" --source "Fact : Ro Bo speaks" --target Norwegian ' +
        "--positions each --metric logit",
    ],
  },

  async run({ values }) {
    await checkOutputPaths({ "--report": values.report, "--out": values.out });
    const loaded = await loadModel(values.model, values.dtype);
    const { model, tokenizer } = loaded;
    const pair = promptPair(loaded, values, ["base", "source"]);
    const component = headComponent(loaded, values.component ?? "head_attention_value_output");
    const target = values.target === undefined ? undefined : targetToken(loaded, pair.base, values.target, "--target");
    if (target?.note) process.stderr.write(`tsvene heads: ${target.note}\n`);
    const bar = progressBar(`heads ${component}`, { quiet: values.quiet });
    let result: HeadPatchResult;
    try {
      result = headPatching(model, {
        base: intTensor([pair.baseIds]),
        source: intTensor([pair.sourceIds]),
        baseTokens: tokenLabels(tokenizer, pair.baseIds),
        sourceTokens: tokenLabels(tokenizer, pair.sourceIds),
        component,
        positions: values.positions,
        target: target?.id,
        targetLabel: target?.label,
        metric: values.metric,
        onProgress: bar.update,
      });
    } finally {
      bar.finish();
    }
    // Without --target the sweep picks the source run's top token, and only the tokenizer can name it.
    result = { ...result, targetLabel: target?.label ?? tokenizer.decode([result.target]) };
    const differing = differingPositions(result.baseTokens, result.sourceTokens);
    const run = { model: loaded.name, base: pair.base, source: pair.source };
    const files = values.report === undefined ? [] : [textFile("--report", values.report, headsReport(result, run))];
    const json = headsResultJson(result, run);
    const text = describeHeads(result, differing) + (values.report === undefined ? "" : `report: ${values.report}\n`);
    await emit(json, text, values, files);
    return 0;
  },
};

/** A component of the model that is split into attention heads. */
export function headComponent(loaded: LoadedModel, component: string): string {
  const { model } = loaded;
  checkComponent(model, component, "--component");
  if (!model.site(component, 0).heads) {
    const heads = Object.keys(model.sites).filter((c) => model.site(c, 0).heads);
    throw new UsageError(
      `--component ${component} is not split into attention heads (expected one of ${heads.join(", ")})`,
    );
  }
  return component;
}

function describeHeads(r: HeadPatchResult, differing: readonly number[]): string {
  const marked = differing.map((p) => JSON.stringify(r.baseTokens[p])).join(" ");
  return [
    `head patching of ${r.component}: ${r.metric} of ${JSON.stringify(r.targetLabel)} at the base's last position`,
    `base ${formatScore(r.base)}, source ${formatScore(r.source)} (the prompts differ at ${marked || "no token"})`,
    ...r.grids.flatMap((g) => {
      const grid = headLabelledGrid(g);
      return [`${headGridHeading(r, g)}:`, labelledTable(grid).trimEnd(), `best: ${bestCellLine(grid)}`];
    }),
    "",
  ].join("\n");
}
