/** CausalModel: pyvene's CausalModelTestCase model, the DAS tutorial's hierarchical equality task, a sum. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as tv from "../src/index.js";

const { CausalModel, Generator } = tv;

/** pyvene's simple example and unit-test model: C = A ∧ B, inputs defaulting to true. */
function andDefinition(): tv.CausalModelDefinition {
  return {
    variables: ["A", "B", "C"],
    values: { A: [false, true], B: [false, true], C: [false, true] },
    parents: { A: [], B: [], C: ["A", "B"] },
    functions: { A: () => true, B: () => true, C: (a: boolean, b: boolean) => a && b },
  };
}

function andModel(): tv.CausalModel {
  return new CausalModel(andDefinition());
}

/** The hierarchical equality task of pyvene's DAS_Main_Introduction: O = ((W = X) = (Y = Z)). */
function equalityTask(seed = 42) {
  const generator = new Generator(seed);
  const reps = Array.from({ length: 20 }, () =>
    [0, 1].map(() => Math.round((generator.uniform() * 2 - 1) * 100) / 100),
  );
  const equal = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => x === b[i]);
  const model = new CausalModel({
    variables: ["W", "X", "Y", "Z", "WX", "YZ", "O"],
    values: { W: reps, X: reps, Y: reps, Z: reps, WX: [true, false], YZ: [true, false], O: [true, false] },
    parents: { W: [], X: [], Y: [], Z: [], WX: ["W", "X"], YZ: ["Y", "Z"], O: ["WX", "YZ"] },
    functions: {
      W: () => reps[0],
      X: () => reps[0],
      Y: () => reps[0],
      Z: () => reps[0],
      WX: equal,
      YZ: equal,
      O: (wx: boolean, yz: boolean) => wx === yz,
    },
  });
  return { model, reps };
}

/** The task computed by hand, with WX and/or YZ optionally overridden: the independent truth. */
function equalityByHand(input: tv.Setting, override: { WX?: boolean; YZ?: boolean } = {}): boolean {
  const same = (a: tv.CausalValue, b: tv.CausalValue) => JSON.stringify(a) === JSON.stringify(b);
  const wx = override.WX ?? same(input.W, input.X);
  const yz = override.YZ ?? same(input.Y, input.Z);
  return wx === yz;
}

const ids: Record<string, number> = { WX: 0, YZ: 1, "WX,YZ": 2 };
const interventionId = (intervention: tv.Setting) => ids[Object.keys(intervention).sort().join(",")];

describe("CausalModel structure", () => {
  it("derives inputs, outputs, timesteps and run order without touching the caller's lists", () => {
    const variables = ["C", "B", "A"];
    const m = new CausalModel({ ...andDefinition(), variables });
    assert.deepEqual(variables, ["C", "B", "A"]);
    assert.deepEqual(m.inputs, ["A", "B"]);
    assert.deepEqual(m.outputs, ["C"]);
    assert.deepEqual(m.timesteps, { A: 0, B: 0, C: 1 });
    assert.deepEqual(m.variables, ["A", "B", "C"]);
    assert.deepEqual(m.positions, { A: [0, 0], B: [1, 0], C: [0, 1] });
    assert.equal(m.formatStructure(), "t=0  A\nt=0  B\nt=1  C ← A, B");
    assert.equal(m.formatSetting(m.runForward()), "t=0  A = true\nt=0  B = true\nt=1  C = true ← A, B");
  });

  it("puts a variable at its longest-path depth and outputs on the last step", () => {
    const m = new CausalModel({
      variables: ["A", "B", "C", "D", "E"],
      values: { A: [0], B: [0], C: [0], D: [0], E: [0] },
      parents: { A: [], B: ["A"], C: ["A", "B"], D: ["C"], E: ["A"] },
      functions: { A: () => 0, B: () => 0, C: () => 0, D: () => 0, E: () => 0 },
    });
    assert.deepEqual(m.timesteps, { A: 0, B: 1, C: 2, D: 3, E: 3 });
    assert.deepEqual(m.intermediates, ["B", "C"]);
  });

  it("builds equivalence classes in itertools.product order (pyvene's test_initialization)", () => {
    const m = andModel();
    m.generateEquivalenceClasses();
    assert.deepEqual(m.equivalenceClasses, {
      C: [
        {
          value: false,
          parentSettings: [
            { A: false, B: false },
            { A: false, B: true },
            { A: true, B: false },
          ],
        },
        { value: true, parentSettings: [{ A: true, B: true }] },
      ],
    });
  });

  it("rejects bad definitions with the variable named", () => {
    const bad = (patch: Partial<tv.CausalModelDefinition>, message: RegExp) =>
      assert.throws(() => new CausalModel({ ...andDefinition(), ...patch }), message);
    bad({ parents: { A: [], B: [], C: ["A", "Q"] } }, /parents\["C"\] names unknown variable "Q"/);
    bad({ parents: { A: ["C"], B: [], C: ["A", "B"] } }, /cycle through variable "[AC]": /);
    bad({ functions: { A: () => true, B: () => true } }, /functions has no entry for variable "C"/);
    bad({ values: { A: [false, true], B: [], C: [false, true] } }, /values\["B"\] must be a non-empty array/);
    bad(
      { timesteps: { A: 0, B: 1, C: 1 } },
      /timesteps\["C"\] = 1 must be later than its parent's timesteps\["B"\] = 1/,
    );
    assert.throws(() => andModel().runForward({ D: true }), /intervention names unknown variable "D"/);
    assert.throws(() => andModel().sampleIntervention(), /no intermediate variables/);
  });
});

