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
import { POSITION_CLASSES, SEED, averageTrace, buildWorld, causalTrace, subjectEmbeddingStd, tracePrompts } from "../scripts/train-default-model.js";

interface Facts {
  seed: number;
  relations: { name: string; values: string[]; trainTemplates: string[]; heldOutTemplates: string[] }[];
  subjects: ({ name: string; tokens: string[] } & Record<string, unknown>)[];
  demo: { prompt: string; subject: string; subjectTokens: number[]; answer: string };
}

const facts = JSON.parse(readFileSync(join(tv.DEFAULT_MODEL_FOLDER, "facts.json"), "utf8")) as Facts;
const END_OF_TEXT = "<|endoftext|>";

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

  it("facts.json is the world the training script builds from its seed", () => {
    assert.equal(facts.seed, SEED);
    const world = buildWorld(SEED);
    assert.deepEqual(facts.subjects, world.subjects.map((s) => ({ name: s.name, tokens: s.pieces, ...s.attributes })));
    assert.deepEqual(facts.relations.map((r) => r.heldOutTemplates), world.relations.map((r) => world.templates[r.name].test));
  });

  it("tokenizes one word per token, round-trips every prompt, and maps unknown words to <unk>", () => {
    const other = facts.subjects[1].name;
    for (const relation of facts.relations) {
      for (const template of [...relation.trainTemplates, ...relation.heldOutTemplates]) {
        for (const subject of facts.subjects) {
          const text = template.replace("{other}", other).replace("{subject}", subject.name);
          const ids = tokenizer.encode(text);
          assert.equal(ids.length, text.split(" ").length, text);
          assert.equal(tokenizer.decode(ids), text);
        }
      }
    }
    const name = facts.subjects[0];
    assert.deepEqual(tokenizer.encode(name.name).map((id) => tokenizer.idToToken(id)), name.tokens);
    assert.deepEqual(tokenizer.encode("Paris zebra"), [tokenizer.tokenToId("Paris"), tokenizer.unkTokenId]);
    assert.deepEqual(tokenizer.encode("Fact: Paris,"), tokenizer.encode("Fact : Paris ,"));
    assert.equal(tokenizer.decode([tokenizer.tokenToId("Paris")!, tokenizer.eosTokenId!], { skipSpecialTokens: true }), "Paris");
  });

  it("answers every fact by greedy generation, on a trained and a held-out template, and every fact it goes on to state is true", () => {
    const other = facts.subjects[facts.subjects.length - 1].name;
    const cases = facts.relations.flatMap((relation) =>
      [relation.trainTemplates[0], relation.heldOutTemplates.at(-1)!].flatMap((template) =>
        facts.subjects.map((subject) => ({
          prompt: template.replace("{other}", subject.name === other ? facts.subjects[0].name : other).replace("{subject}", subject.name),
          subject,
          answer: String(subject[relation.name]),
        }))));
    assert.equal(cases.length, 2 * facts.relations.length * facts.subjects.length);
    assert.ok(cases.some((c) => c.prompt.includes(other)), "a held-out template names another person");
    const relationOf = new Map(facts.relations.flatMap((r) => r.values.map((v) => [v, r.name] as const)));
    const { inputIds, attentionMask } = tokenizer.encodeBatch(cases.map((c) => c.prompt), { paddingSide: "left" });
    const maxNewTokens = 12;
    const { sequences } = tv.generate(loaded.model, inputIds, { maxNewTokens, attentionMask, eosTokenId: tokenizer.eosTokenId });
    const width = sequences.shape[1];
    let stated = 0;
    const wrong = cases.flatMap((c, b) => {
      const words = [...sequences.data.subarray((b + 1) * width - maxNewTokens, (b + 1) * width)].map((id) => tokenizer.idToToken(id)!);
      const values = words.filter((w) => relationOf.has(w));
      stated += values.length;
      const untrue = values.filter((v) => c.subject[relationOf.get(v)!] !== v);
      return words[0] === c.answer && untrue.length === 0 ? [] : [{ prompt: c.prompt, answer: c.answer, generated: words.join(" ") }];
    });
    assert.deepEqual(wrong, []);
    assert.ok(stated > cases.length, `the continuations state ${stated} values for ${cases.length} prompts`);
  });

  it("causal tracing: only the last block output at the last token decides the output", () => {
    const { model } = loaded;
    const ids = tokenizer.encode(facts.demo.prompt);
    const noiseStd = 3 * subjectEmbeddingStd(model, tokenizer, buildWorld(SEED));
    const trace = causalTrace(model, ids, facts.demo.subjectTokens, tokenizer.tokenToId(facts.demo.answer)!, { samples: 4, noiseStd, generator: new tv.Generator(0) });
    const last = model.numLayers - 1;
    assert.ok(trace.clean > 0.9, `clean p ${trace.clean}`);
    assert.ok(Math.abs(trace.restored[last * ids.length + ids.length - 1] - trace.clean) < 1e-5);
    for (let p = 0; p < ids.length - 1; p++) assert.ok(Math.abs(trace.restored[last * ids.length + p] - trace.corrupted) < 1e-5, `position ${p}`);
  });

  it("causal tracing: the subject's last token carries the fact in the middle layers, the last token in the late ones", () => {
    const { model } = loaded;
    const world = buildWorld(SEED);
    const noiseStd = 3 * subjectEmbeddingStd(model, tokenizer, world);
    const avg = averageTrace(model, tokenizer, tracePrompts(world).slice(0, 12), { samples: 5, noiseStd, generator: new tv.Generator(1) });
    const layers = model.numLayers;
    const column = (name: (typeof POSITION_CLASSES)[number]) => Array.from({ length: layers }, (_, l) => avg.effect[l * POSITION_CLASSES.length + POSITION_CLASSES.indexOf(name)]);
    const lastSubject = column("last subject token");
    const lastToken = column("last token");
    const peak = lastSubject.indexOf(Math.max(...lastSubject));

    assert.ok(avg.clean > 0.9 && avg.corrupted < 0.5 * avg.clean, `clean p ${avg.clean}, corrupted p ${avg.corrupted}`);
    assert.ok(peak >= Math.floor(layers / 3) && peak < layers - 1, `the subject's last token peaks at layer ${peak} of ${layers}`);
    assert.ok(lastSubject[peak] > 0.3, `effect at the peak ${lastSubject[peak]}`);
    for (const other of ["first subject token", "middle subject tokens", "further tokens"] as const) {
      const effects = column(other).filter(Number.isFinite);
      assert.ok(effects.length === layers && Math.max(...effects) < 0.5 * lastSubject[peak], `${other}: ${effects.map((v) => v.toFixed(2))}`);
    }
    for (let l = 0; l < peak; l++) assert.ok(lastToken[l] < lastSubject[l], `layer ${l}: the last token already matters`);
    assert.ok(lastToken[layers - 1] > lastSubject[layers - 1] && lastToken[layers - 1] > 0.5, "late layers: the last token carries the fact");
  });
});
