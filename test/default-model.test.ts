/**
 * The model shipped in models/default/ (scripts/train-default-model.ts): it loads like any HF
 * folder, its tokenizer round-trips, it recalls the facts listed in its facts.json, and causal
 * tracing finds the facts where ROME found them in GPT-2: at the subject's last token in the
 * middle layers, and at the last token in the late ones.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import * as tv from "../src/index.js";
import {
  OTHER_SLOT,
  POSITION_CLASSES,
  averageTraces,
  factsJson,
  parseFacts,
  worldFact,
  worldFacts,
  type FactsWorld,
  type WorldFact,
} from "../src/causal/facts-world.js";
import { SEED, buildWorld, subjectEmbeddingStd, tracePrompts } from "../scripts/train-default-model.js";

const factsFile = JSON.parse(readFileSync(join(tv.DEFAULT_MODEL_FOLDER, "facts.json"), "utf8")) as unknown;
const world: FactsWorld = parseFacts(factsFile, "facts.json").world!;
const END_OF_TEXT = "<|endoftext|>";

/** The library's causal trace of a fact: its subject's tokens corrupted, block outputs restored, p of the answer. */
function traceFact(
  model: tv.PretrainedModel,
  tokenizer: tv.Tokenizer,
  fact: WorldFact,
  noise: { samples: number; noiseStd: number; seed: number },
): tv.TraceResult {
  const ids = tokenizer.encode(fact.prompt);
  const [start, end] = fact.subjectSpan;
  return tv.causalTrace(model, {
    inputIds: tv.intTensor([ids]),
    tokens: ids.map((id) => tokenizer.decode([id])),
    corruptedPositions: Array.from({ length: end - start }, (_, k) => start + k),
    target: tokenizer.tokenToId(fact.attribute),
    ...noise,
  });
}

