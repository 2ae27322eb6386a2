/**
 * `tsvene trace`: ROME's causal tracing of one prompt. The subject's input embeddings are
 * corrupted with noise; then each (layer, position) of the corrupted run is restored from the
 * clean run in turn, and the target's probability shows where the fact travels.
 */
import { subjectsIn } from "../../causal/facts-world.js";
import { causalTrace } from "../../sweeps/index.js";
import type { TraceComponent, TraceResult } from "../../sweeps/results.js";
import { intTensor } from "../../tensor/index.js";
import { traceReport } from "../../viz/index.js";
import { traceResultJson } from "../../viz/grid-json.js";
import { UsageError, type OptionTable } from "../args.js";
import { COMMON_OPTIONS, checkComponent, loadModel, type Command } from "../context.js";
import { factsFileOf, readFacts } from "../facts.js";
import { checkOutputPaths, textFile } from "../files.js";
import { bestCell, emit, formatScore, gridTable } from "../output.js";
import { progressBar } from "../progress.js";
import { promptIds, subjectPositions, targetToken, tokenLabels } from "../text.js";

/** ROME's three panels, traced by --component all. */
const ROME_COMPONENTS: readonly TraceComponent[] = ["block_output", "mlp_output", "attention_output"];

const options = {
  prompt: {
    kind: "string",
    form: "<text>",
    description: "The prompt (default: the example prompt of the model's facts.json).",
  },
  subject: {
    kind: "string",
    form: "<text>",
    description:
      "The text in the prompt whose tokens are corrupted (default: a subject of facts.json found in the prompt).",
  },
  target: {
    kind: "string",
    form: "<token>",
    description: "The token to measure at the last position (default: the clean run's top token).",
  },
  component: {
    kind: "string",
    form: "<component|all>",
    description:
      "What is restored at each layer: any per-position component of the model (default block_output), " +
      "or all for ROME's three (block_output, mlp_output, attention_output).",
  },
  window: {
    kind: "int",
    min: 1,
    description: "Layers restored together around each layer (default 1; ROME uses 10 for mlp/attention).",
  },
  noise: {
    kind: "number",
    positive: true,
    description: "Standard deviation of the embedding noise (default: 3 × the embeddings' std, as ROME).",
  },
  seed: { kind: "int", description: "Seed of the noise (default 0)." },
  samples: {
    kind: "int",
    min: 1,
    description: "Noise draws averaged per cell (default 10; ROME averages several, as one draw swings with the seed).",
  },
  metric: { kind: "choice", choices: ["probability", "logit"], description: "What is measured (default probability)." },
  report: { kind: "string", form: "<file.html>", description: "Write an HTML report with heat maps." },
  "shared-scale": {
    kind: "boolean",
    description: "With --component all, one colour scale for the three heat maps of the report.",
  },
  ...COMMON_OPTIONS,
} as const satisfies OptionTable;

