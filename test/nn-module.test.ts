/** The module tree: HF-style paths, strict state-dict loading, hooks that replace values. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as tv from "../src/index.js";
import { Linear, Module, ModuleList, LayerNorm, type AnyModule } from "../src/nn/index.js";

class Block extends Module {
  readonly ln = this.module("ln", new LayerNorm(3));
  readonly fc = this.module("fc", new Linear(3, 3));
  protected forward(x: tv.Tensor): tv.Tensor {
    return tv.add(x, this.fc.call(this.ln.call(x)));
  }
}

class Tiny extends Module {
  readonly h = this.module("h", new ModuleList([new Block(), new Block()]));
  readonly head = this.module("head", new Linear(3, 2, { bias: false }));
  protected forward(x: tv.Tensor): tv.Tensor {
    let y = x;
    for (const b of this.h.items) y = b.call(y);
    return this.head.call(y);
  }
}

function stateOf(m: AnyModule, seed: number): Map<string, tv.Tensor> {
  const g = new tv.Generator(seed);
  return new Map(m.namedParameters().map(([k, p]) => [k, tv.randn(p.shape, { generator: g })]));
}

describe("Module", () => {
  it("names parameters by dotted HF-style paths", () => {
    const m = new Tiny();
    assert.deepEqual(
      m.namedParameters().map(([k]) => k),
      [
        "h.0.ln.weight",
        "h.0.ln.bias",
        "h.0.fc.weight",
        "h.0.fc.bias",
        "h.1.ln.weight",
        "h.1.ln.bias",
        "h.1.fc.weight",
        "h.1.fc.bias",
        "head.weight",
      ],
    );
    assert.equal(m.getModule("h.1.fc"), m.h.at(1).fc);
    assert.throws(() => m.getModule("h.2.fc"), /no module "2" in "h.2.fc" \(children here: 0, 1\)/);
  });

  it("loads a state dict strictly and atomically", () => {
    const m = new Tiny();
    const state = stateOf(m, 1);
    m.loadStateDict(state);
    assert.deepEqual(m.getModule("h.0.fc").namedParameters()[0][1].data, state.get("h.0.fc.weight")!.data);

    const before = m.parameters().map((p) => p.data.slice());
    const bad = new Map(stateOf(m, 2));
    bad.delete("head.weight");
    bad.set("h.0.extra", tv.zeros([1]));
    bad.set("h.1.ln.bias", tv.zeros([4]));
    assert.throws(
      () => m.loadStateDict(bad),
      (e: Error) =>
        /missing: head\.weight/.test(e.message) &&
        /unexpected: h\.0\.extra/.test(e.message) &&
        /h\.1\.ln\.bias \(\[4\] given, \[3\] expected\)/.test(e.message),
    );
    m.parameters().forEach((p, i) => assert.deepEqual(p.data, before[i]));
  });

  it("pre-hooks replace inputs, post-hooks replace outputs, handles remove them", () => {
    const m = new Tiny();
    m.loadStateDict(stateOf(m, 3));
    const x = tv.randn([2, 3], { generator: new tv.Generator(4) });
    const clean = m.call(x);
    const seen: tv.Tensor[] = [];
    const fc = m.h.at(1).fc;
    const post = fc.addPostHook((_mod, _inp, out) => {
      seen.push(out);
      return tv.zerosLike(out);
    });
    const zeroed = m.call(x);
    assert.equal(seen.length, 1);
    const expected = m.head.call(m.h.at(1).ln.call(m.h.at(0).call(x)).mul(0).add(m.h.at(0).call(x)));
    assert.deepEqual(zeroed.data, expected.data);
    post.remove();
    post.remove();
    assert.equal(fc.hookCount, 0);
    assert.deepEqual(m.call(x).data, clean.data);

    const pre = m.head.addPreHook((_mod, inp) => tv.mul(inp, 2));
    const doubled = m.call(x);
    pre.remove();
    const manual = tv.linear(tv.mul(m.h.at(1).call(m.h.at(0).call(x)), 2), m.head.weight);
    assert.deepEqual(doubled.data, manual.data);
  });
});