describe("CausalModel runs", () => {
  it("runs forward with and without interventions (pyvene's test_run_forward)", () => {
    const m = andModel();
    assert.deepEqual(m.runForward(), { A: true, B: true, C: true });
    for (const a of [false, true]) for (const b of [false, true]) assert.equal(m.runForward({ A: a, B: b }).C, a && b);
    assert.deepEqual(m.runForward({ A: false, B: false, C: true }), { A: false, B: false, C: true });
  });

  it("runs interchange interventions (pyvene's test_run_interchange)", () => {
    const m = andModel();
    assert.equal(m.runInterchange({ A: true, B: false }, { B: { A: false, B: true } }).C, true);
    assert.equal(m.runInterchange({ A: false, B: false }, { B: { A: true, B: true } }).C, false);
    assert.equal(m.runInterchange({ A: false, B: false }, { C: { A: true, B: true } }).C, true);
  });

  it("runs the equality task and flips O when WX comes from a source (the tutorial's BBCD / ABCC)", () => {
    const { model, reps } = equalityTask();
    const base = { W: reps[0], X: reps[0], Y: reps[1], Z: reps[3] };
    const source = { W: reps[0], X: reps[1], Y: reps[2], Z: reps[2] };
    assert.deepEqual(model.runForward(base), { ...base, WX: true, YZ: false, O: false });
    assert.equal(model.runForward({ ...base, WX: false }).O, true);
    // The source's WX is false (reps[0] ≠ reps[1]); with the base's YZ = false, O = (false = false).
    assert.deepEqual(model.runInterchange(base, { WX: source }), { ...base, WX: false, YZ: false, O: true });
    // Taking YZ from the source instead (reps[2] = reps[2]) gives O = (true = true).
    assert.equal(model.runInterchange(base, { YZ: source }).O, true);
    assert.equal(model.runInterchange(base, { WX: source, YZ: source }).O, false);
  });

  it("runs the sum (a + b) + c with x = a + b taken from another sum", () => {
    const digits = Array.from({ length: 10 }, (_, i) => i);
    const m = new CausalModel({
      variables: ["a", "b", "c", "x", "sum"],
      values: {
        a: digits,
        b: digits,
        c: digits,
        x: Array.from({ length: 19 }, (_, i) => i),
        sum: Array.from({ length: 28 }, (_, i) => i),
      },
      parents: { a: [], b: [], c: [], x: ["a", "b"], sum: ["x", "c"] },
      functions: {
        a: () => 0,
        b: () => 0,
        c: () => 0,
        x: (a: number, b: number) => a + b,
        sum: (x: number, c: number) => x + c,
      },
    });
    assert.equal(m.runForward({ a: 1, b: 2, c: 3 }).sum, 6);
    assert.equal(m.runInterchange({ a: 1, b: 2, c: 3 }, { x: { a: 2, b: 3, c: 4 } }).sum, 8);
    assert.equal(m.runInterchange({ a: 1, b: 2, c: 3 }, { c: { a: 2, b: 3, c: 4 } }).sum, 7);
  });

  it("finds live paths", () => {
    assert.deepEqual(andModel().findLivePaths({ A: false, B: true }), [["A", "C"]]);
    const { model, reps } = equalityTask();
    const paths = model.findLivePaths({ W: reps[0], X: reps[0], Y: reps[1], Z: reps[3] });
    assert.equal(paths.filter((p) => p.length === 2).length, 6);
    assert.deepEqual(
      paths.filter((p) => p.length === 3),
      [
        ["W", "WX", "O"],
        ["X", "WX", "O"],
        ["Y", "YZ", "O"],
        ["Z", "YZ", "O"],
      ],
    );
  });
});