describe("default model", () => {
  let loaded: tv.Pretrained;
  let tokenizer: tv.Tokenizer;
  before(async () => {
    loaded = await tv.loadDefaultModel();
    tokenizer = loaded.tokenizer!;
  });

  it("is a GPT-2 folder with a word-level tokenizer whose end of text is bos, eos and pad", () => {
    assert.equal(loaded.folder, tv.DEFAULT_MODEL_FOLDER);
    assert.equal(loaded.config.model_type, "gpt2");
    assert.deepEqual(loaded.config.architectures, ["GPT2LMHeadModel"]);
    assert.equal(loaded.model.family, "gpt2");
    assert.ok(tokenizer !== null);
    const eos = tokenizer.tokenToId(END_OF_TEXT);
    assert.equal(tokenizer.eosTokenId, eos);
    assert.equal(tokenizer.bosTokenId, eos);
    assert.equal(tokenizer.padTokenId, eos);
    assert.equal(loaded.config.eos_token_id, eos);
    assert.equal(loaded.config.vocab_size, tokenizer.vocabSize);
  });

  it(`facts.json is the world the training script builds from its seed, \
written and read by the facts-world module`, () => {
    assert.equal(world.seed, SEED);
    assert.deepEqual(factsFile, factsJson(buildWorld(SEED)));
    assert.deepEqual(world, buildWorld(SEED));
  });

  it("tokenizes one word per token, round-trips every prompt, and maps unknown words to <unk>", () => {
    for (const fact of worldFacts(world)) {
      const ids = tokenizer.encode(fact.prompt);
      assert.equal(ids.length, fact.prompt.split(" ").length, fact.prompt);
      assert.equal(tokenizer.decode(ids), fact.prompt);
      assert.deepEqual(
        ids.slice(...fact.subjectSpan),
        tokenizer.encode(fact.subject),
        `${fact.prompt}: the subject's span`,
      );
    }
    const name = world.subjects[0];
    assert.deepEqual(
      tokenizer.encode(name.name).map((id) => tokenizer.idToToken(id)),
      name.tokens,
    );
    assert.deepEqual(tokenizer.encode("Paris zebra"), [tokenizer.tokenToId("Paris"), tokenizer.unkTokenId]);
    assert.deepEqual(tokenizer.encode("Fact: Paris,"), tokenizer.encode("Fact : Paris ,"));
    assert.equal(
      tokenizer.decode([tokenizer.tokenToId("Paris")!, tokenizer.eosTokenId!], { skipSpecialTokens: true }),
      "Paris",
    );
  });

  it(`answers every fact by greedy generation, on a trained and a held-out template, \
and every fact it goes on to state is true`, () => {
    const cases = world.relations.flatMap((relation) => {
      const last = relation.heldOutTemplates.length - 1;
      return world.subjects.flatMap((_, i) => [
        worldFact(world, relation, false, 0, i),
        worldFact(world, relation, true, last, i),
      ]);
    });
    assert.equal(cases.length, 2 * world.relations.length * world.subjects.length);
    assert.ok(
      world.relations.some((r) => r.heldOutTemplates.at(-1)!.split(" ").includes(OTHER_SLOT)),
      "a held-out template names another person",
    );
    const relationOf = new Map(world.relations.flatMap((r) => r.values.map((v) => [v, r.name] as const)));
    const attributesOf = new Map(world.subjects.map((s) => [s.name, s.attributes]));
    const { inputIds, attentionMask } = tokenizer.encodeBatch(
      cases.map((c) => c.prompt),
      { paddingSide: "left" },
    );
    const maxNewTokens = 12;
    const { sequences } = tv.generate(loaded.model, inputIds, {
      maxNewTokens,
      attentionMask,
      eosTokenId: tokenizer.eosTokenId,
    });
    const width = sequences.shape[1];
    let stated = 0;
    const wrong = cases.flatMap((c, b) => {
      const words = [...sequences.data.subarray((b + 1) * width - maxNewTokens, (b + 1) * width)].map(
        (id) => tokenizer.idToToken(id)!,
      );
      const values = words.filter((w) => relationOf.has(w));
      stated += values.length;
      const untrue = values.filter((v) => attributesOf.get(c.subject)![relationOf.get(v)!] !== v);
      return words[0] === c.attribute && untrue.length === 0
        ? []
        : [{ prompt: c.prompt, answer: c.attribute, generated: words.join(" ") }];
    });
    assert.deepEqual(wrong, []);
    assert.ok(stated > cases.length, `the continuations state ${stated} values for ${cases.length} prompts`);
  });

  it("causal tracing: only the last block output at the last token decides the output", () => {
    const { model } = loaded;
    const demo = world.demo!;
    const ids = tokenizer.encode(demo.prompt);
    const noiseStd = 3 * subjectEmbeddingStd(model, tokenizer, world);
    const fact: WorldFact = {
      prompt: demo.prompt,
      subject: demo.subject,
      attribute: demo.answer,
      relation: "city",
      heldOut: true,
      subjectSpan: [demo.subjectTokens[0], demo.subjectTokens.at(-1)! + 1],
    };
    const { clean, corrupted, grid } = traceFact(model, tokenizer, fact, { samples: 4, noiseStd, seed: 0 });
    const last = model.numLayers - 1;
    assert.ok(clean > 0.9, `clean p ${clean}`);
    assert.ok(Math.abs(grid.values[last * ids.length + ids.length - 1] - clean) < 1e-5);
    for (let p = 0; p < ids.length - 1; p++)
      assert.ok(Math.abs(grid.values[last * ids.length + p] - corrupted) < 1e-5, `position ${p}`);
  });

  it(`causal tracing: the subject's last token carries the fact in the middle layers, \
the last token in the late ones`, () => {
    const { model } = loaded;
    const noiseStd = 3 * subjectEmbeddingStd(model, tokenizer, world);
    const avg = averageTraces(
      tracePrompts(world)
        .slice(0, 12)
        .map((fact, i) => traceFact(model, tokenizer, fact, { samples: 5, noiseStd, seed: 1 + i })),
    );
    const layers = model.numLayers;
    const column = (name: (typeof POSITION_CLASSES)[number]) =>
      Array.from(
        { length: layers },
        (_, l) => avg.effect[l * POSITION_CLASSES.length + POSITION_CLASSES.indexOf(name)],
      );
    const lastSubject = column("last subject token");
    const lastToken = column("last token");
    const peak = lastSubject.indexOf(Math.max(...lastSubject));

    assert.ok(avg.clean > 0.9 && avg.corrupted < 0.5 * avg.clean, `clean p ${avg.clean}, corrupted p ${avg.corrupted}`);
    assert.ok(
      peak >= Math.floor(layers / 3) && peak < layers - 1,
      `the subject's last token peaks at layer ${peak} of ${layers}`,
    );
    assert.ok(lastSubject[peak] > 0.3, `effect at the peak ${lastSubject[peak]}`);
    for (const other of ["first subject token", "middle subject tokens", "further tokens"] as const) {
      const effects = column(other).filter(Number.isFinite);
      assert.ok(
        effects.length === layers && Math.max(...effects) < 0.5 * lastSubject[peak],
        `${other}: ${effects.map((v) => v.toFixed(2))}`,
      );
    }
    for (let l = 0; l < peak; l++)
      assert.ok(lastToken[l] < lastSubject[l], `layer ${l}: the last token already matters`);
    assert.ok(
      lastToken[layers - 1] > lastSubject[layers - 1] && lastToken[layers - 1] > 0.5,
      "late layers: the last token carries the fact",
    );
  });
});
