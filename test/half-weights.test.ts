/**
 * Weights in their checkpoint dtype: bf16/f16 rounding against hand-computed bits, linear layers
 * on 16-bit weights against the float32 product with the widened weight, models loaded with
 * `dtype: "bfloat16"` against pyvene's float32 logits within the documented tolerance, deferred
 * parameters that a loaded model never allocates, and 16-bit weights written back unchanged.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import * as tv from "../src/index.js";
import { floatBitsToBfloat16, floatBitsToFloat16 } from "../src/tensor/half.js";
import { fixtureFolder, maxAbsDiff, modelInputs, readCases, readFixtureTensors } from "./support/fixtures.js";

/** README: bf16 logits differ from float32 ones by at most this fraction of the largest |logit|. */
const BF16_LOGIT_TOLERANCE = 2 ** -7;

const scratch = await mkdtemp(join(tmpdir(), "tsvene-half-"));
after(() => rm(scratch, { recursive: true, force: true }));

const bitsOf = (x: number) => new Uint32Array(new Float32Array([x]).buffer)[0];

function randomTensor(shape: number[], seed: number): tv.Tensor {
  return tv.randn(shape, { generator: new tv.Generator(seed) });
}

describe("16-bit rounding", () => {
  it("rounds float32 to bfloat16 to nearest, ties to even, keeping NaN and inf", () => {
    assert.equal(floatBitsToBfloat16(bitsOf(1)), 0x3f80);
    assert.equal(floatBitsToBfloat16(0x3f808000), 0x3f80, "a tie below an even mantissa stays");
    assert.equal(floatBitsToBfloat16(0x3f818000), 0x3f82, "a tie above an odd mantissa rounds up");
    assert.equal(floatBitsToBfloat16(0x3f808001), 0x3f81, "just above a tie rounds up");
    assert.equal(floatBitsToBfloat16(0xbf80ffff), 0xbf81, "negative values round by magnitude");
    assert.equal(floatBitsToBfloat16(0x7f7fffff), 0x7f80, "the largest float32 rounds to inf");
    assert.equal(floatBitsToBfloat16(bitsOf(-Infinity)), 0xff80);
    assert.ok(
      Number.isNaN(tv.widen({ dtype: "bfloat16", bits: new Uint16Array([floatBitsToBfloat16(0x7f800001)]) })[0]),
    );
  });

  it("rounds float32 to float16 to nearest, ties to even, with subnormals and overflow", () => {
    assert.equal(floatBitsToFloat16(bitsOf(1)), 0x3c00);
    assert.equal(floatBitsToFloat16(bitsOf(65504)), 0x7bff);
    assert.equal(floatBitsToFloat16(bitsOf(65520)), 0x7c00, "halfway to 2^16 rounds to inf");
    assert.equal(floatBitsToFloat16(bitsOf(2 ** -24)), 0x0001, "the smallest subnormal");
    assert.equal(floatBitsToFloat16(bitsOf(2 ** -25)), 0x0000, "half the smallest subnormal ties to zero");
    assert.equal(floatBitsToFloat16(bitsOf(1 + 2 ** -11)), 0x3c00, "a tie at 1 stays even");
  });

  it("widens exactly: every 16-bit value survives rounding back", () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    for (const dtype of tv.HALF_DTYPES) {
      const values = tv.widen({ dtype, bits: all });
      const back = tv.roundToHalf(values, dtype).bits;
      for (let i = 0; i < all.length; i++) {
        if (Number.isNaN(values[i])) continue;
        assert.equal(back[i], i, `${dtype} bits ${i.toString(16)}`);
      }
    }
  });
});

