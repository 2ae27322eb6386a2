/**
 * `tsvene das`: distributed alignment search on the model's factual-recall task (its facts.json):
 * is one attribute of the subject (a relation, e.g. the city) a low-rank subspace of a component
 * at the subject's last token? The experiment is the library's dasOnFacts; this command reads
 * the flags and the facts, checks that the model can read every fact, and prints IIA beside
 * chance and the untrained rotation (the control).
 */
import type { Fact } from "../../causal/facts-world.js";
import { DAS_ON_FACTS_DEFAULTS, dasOnFacts, type DasOnFactsResult } from "../../train/das-facts.js";
import { UsageError, checkLayer, type OptionTable } from "../args.js";
import { COMMON_OPTIONS, checkComponent, loadModel, type Command, type LoadedModel } from "../context.js";
import { factsFileOf, readFacts } from "../facts.js";
import { checkInputPath, checkOutputPaths } from "../files.js";
import { emit, formatScore } from "../output.js";
import { progressBar } from "../progress.js";
import { checkVocabulary, promptIds } from "../text.js";

const D = DAS_ON_FACTS_DEFAULTS;

const options = {
  layer: { kind: "int", description: "The layer searched (default: the middle layer)." },
  component: { kind: "string", form: "<component>", description: `The component searched (default ${D.component}).` },
  relation: {
    kind: "string",
    form: "<name>",
    description: "The attribute aligned, a relation of facts.json (default: its first, e.g. city).",
  },
  rank: { kind: "int", min: 1, description: `Dimension of the swapped subspace (default ${D.rank}).` },
  facts: {
    kind: "string",
    form: "<facts.json>",
    description: "The task's facts (default: facts.json in the model's folder).",
  },
  steps: { kind: "int", min: 1, description: `Training steps (default ${D.steps}).` },
  "batch-size": { kind: "int", min: 1, description: `Pairs per step (default ${D.batchSize}).` },
  lr: { kind: "number", positive: true, description: `Adam's learning rate (default ${D.lr}).` },
  seed: { kind: "int", description: `Seed of the initial subspace and of the pairs (default ${D.seed}).` },
  ...COMMON_OPTIONS,
} as const satisfies OptionTable;

export const dasCommand: Command<typeof options> = {
  syntax: {
    name: "das",
    summary: "Distributed alignment search: is the subject's attribute a low-rank subspace at its last token?",
    synopsis: "[--layer L] [--component block_output] [--relation city] [options]",
    options,
    notes: [
      "IIA (interchange intervention accuracy) is the share of test pairs where swapping the subspace from",
      "the source prompt makes the base prompt name the source's attribute. It is printed for the trained",
      "subspace, for the untrained one (the control) and for guessing among the attribute's values (chance).",
      'A plain facts file: [{"prompt": "Ka Bo lives in the city of", "subject": "Ka Bo", "attribute": "Rome"}, ...].',
    ].join("\n"),
    examples: [
      "tsvene das",
      "tsvene das --layer 2 --relation language --steps 100",
      "tsvene das --rank 2 --steps 50 --batch-size 8 --out das.json",
    ],
  },

  async run({ values }) {
    await checkOutputPaths({ "--out": values.out });
    if (values.facts !== undefined) await checkInputPath("--facts", values.facts, "file", "a facts.json file");
    const loaded = await loadModel(values.model, values.dtype);
    const { model, tokenizer, folder } = loaded;
    const factsFile = values.facts ?? factsFileOf(folder);
    if (factsFile === null)
      throw new UsageError(
        `das needs the task's facts: this model's folder (${folder}) has no facts.json; give --facts <facts.json>`,
      );
    const { facts } = await readFacts(factsFile);
    const relations = [...new Set(facts.map((f) => f.relation))];
    const relation = values.relation ?? relations[0];
    if (!relations.includes(relation)) {
      throw new UsageError(
        relations[0] === ""
          ? `--relation: ${factsFile} is a plain list of facts without relations; leave --relation out`
          : `--relation ${relation} is not a relation of ${factsFile} (expected one of ${relations.join(", ")})`,
      );
    }
    checkReadable(loaded, facts, relation);
    const layer = values.layer === undefined ? undefined : checkLayer(values.layer, model.numLayers, "--layer");
    const component =
      values.component === undefined ? undefined : checkComponent(model, values.component, "--component");

    const bar = progressBar("das", { quiet: values.quiet });
    let result: DasOnFactsResult;
    try {
      result = dasOnFacts(model, tokenizer, facts, {
        relation,
        layer,
        component,
        rank: values.rank,
        steps: values.steps,
        batchSize: values["batch-size"],
        lr: values.lr,
        seed: values.seed,
        onProgress: bar.update,
      });
    } finally {
      bar.finish();
    }
    await emit(result, describeDas(result, factsFile), values);
    return 0;
  },
};

/** Refuses facts of the relation with text the model cannot read, naming the entry (before any training starts). */
function checkReadable(loaded: LoadedModel, facts: readonly Fact[], relation: string): void {
  const checked = new Set<string>();
  facts.forEach((fact, i) => {
    if (fact.relation !== relation) return;
    if (!checked.has(fact.prompt)) promptIds(loaded, fact.prompt, `facts entry ${i}: prompt`);
    for (const field of ["subject", "attribute"] as const) {
      if (!checked.has(fact[field])) checkVocabulary(loaded, fact[field], `facts entry ${i}: ${field}`);
    }
    [fact.prompt, fact.subject, fact.attribute].forEach((text) => checked.add(text));
  });
}

function describeDas(r: DasOnFactsResult, factsFile: string): string {
  return [
    `DAS, rank ${r.lowRankDimension}, ${r.component} at layer ${r.layer}, ` +
      `subject's last token${r.relation ? `, relation ${r.relation}` : ""} (${factsFile})`,
    `the model names ${r.knownFacts} of ${r.facts} attributes; ` +
      `pairs drawn from ${r.trainFacts} training and ${r.testFacts} test facts`,
    `IIA on ${r.testPairs} test pairs: ${formatScore(r.iiaAfter)} after ${r.steps} step${r.steps === 1 ? "" : "s"} ` +
      `(loss ${formatScore(r.firstLoss)} → ${formatScore(r.lastLoss)});` +
      ` control (untrained rotation) ${formatScore(r.iiaBefore)};` +
      ` chance ${formatScore(r.chance)} (1 of ${r.values} values)`,
    "",
  ].join("\n");
}