export const traceCommand: Command<typeof options> = {
  syntax: {
    name: "trace",
    summary: "Causal tracing (ROME): where in the network does the prompt's answer come from?",
    synopsis: '[--prompt "<text>" --subject "<text in the prompt>"] [options]',
    options,
    notes: [
      "Prints a table of layers × tokens (corrupted tokens marked *, the best cell >); --component all",
      "traces block, MLP and attention outputs. Cells are means over --samples noise draws.",
      "--json prints the TraceResult (an array of three for all) with the model, prompt and subject, its",
      "grid as rows of values (and their spread over the draws) labelled by layer and token.",
      "With --model <Hub id or folder>, the prompt and subject are any text that model reads.",
    ].join("\n"),
    examples: [
      "tsvene trace --report trace.html",
      'tsvene trace --prompt "I heard that Ka Bo lives in the city of" --subject "Ka Bo" ' +
        "--component all --shared-scale --report trace.html",
      'tsvene trace --prompt "Ka Bo speaks" --subject "Ka Bo" --target Arabic --window 2 --samples 20 --seed 1',
    ],
  },

  async run({ values }) {
    await checkOutputPaths({ "--report": values.report, "--out": values.out });
    const loaded = await loadModel(values.model, values.dtype);
    const { model, tokenizer, folder } = loaded;
    const demo = values.prompt === undefined ? await demoPrompt(values.subject, folder) : null;
    const prompt = values.prompt ?? demo!.prompt;
    // The prompt is checked before a subject is looked for in it, so unknown words are named first.
    const ids = promptIds(loaded, prompt, "--prompt");
    const subject = values.subject ?? demo?.subject ?? (await knownSubject(prompt, folder));
    const tokens = tokenLabels(tokenizer, ids);
    const corruptedPositions = subjectPositions(loaded, { text: prompt, ids }, subject, "--subject");
    const target = values.target === undefined ? undefined : targetToken(loaded, prompt, values.target, "--target");
    if (target?.note) process.stderr.write(`tsvene trace: ${target.note}\n`);
    const components =
      values.component === undefined
        ? ["block_output"]
        : values.component === "all"
          ? ROME_COMPONENTS
          : [checkComponent(model, values.component, "--component")];

    const results: TraceResult[] = [];
    for (const component of components) {
      const bar = progressBar(`trace ${component}`, { quiet: values.quiet });
      try {
        const result = causalTrace(model, {
          inputIds: intTensor([ids]),
          tokens,
          corruptedPositions,
          target: target?.id,
          targetLabel: target?.label,
          component,
          window: values.window,
          noiseStd: values.noise,
          seed: values.seed,
          samples: values.samples,
          metric: values.metric,
          onProgress: bar.update,
        });
        // Without --target the sweep picks the clean run's top token, and only the tokenizer can name it.
        results.push({ ...result, targetLabel: target?.label ?? tokenizer.decode([result.target]) });
      } finally {
        bar.finish();
      }
    }
    const reportOptions = { model: loaded.name, sharedScale: values["shared-scale"] ?? false };
    const files =
      values.report === undefined ? [] : [textFile("--report", values.report, traceReport(results, reportOptions))];
    const text =
      results.map(describeTrace).join("\n") + (values.report === undefined ? "" : `report: ${values.report}\n`);
    const json = results.map((r) => traceResultJson(r, { model: loaded.name, prompt, subject }));
    await emit(json.length === 1 ? json[0] : json, text, values, files);
    return 0;
  },
};

/** The model's example prompt and its subject, used when no prompt is given. */
async function demoPrompt(subject: string | undefined, folder: string): Promise<{ prompt: string; subject: string }> {
  if (subject !== undefined) {
    throw new UsageError('--subject needs --prompt (the subject is text inside the prompt): give --prompt "<text>"');
  }
  const factsFile = factsFileOf(folder);
  if (factsFile === null) {
    throw new UsageError(
      "--prompt is required: this model has no facts.json to take an example from " +
        '(expected --prompt "<text>" --subject "<text in the prompt>")',
    );
  }
  return (await readFacts(factsFile)).demo;
}

/** A subject of the model's facts.json found in the prompt, for a prompt given without --subject. */
async function knownSubject(prompt: string, folder: string): Promise<string> {
  const factsFile = factsFileOf(folder);
  const known = factsFile === null ? [] : subjectsIn((await readFacts(factsFile)).facts, prompt);
  if (known.length === 0) {
    throw new UsageError(
      "--subject is required for this prompt: the text in the prompt whose tokens are corrupted " +
        '(expected --subject "<text in the prompt>")',
    );
  }
  return known[0];
}

function describeTrace(r: TraceResult): string {
  const best = bestCell(r.grid);
  const corrupted = r.corruptedPositions.map((p) => JSON.stringify(r.tokens[p])).join(" ");
  return [
    `causal trace of ${r.component} (window ${r.window}): ${r.metric} of ${JSON.stringify(r.targetLabel)} ` +
      "at the last position",
    `clean ${formatScore(r.clean)}, corrupted ${formatScore(r.corrupted)}` +
      (r.samples > 1 ? ` ± ${formatScore(r.corruptedSpread)}` : "") +
      ` (noise on ${corrupted}: σ ${formatScore(r.noiseStd ?? NaN)}, seed ${r.seed}, ` +
      `mean of ${r.samples} draw${r.samples === 1 ? "" : "s"})`,
    gridTable(r.grid, r.tokens, r.corruptedPositions).trimEnd(),
    `best: layer ${r.grid.layers[best.row]} at ${JSON.stringify(r.tokens[r.grid.positions[best.col]])} ` +
      `(position ${r.grid.positions[best.col]}): ${formatScore(best.value)}`,
    "",
  ].join("\n");
}