describe("linear on 16-bit weights", () => {
  // Shapes above the converting path's block of 2^20 widened values, so several blocks meet.
  const shapes: [number, number, number][] = [
    [3, 5, 7],
    [1, 1100, 1024],
    [17, 1030, 1100],
  ];
  for (const dtype of tv.HALF_DTYPES) {
    for (const layout of ["out_in", "in_out"] as const) {
      it(`${dtype}, ${layout}: forward and input gradient equal the float32 product with the widened weight`, (t) => {
        for (const [rows, inF, outF] of shapes) {
          const stored = layout === "out_in" ? [outF, inF] : [inF, outF];
          const weight = new tv.Tensor(tv.roundToHalf(randomTensor(stored, rows).data, dtype), stored);
          const widened = new tv.Tensor(tv.widen(weight.half!), stored);
          const bias = randomTensor([outF], 2);
          const x = randomTensor([rows, inF], 3).requireGrad();
          const g = randomTensor([rows, outF], 4);
          const expected = tv.linear(x, widened, bias, layout);
          expected.backward(g);
          const expectedGrad = x.grad!.data.slice();
          x.zeroGrad();
          const got = tv.linear(x, weight, bias, layout);
          got.backward(g);
          // Any summation order is within k·2^-23 of Σ|x·w| in float32 (BLAS picks its order by
          // shape, and the converting path multiplies in blocks); a bf16 GEMM also rounds the
          // activations to bf16, adding up to 2^-8 of Σ|x·w|.
          const converting = tv.kernels().bf16Gemm === undefined || dtype === "float16";
          const relative = inF * 2 ** -23 + (converting ? 0 : 2 ** -8);
          const bound = tv.linear(tv.abs(x.detach()), tv.abs(widened), tv.abs(bias), layout);
          for (let i = 0; i < got.size; i++) {
            const err = Math.abs(got.data[i] - expected.data[i]);
            assert.ok(err <= relative * bound.data[i], `[${rows}, ${inF}] → ${outF}, output ${i}: error ${err}`);
          }
          const gradBound = tv.matmul(tv.abs(g), layout === "out_in" ? tv.abs(widened) : tv.transpose(tv.abs(widened)));
          const gradRelative = outF * 2 ** -23 + (converting ? 0 : 2 ** -8);
          for (let i = 0; i < x.size; i++) {
            const err = Math.abs(x.grad!.data[i] - expectedGrad[i]);
            assert.ok(
              err <= gradRelative * gradBound.data[i],
              `[${rows}, ${inF}] → ${outF}, gradient ${i}: error ${err}`,
            );
          }
          t.diagnostic(`${converting ? "converting path" : "bf16 GEMM"} on the ${tv.kernels().name} kernels`);
          assert.equal(weight.dtype, dtype, "the weight was not widened in place");
        }
      });
    }
  }

  it("refuses a gradient on 16-bit weights: they are frozen", () => {
    const w = new tv.Tensor(tv.roundToHalf(new Float32Array(6), "bfloat16"), [2, 3]);
    assert.throws(() => w.requireGrad(), /bfloat16 weights, which are frozen .*dtype "float32"/);
  });

  it("embedding rows of a 16-bit table are widened without widening the table", () => {
    const table = new tv.Tensor(tv.roundToHalf(randomTensor([50, 8], 5).data, "bfloat16"), [50, 8]);
    const rows = tv.embedding(
      table,
      tv.intTensor([
        [3, 49],
        [0, 3],
      ]),
    );
    const widened = tv.widen(table.half!);
    for (const [i, id] of [3, 49, 0, 3].entries())
      assert.deepEqual(rows.data.subarray(i * 8, i * 8 + 8), widened.subarray(id * 8, id * 8 + 8));
  });
});

