/**
 * Generation control: nucleus sampling (top-p) against hand-computed distributions, maxLength,
 * and IntervenableModel.generate's timestepSelector against a hand-written step-by-step loop.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as tv from "../src/index.js";
import { limitTopP } from "../src/models/generate.js";
import type { TimestepSelector } from "../src/intervene/call-inputs.js";
import type { AnyModule, Module } from "../src/nn/index.js";
import { fixtureFolder } from "./support/fixtures.js";

function hookCount(model: AnyModule): number {
  let n = 0;
  for (const [, m] of model.namedModules()) n += m.hookCount;
  return n;
}

/** Token indices whose logit is finite, per row. */
function survivors(logits: tv.Tensor): number[][] {
  const [rows, vocab] = logits.shape;
  return Array.from({ length: rows }, (_, r) =>
    [...logits.data.subarray(r * vocab, (r + 1) * vocab)].flatMap((x, j) => (x > -Infinity ? [j] : [])),
  );
}

/** The nucleus by its definition: the most likely tokens, in order, until their probabilities reach p. */
function nucleus(logits: number[], p: number): number[] {
  const top = Math.max(...logits);
  const weights = logits.map((x) => Math.exp(x - top));
  const total = weights.reduce((a, b) => a + b, 0);
  const order = logits.map((_, j) => j).sort((a, b) => logits[b] - logits[a]);
  const kept: number[] = [];
  let mass = 0;
  for (const j of order) {
    kept.push(j);
    mass += weights[j] / total;
    if (mass >= p) break;
  }
  return kept.sort((a, b) => a - b);
}

describe("top-p (nucleus) sampling", () => {
  const probs = [
    [0.5, 0.05, 0.3, 0.15],
    [0.1, 0.2, 0.3, 0.4],
  ];
  const logits = new tv.Tensor(Float32Array.from(probs.flat(), Math.log), [2, 4]);

  it("keeps the smallest most-likely set whose probability reaches p, at least one token", () => {
    const cases: [number, number[][]][] = [
      [0.35, [[0], [3]]],
      [
        0.6,
        [
          [0, 2],
          [2, 3],
        ],
      ],
      [
        0.75,
        [
          [0, 2],
          [1, 2, 3],
        ],
      ],
      [
        0.85,
        [
          [0, 2, 3],
          [1, 2, 3],
        ],
      ],
      [
        0.97,
        [
          [0, 1, 2, 3],
          [0, 1, 2, 3],
        ],
      ],
      [0, [[0], [3]]],
      [
        1,
        [
          [0, 1, 2, 3],
          [0, 1, 2, 3],
        ],
      ],
    ];
    for (const [p, expected] of cases) {
      assert.deepEqual(survivors(limitTopP(logits, p)), expected, `topP ${p}`);
      assert.deepEqual(
        [0, 1].map((r) => nucleus(probs[r].map(Math.log), p)),
        expected,
        `topP ${p} (definition)`,
      );
    }
    const kept = limitTopP(logits, 0.6);
    assert.equal(kept.data[0], logits.data[0], "survivors keep their logits");
  });

  describe("in generate (tiny GPT-2)", () => {
    let model: tv.PretrainedModel;
    const inputIds = tv.intTensor([
      [83, 54, 22, 99, 51, 27],
      [3, 74, 81, 8, 16, 20],
    ]);
    before(async () => {
      model = (await tv.loadPretrained(fixtureFolder("gpt2_tiny"))).model;
    });

    it("samples only tokens of the nucleus (after temperature and top-k), with scores masked to it", () => {
      const [temperature, topK, topP] = [0.8, 12, 0.5];
      const picked = new Set<number>();
      for (let seed = 0; seed < 12; seed++) {
        const { sequences, scores } = tv.generate(model, inputIds, {
          maxNewTokens: 3,
          doSample: true,
          temperature,
          topK,
          topP,
          generator: new tv.Generator(seed),
        });
        const total = sequences.shape[1];
        for (let step = 0; step < 3; step++) {
          const prefix = [0, 1].map((b) => [...sequences.data.subarray(b * total, b * total + 6 + step)]);
          const all = model.run({ inputIds: tv.intTensor(prefix) }).logits;
          for (let b = 0; b < 2; b++) {
            const [, t, vocab] = all.shape;
            const last = [...all.data.subarray((b * t + t - 1) * vocab, (b * t + t) * vocab)].map(
              (x) => x / temperature,
            );
            const kth = [...last].sort((x, y) => y - x)[topK - 1];
            const nucleusOf = nucleus(
              last.map((x) => (x < kth ? -Infinity : x)),
              topP,
            );
            const token = sequences.data[b * total + 6 + step];
            assert.ok(nucleusOf.includes(token), `seed ${seed} step ${step} row ${b}: ${token} outside the nucleus`);
            assert.deepEqual(survivors(scores[step])[b], nucleusOf);
            picked.add(token);
          }
        }
      }
      assert.ok(picked.size > 1);
    });

    it("maxLength counts the prompt; with maxNewTokens the two must agree", () => {
      const byLength = tv.generate(model, inputIds, { maxLength: 9 });
      assert.deepEqual(byLength.sequences.shape, [2, 9]);
      assert.deepEqual(byLength.sequences.data, tv.generate(model, inputIds, { maxNewTokens: 3 }).sequences.data);
      assert.deepEqual(tv.generate(model, inputIds, { maxLength: 9, maxNewTokens: 3 }).sequences.shape, [2, 9]);
      assert.deepEqual(tv.generate(model, inputIds, { max_length: 6 } as never).sequences.shape, [2, 6]);
      const bad: [object, RegExp][] = [
        [{ maxLength: 9, maxNewTokens: 2 }, /maxNewTokens \(2\) and maxLength \(9\) disagree/],
        [{ maxLength: 5 }, /maxLength \(5\) is shorter than the prompt \(6 tokens\)/],
        [{ maxLength: 7.5 }, /maxLength must be a non-negative integer/],
        [{}, /maxNewTokens must be a non-negative integer/],
        [{ maxNewTokens: 2, topP: 1.5 }, /topP must be a number in \[0, 1\]/],
        [{ maxNewTokens: 2, topP: "0.5" }, /topP must be a number/],
      ];
      for (const [options, message] of bad)
        assert.throws(() => tv.generate(model, inputIds, options as tv.GenerateOptions), message);
    });
  });
});