describe("CausalModel sampling and datasets", () => {
  it("balances the output with the tree-balanced sampler", () => {
    const { model } = equalityTask();
    const generator = new Generator(3);
    const outcomes = Array.from(
      { length: 200 },
      () => model.runForward(model.sampleInputTreeBalanced({ generator })).O,
    );
    const trues = outcomes.filter(Boolean).length;
    assert.ok(trues > 70 && trues < 130, `${trues} of 200 true`);
  });

  it("generates a factual dataset, filtered on the total setting, as settings or tensors", () => {
    const { model } = equalityTask();
    const filter = model.getPartialFilter({ WX: true });
    const raw = model.generateFactualDataset(6, { generator: new Generator(1), filter });
    assert.equal(raw.length, 6);
    for (const e of raw) {
      assert.deepEqual(e.inputIds.W, e.inputIds.X);
      assert.equal(e.labels.O, equalityByHand(e.inputIds));
    }
    const tensors = model.generateFactualDataset(6, { generator: new Generator(1), filter, returnTensors: true });
    assert.deepEqual(tensors[0].inputIds.shape, [8]);
    assert.deepEqual(
      Array.from(tensors[0].inputIds.data),
      Array.from(Float32Array.from(["W", "X", "Y", "Z"].flatMap((v) => raw[0].inputIds[v] as number[]))),
    );
    assert.deepEqual(Array.from(tensors[0].labels.data), [raw[0].labels.O ? 1 : 0]);
  });

  it(`generates counterfactual labels equal to the hand-computed task with the intervened variables from the \
sources`, () => {
    const { model } = equalityTask();
    const sampler: tv.InputSampler = (request) => model.sampleInputTreeBalanced(request);
    const data = model.generateCounterfactualDataset(30, {
      interventionId,
      batchSize: 4,
      sampler,
      generator: new Generator(5),
    });
    assert.equal(data.length, 30);
    const seenIds = new Set<number>();
    data.forEach((e, i) => {
      const intervened = Object.keys(e.intervention).sort();
      assert.equal(e.intervention, data[i - (i % 4)].intervention, "a batch shares its intervention");
      assert.equal(e.interventionId, ids[intervened.join(",")]);
      assert.equal(e.sourceInputIds.length, intervened.length);
      const override: { WX?: boolean; YZ?: boolean } = {};
      intervened.forEach((v, k) => {
        const s = e.sourceInputIds[k];
        const fromSource =
          v === "WX" ? JSON.stringify(s.W) === JSON.stringify(s.X) : JSON.stringify(s.Y) === JSON.stringify(s.Z);
        assert.equal(fromSource, e.intervention[v], "each source gives its variable the intervention's value");
        override[v as "WX" | "YZ"] = fromSource;
      });
      assert.equal(e.labels.O, equalityByHand(e.inputIds, override));
      assert.equal(e.baseLabels.O, equalityByHand(e.inputIds));
      seenIds.add(e.interventionId);
    });
    assert.deepEqual([...seenIds].sort(), [0, 1, 2]);
  });

  it("samples sources that carry the intervention's values with the default sampler", () => {
    const { model } = equalityTask();
    for (const e of model.generateCounterfactualDataset(10, { interventionId, generator: new Generator(4) })) {
      Object.keys(e.intervention)
        .sort()
        .forEach((v, k) => {
          const s = e.sourceInputIds[k];
          const pair = v === "WX" ? [s.W, s.X] : [s.Y, s.Z];
          assert.equal(JSON.stringify(pair[0]) === JSON.stringify(pair[1]), e.intervention[v]);
        });
    }
  });

  it("is reproducible from the seed", () => {
    const { model } = equalityTask();
    const run = (seed: number) =>
      model.generateCounterfactualDataset(8, { interventionId, batchSize: 2, generator: new Generator(seed) });
    assert.deepEqual(run(11), run(11));
    assert.notDeepEqual(run(11), run(12));
    assert.deepEqual(
      model.generateFactualDataset(5, { generator: new Generator(9) }),
      model.generateFactualDataset(5, { generator: new Generator(9) }),
    );
  });

  it("converts counterfactual examples with the caller's input and output functions, padding the sources", () => {
    const { model } = equalityTask();
    const inputFunction = (s: tv.Setting) => tv.tensor(["W", "X", "Y", "Z"].map((v) => (s[v] as number[])[0]));
    const outputFunction = (s: tv.Setting) => tv.tensor(s.O ? [0, 1] : [1, 0]);
    const data = model.generateCounterfactualDataset(3, {
      interventionId,
      interventionSampler: () => ({ WX: false }),
      generator: new Generator(2),
      returnTensors: true,
      inputFunction,
      outputFunction,
    });
    const raw = model.generateCounterfactualDataset(3, {
      interventionId,
      interventionSampler: () => ({ WX: false }),
      generator: new Generator(2),
    });
    for (const [i, e] of data.entries()) {
      assert.deepEqual(e.inputIds.toArray(), inputFunction(raw[i].inputIds).toArray());
      assert.deepEqual(e.sourceInputIds.shape, [2, 4]);
      assert.deepEqual(e.sourceInputIds.toArray(), [inputFunction(raw[i].sourceInputIds[0]).toArray(), [0, 0, 0, 0]]);
      assert.deepEqual(e.labels.toArray(), outputFunction(raw[i].labels).toArray());
      assert.deepEqual(Array.from(e.interventionId.data), [0]);
    }
  });

  it("accepts interventions on inputs from custom samplers (pyvene's test_generate_counterfactual_dataset)", () => {
    const m = andModel();
    const data = m.generateCounterfactualDataset(4, {
      interventionId: () => 0,
      sampler: (request) => (request.outputVariable ? { A: true, B: true } : { A: true, B: false }),
      interventionSampler: () => ({ B: true }),
    });
    assert.equal(data.length, 4);
    assert.deepEqual(data[0].inputIds, { A: true, B: false });
    assert.equal(data[0].sourceInputIds[0].B, true);
    assert.equal(data[0].interventionId, 0);
    assert.equal(data[0].baseLabels.C, false);
    assert.equal(data[0].labels.C, true);
  });
});
