/**
 * DAS on the facts world (src/train/das-facts.ts) on the embedded default model: with its defaults
 * it finds the city at the subject's last token, far above chance and the untrained control.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { parseFacts, type Fact } from "../src/causal/facts-world.js";
import { DEFAULT_MODEL_FOLDER, loadDefaultModel } from "../src/models/default-model.js";
import type { PretrainedModel } from "../src/models/model.js";
import type { Tokenizer } from "../src/io/tokenizer.js";
import { DAS_ON_FACTS_DEFAULTS, dasOnFacts } from "../src/train/das-facts.js";

let model: PretrainedModel;
let tokenizer: Tokenizer;
let facts: Fact[];

before(async () => {
  const loaded = await loadDefaultModel();
  model = loaded.model;
  tokenizer = loaded.tokenizer!;
  facts = parseFacts(JSON.parse(readFileSync(join(DEFAULT_MODEL_FOLDER, "facts.json"), "utf8")), "facts.json").facts;
});

describe("dasOnFacts", () => {
  it(`with its defaults finds the city at the subject's last token: IIA far above chance, \
the untrained rotation below it`, () => {
    const r = dasOnFacts(model, tokenizer, facts);
    assert.deepEqual(
      {
        relation: r.relation,
        layer: r.layer,
        component: r.component,
        rank: r.lowRankDimension,
        steps: r.steps,
        batchSize: r.batchSize,
        lr: r.lr,
      },
      {
        relation: "city",
        layer: 3,
        component: "block_output",
        rank: DAS_ON_FACTS_DEFAULTS.rank,
        steps: DAS_ON_FACTS_DEFAULTS.steps,
        batchSize: DAS_ON_FACTS_DEFAULTS.batchSize,
        lr: DAS_ON_FACTS_DEFAULTS.lr,
      },
    );
    assert.deepEqual(
      { facts: r.facts, knownFacts: r.knownFacts, trainFacts: r.trainFacts, testFacts: r.testFacts },
      { facts: 1920, knownFacts: 1920, trainFacts: 1440, testFacts: 480 },
    );
    assert.equal(r.values, 8);
    assert.equal(r.chance, 1 / 8);
    assert.ok(r.iiaBefore < r.chance, `control IIA ${r.iiaBefore}`);
    assert.ok(r.iiaAfter > 3 * r.chance, `trained IIA ${r.iiaAfter}`);
    assert.ok(r.lastLoss < r.firstLoss / 2, `loss ${r.firstLoss} → ${r.lastLoss}`);
  });

  it("splits a plain list of facts by seed, a fifth for testing, and reports progress per step", () => {
    const list = facts
      .filter((f) => f.relation === "language" && !f.heldOut)
      .slice(0, 200)
      .map((f) => ({ ...f, relation: "" }));
    const progress: number[] = [];
    const r = dasOnFacts(model, tokenizer, list, {
      rank: 2,
      steps: 3,
      batchSize: 4,
      testPairs: 8,
      onProgress: (done, total) => progress.push(done / total),
    });
    assert.equal(r.relation, "");
    assert.equal(r.testFacts, Math.ceil(r.knownFacts / 5));
    assert.equal(r.trainFacts + r.testFacts, r.knownFacts);
    assert.deepEqual(progress, [1 / 3, 2 / 3, 1]);
    assert.equal(r.chance, 1 / new Set(list.map((f) => f.attribute)).size);
  });

  it("refuses options it cannot honour, naming them", () => {
    const refused = (options: object, message: RegExp) =>
      assert.throws(() => dasOnFacts(model, tokenizer, facts, options), message);
    refused(
      { relation: "height" },
      /dasOnFacts: relation must be one of the facts' relations \(city, language, sport, job\), got "height"/,
    );
    refused({ layer: 6 }, /dasOnFacts: layer must be an integer in 0\.\.5, got 6/);
    refused({ rank: 65 }, /dasOnFacts: rank must be at most the width of block_output \(64\), got 65/);
    refused({ steps: 0 }, /dasOnFacts: steps must be a positive integer, got 0/);
    refused({ lr: -1 }, /dasOnFacts: lr must be a positive number, got -1/);
    refused({ ranks: 2 }, /dasOnFacts options.*ranks/);
  });
});