describe("IntervenableModel.generate with a timestepSelector", () => {
  let model: tv.PretrainedModel;
  const base = { inputIds: tv.intTensor([[83, 54, 22, 99, 51, 27]]) };
  const steer = tv.randn([32], { std: 4, generator: new tv.Generator(7) });
  const newTokens = 5;
  before(async () => {
    model = (await tv.loadPretrained(fixtureFolder("gpt2_tiny"))).model;
  });

  function steered() {
    return new tv.IntervenableModel(
      { layer: 1, component: "block_output", interventionType: tv.AdditionIntervention },
      model,
    );
  }

  /**
   * Greedy decoding by hand, no cache: every pass reruns the whole sequence, with a plain hook
   * adding the steering vector where a chosen pass read its tokens (the prompt for pass 0, the
   * k-th new token for pass k), so what a cached pass wrote stays steered for later passes.
   */
  function byHand(chosen: (step: number) => boolean): number[] {
    const tokens = [...base.inputIds.data];
    const prompt = tokens.length;
    const block = model.getModule("transformer.h.1") as Module<tv.Tensor, unknown>;
    const steeredAt = (position: number) => (position < prompt ? chosen(0) : chosen(position - prompt + 1));
    const handle = block.addPostHook((_m, _x, y) => {
      const [, t, d] = y.shape;
      const out = y.data.slice();
      for (let p = 0; p < t; p++) if (steeredAt(p)) for (let i = 0; i < d; i++) out[p * d + i] += steer.data[i];
      return new tv.Tensor(out, y.shape);
    });
    try {
      for (let step = 0; step < newTokens; step++) {
        const logits = model.run({ inputIds: tv.intTensor([tokens]) }).logits;
        const t = logits.shape[1];
        tokens.push(tv.argmax(tv.slice(logits, 1, t - 1, t), -1).data[0]);
      }
    } finally {
      handle.remove();
    }
    return tokens;
  }

  it("intervenes at the chosen passes only, as a hand loop with a hook at those passes does", () => {
    const selectors: [TimestepSelector, (s: number) => boolean][] = [
      [[0, 2], (s) => s === 0 || s === 2],
      [[1, 3, 4], (s) => s === 1 || s === 3 || s === 4],
      [[2], (s) => s === 2],
      [(s: number) => s % 2 === 0, (s) => s % 2 === 0],
      [[], () => false],
    ];
    const plain = byHand(() => false);
    let differs = 0;
    for (const [selector, chosen] of selectors) {
      const { generated } = steered().generate(base, null, {
        sourceRepresentations: steer,
        maxNewTokens: newTokens,
        timestepSelector: selector,
      });
      const expected = byHand(chosen);
      assert.deepEqual([...generated.sequences.data], expected, `selector ${String(selector)}`);
      if (expected.join() !== plain.join()) differs++;
      assert.equal(hookCount(model), 0);
    }
    assert.ok(differs >= 3, "steering changes the generations");
    const { generated: snake } = steered().generate(base, null, {
      sourceRepresentations: steer,
      maxNewTokens: newTokens,
      timestep_selector: [0, 2],
    } as never);
    assert.deepEqual(
      [...snake.sequences.data],
      byHand((s) => s === 0 || s === 2),
    );
  });

  it("all passes but the prompt is pyvene's default gating", () => {
    const options = { sourceRepresentations: steer, maxNewTokens: newTokens };
    const gated = steered().generate(base, null, options).generated;
    const selected = steered().generate(base, null, { ...options, timestepSelector: (s: number) => s > 0 }).generated;
    assert.deepEqual(selected.sequences.data, gated.sequences.data);
    assert.deepEqual(
      byHand((s) => s > 0),
      [...gated.sequences.data],
    );
  });

  it("refuses invalid selectors naming the field, leaving no hook behind", () => {
    const bad: [unknown, RegExp][] = [
      [[0, -1], /timestepSelector must be a list of pass indices/],
      [[1.5], /timestepSelector must be a list of pass indices/],
      ["0,2", /timestepSelector must be a list of pass indices/],
      [{ 0: true }, /timestepSelector must be a list of pass indices/],
      [() => 1, /timestepSelector must return true or false, got 1 for pass 0/],
    ];
    for (const [selector, message] of bad) {
      assert.throws(
        () =>
          steered().generate(base, null, {
            sourceRepresentations: steer,
            maxNewTokens: 2,
            timestepSelector: selector as TimestepSelector,
          }),
        message,
      );
      assert.equal(hookCount(model), 0);
    }
    assert.throws(
      () =>
        steered().generate(base, null, {
          sourceRepresentations: steer,
          maxNewTokens: 2,
          timestepSelector: [0],
          interveneOnPrompt: true,
        }),
      /give timestepSelector or interveneOnPrompt/,
    );
    assert.equal(hookCount(model), 0);
  });
});