describe("models loaded in bfloat16", () => {
  for (const fixture of ["gpt2_tiny", "llama_tiny_gqa", "gpt_neox_tiny"]) {
    it(`${fixture}: all weights bf16, logits within 2^-7 of the largest of pyvene's float32 logits`, async (t) => {
      const [cases, tensors] = await Promise.all([readCases(fixture), readFixtureTensors(fixture)]);
      const { model } = await tv.loadPretrained(fixtureFolder(fixture), { dtype: "bfloat16" });
      assert.deepEqual(new Set(model.parameters().map((p) => p.dtype)), new Set(["bfloat16"]));
      for (const [name, ref] of Object.entries(cases.references)) {
        const inputs = modelInputs(cases, tensors, name);
        const logits = tv.noGrad(() => model.run(inputs).logits);
        const expected = tensors.get(ref.logits) as tv.Tensor;
        const largest = Math.max(...expected.data.map(Math.abs));
        const diff = maxAbsDiff(logits, expected, inputs.attentionMask ?? null);
        assert.ok(diff <= BF16_LOGIT_TOLERANCE * largest, `${name}: ${diff} vs ${BF16_LOGIT_TOLERANCE * largest}`);
        assert.ok(diff > 0, "the weights really were rounded");
        t.diagnostic(
          `${name}: max |Δ logit| ${diff.toExponential(2)} (${((100 * diff) / largest).toFixed(2)}% of the largest)`,
        );
      }
    });
  }

  it('"auto" keeps a float32 checkpoint float32, bit for bit, and a bf16 checkpoint bf16', async () => {
    const f32 = await tv.loadPretrained(fixtureFolder("gpt2_tiny"), { dtype: "auto" });
    const reference = await tv.loadPretrained(fixtureFolder("gpt2_tiny"));
    assert.deepEqual(new Set(f32.model.parameters().map((p) => p.dtype)), new Set(["float32"]));
    const ids = { inputIds: tv.intTensor([[1, 2, 3]]) };
    assert.deepEqual(f32.model.run(ids).logits.data, reference.model.run(ids).logits.data);

    const bf16 = await tv.loadPretrained(fixtureFolder("gpt2_tiny"), { dtype: "bfloat16" });
    const folder = join(scratch, "gpt2-bf16");
    await tv.saveCheckpoint(folder, new Map(bf16.model.namedParameters()), { config: bf16.config, dtype: "BF16" });
    const auto = await tv.loadPretrained(folder, { dtype: "auto" });
    for (const [name, p] of auto.model.namedParameters()) {
      assert.equal(p.dtype, "bfloat16", name);
      const original = bf16.model.namedParameters().find(([n]) => n === name)![1];
      assert.deepEqual(p.half!.bits, original.half!.bits, `${name}: written and read back unchanged`);
    }
    assert.deepEqual(auto.model.run(ids).logits.data, bf16.model.run(ids).logits.data);
    const widened = await tv.loadPretrained(folder);
    assert.deepEqual(new Set(widened.model.parameters().map((p) => p.dtype)), new Set(["float32"]));
  });

  it("refuses an unknown dtype, naming the ones it knows", async () => {
    await assert.rejects(
      tv.loadPretrained(fixtureFolder("gpt2_tiny"), { dtype: "bf16" as tv.WeightDtype }),
      /dtype "bf16" is not one of "float32", "bfloat16", "auto"/,
    );
  });

  it("copying a float32 state dict into a bf16 model rounds it into the parameters' dtype", async () => {
    const { model } = await tv.loadPretrained(fixtureFolder("llama_tiny_gqa"), { dtype: "bfloat16" });
    const weights = (await tv.loadCheckpoint(fixtureFolder("llama_tiny_gqa"))).tensors;
    const before = (weights.get("model.norm.weight") as tv.Tensor).data.slice();
    const doubled = new Map([...weights].map(([k, v]) => [k, v instanceof tv.Tensor ? tv.mul(v, 2) : v]));
    model.loadStateDict(doubled);
    const norm = model.namedParameters().find(([n]) => n === "model.norm.weight")![1];
    assert.equal(norm.dtype, "bfloat16");
    assert.deepEqual(
      norm.half!.bits,
      tv.roundToHalf(tv.mul(new tv.Tensor(before, [before.length]), 2).data, "bfloat16").bits,
    );
  });

  it("copies bf16 weights into a trainable float32 model, widened; sharing them there is refused", async () => {
    const bf16 = (await tv.loadCheckpoint(fixtureFolder("llama_tiny_gqa"), { dtype: "bfloat16" })).tensors;
    const model = tv.modelFromConfig((await tv.loadPretrained(fixtureFolder("llama_tiny_gqa"))).config).requireGrad();
    model.loadStateDict(bf16);
    const [name, norm] = model.namedParameters().find(([n]) => n === "model.norm.weight")!;
    assert.equal(norm.dtype, "float32", name);
    assert.deepEqual(norm.data, tv.widen((bf16.get(name) as tv.Tensor).half!));
    assert.throws(() => model.loadStateDict(bf16, { share: true }), /bfloat16 weights are frozen/);
    assert.deepEqual(norm.data, tv.widen((bf16.get(name) as tv.Tensor).half!), "a refused load changes nothing");
  });
});

describe("deferred parameters", () => {
  it("a Llama-2-7B-shaped model is built without allocating its 6.7 billion parameters", () => {
    const rssBefore = process.memoryUsage().rss;
    const model = tv.modelFromConfig({
      model_type: "llama",
      architectures: ["LlamaForCausalLM"],
      hidden_size: 4096,
      intermediate_size: 11008,
      num_hidden_layers: 32,
      num_attention_heads: 32,
      num_key_value_heads: 32,
      vocab_size: 32000,
      max_position_embeddings: 4096,
      rms_norm_eps: 1e-5,
    });
    const count = model.parameters().reduce((n, p) => n + p.size, 0);
    assert.equal(count, 6_738_415_616, "Llama-2-7B's parameter count");
    const grownMiB = (process.memoryUsage().rss - rssBefore) / 2 ** 20;
    assert.ok(grownMiB < 256, `building the model grew the RSS by ${grownMiB.toFixed(0)} MiB`);
    const norm = model.namedParameters().find(([n]) => n === "model.norm.weight")![1];
    assert.deepEqual([...norm.data.subarray(0, 3)], [1, 1, 1], "a deferred norm weight reads as ones");
  });
});
