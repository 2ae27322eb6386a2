/**
 * `tsvene patch`: activation patching between two prompts of the same length. Each (layer,
 * position) of the base run takes its value from the source run in turn; the target's metric on
 * the base run shows which sites carry the difference between the prompts.
 */
import { activationPatching } from "../../sweeps/index.js";
import type { PatchResult } from "../../sweeps/results.js";
import { intTensor } from "../../tensor/index.js";
import { patchReport } from "../../viz/index.js";
import { patchResultJson } from "../../viz/grid-json.js";
import type { OptionTable } from "../args.js";
import { COMMON_OPTIONS, checkComponent, loadModel, type Command } from "../context.js";
import { checkOutputPaths, textFile } from "../files.js";
import { bestCell, emit, formatScore, gridTable } from "../output.js";
import { progressBar } from "../progress.js";
import { differingPositions, promptPair, targetToken, tokenLabels } from "../text.js";

const options = {
  base: { kind: "string", form: "<text>", required: true, description: "The prompt that is patched." },
  source: {
    kind: "string",
    form: "<text>",
    required: true,
    description: "The prompt the patched values come from (same number of tokens).",
  },
  component: {
    kind: "string",
    form: "<component>",
    description:
      "The component patched at each layer, e.g. block_output, mlp_output, attention_output (default block_output).",
  },
  target: {
    kind: "string",
    form: "<token>",
    description: "The token to measure at the last position (default: the source run's top token).",
  },
  metric: { kind: "choice", choices: ["probability", "logit"], description: "What is measured (default probability)." },
  report: { kind: "string", form: "<file.html>", description: "Write an HTML report with a heat map." },
  ...COMMON_OPTIONS,
} as const satisfies OptionTable;

export const patchCommand: Command<typeof options> = {
  syntax: {
    name: "patch",
    summary: "Activation patching: which sites carry the difference between a base and a source prompt?",
    synopsis: '--base "<text>" --source "<text>" [options]',
    options,
    notes:
      "--json prints the PatchResult with the model, both prompts and the positions where they differ; " +
      "its grid as rows of values labelled by layer and base token.",
    examples: [
      'tsvene patch --base "Ka Bo lives in the city of" --source "Ro Vi lives in the city of" --report patch.html',
      'tsvene patch --base "Fact : Ka Bo speaks" --source "Fact : Ro Bo speaks" ' +
        "--component mlp_output --target Norwegian",
    ],
  },

  async run({ values }) {
    await checkOutputPaths({ "--report": values.report, "--out": values.out });
    const loaded = await loadModel(values.model, values.dtype);
    const { model, tokenizer } = loaded;
    const component = checkComponent(model, values.component ?? "block_output", "--component");
    const { baseIds, sourceIds } = promptPair(loaded, values, ["base", "source"]);
    const target =
      values.target === undefined ? undefined : targetToken(loaded, values.base!, values.target, "--target");
    if (target?.note) process.stderr.write(`tsvene patch: ${target.note}\n`);
    const bar = progressBar(`patch ${component}`, { quiet: values.quiet });
    let result: PatchResult;
    try {
      result = activationPatching(model, {
        base: intTensor([baseIds]),
        source: intTensor([sourceIds]),
        baseTokens: tokenLabels(tokenizer, baseIds),
        sourceTokens: tokenLabels(tokenizer, sourceIds),
        component,
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
    const report = patchReport(result, { model: loaded.name });
    const files = values.report === undefined ? [] : [textFile("--report", values.report, report)];
    const json = patchResultJson(result, {
      model: loaded.name,
      basePrompt: values.base!,
      sourcePrompt: values.source!,
    });
    await emit(
      json,
      describePatch(result) + (values.report === undefined ? "" : `report: ${values.report}\n`),
      values,
      files,
    );
    return 0;
  },
};

function describePatch(r: PatchResult): string {
  const best = bestCell(r.grid);
  const differing = differingPositions(r.baseTokens, r.sourceTokens);
  return [
    `activation patching of ${r.component}: ${r.metric} of ${JSON.stringify(r.targetLabel)} ` +
      "at the base's last position",
    `base ${formatScore(r.base)}, source ${formatScore(r.source)} (positions where the prompts differ are marked *)`,
    gridTable(r.grid, r.baseTokens, differing).trimEnd(),
    `best: layer ${r.grid.layers[best.row]} at ${JSON.stringify(r.baseTokens[r.grid.positions[best.col]])} ` +
      `(position ${r.grid.positions[best.col]}): ${formatScore(best.value)}`,
    "",
  ].join("\n");
}
