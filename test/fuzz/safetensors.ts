/**
 * Fuzzing the safetensors reader: files tsvene writes round-trip exactly; a file with a planted
 * defect (a bad dtype, shape or offsets in one entry, a header length past the end, a truncated
 * data section) is refused with an error naming the file and, for an entry, the tensor; random
 * byte flips in the header give a valid file or an Error, never a crash or another kind of throw.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import * as tv from "../../src/index.js";
import { parseSafetensors, serializeSafetensors } from "../../src/io/safetensors-format.js";

type Mutation =
  | { kind: "none" }
  | { kind: "entry"; field: "dtype" | "shape" | "offsets"; value: unknown }
  | { kind: "headerLength"; extra: number }
  | { kind: "truncate"; bytes: number }
  | { kind: "flip"; at: number; bit: number };

export interface SafetensorsCase {
  tensors: { name: string; int: boolean; shape: number[]; values: number[] }[];
  mutation: Mutation;
}

const tensorArb = fc
  .record({
    name: fc.stringMatching(/^[a-z][a-z0-9_.]{0,12}$/),
    int: fc.boolean(),
    shape: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 0, maxLength: 3 }),
  })
  .chain((t) => {
    const size = t.shape.reduce((a, b) => a * b, 1);
    const value = t.int ? fc.integer({ min: -1000, max: 1000 }) : fc.float({ noNaN: true, noDefaultInfinity: true });
    return fc.array(value, { minLength: size, maxLength: size }).map((values) => ({ ...t, values }));
  });

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { arbitrary: fc.constant<Mutation>({ kind: "none" }), weight: 3 },
  fc.constantFrom("F99", "", 7, null).map((value): Mutation => ({ kind: "entry", field: "dtype", value })),
  fc
    .constantFrom([1e12], [-1], [2.5], "3", [0, 7])
    .map((value): Mutation => ({ kind: "entry", field: "shape", value })),
  fc
    .constantFrom([5, 1], [0, 1e9], [-4, 0], ["0", "4"])
    .map((value): Mutation => ({ kind: "entry", field: "offsets", value })),
  fc.integer({ min: 1, max: 1e6 }).map((extra): Mutation => ({ kind: "headerLength", extra })),
  fc.integer({ min: 1, max: 3 }).map((bytes): Mutation => ({ kind: "truncate", bytes })),
  fc
    .record({ at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) })
    .map(({ at, bit }): Mutation => ({ kind: "flip", at, bit })),
);

export const safetensorsCase: fc.Arbitrary<SafetensorsCase> = fc.record({
  tensors: fc.uniqueArray(tensorArb, { minLength: 1, maxLength: 4, selector: (t) => t.name }),
  mutation: mutationArb,
});

const SOURCE = "fuzz.safetensors";

export function checkSafetensors(c: SafetensorsCase): "ran" | "rejected" {
  const named = new Map(
    c.tensors.map(
      (t) =>
        [
          t.name,
          t.int ? new tv.IntTensor(t.values, t.shape) : new tv.Tensor(Float32Array.from(t.values), t.shape),
        ] as const,
    ),
  );
  const { bytes, mustFail, names } = mutate(serializeSafetensors(named), c);
  let parsed: ReturnType<typeof parseSafetensors> | undefined;
  try {
    parsed = parseSafetensors(bytes, { source: SOURCE });
  } catch (e) {
    assert.ok(e instanceof Error, `a non-Error was thrown: ${String(e)}`);
    assert.ok(e.message.includes(SOURCE), `the error does not name the file: ${e.message}`);
    if (names !== null)
      assert.ok(e.message.includes(`"${names}"`), `the error does not name tensor "${names}": ${e.message}`);
    assert.ok(c.mutation.kind !== "none", `a file tsvene wrote was refused: ${e.message}`);
    return "rejected";
  }
  assert.ok(!mustFail, `defect ${JSON.stringify(c.mutation)} was not refused`);
  if (c.mutation.kind === "none") {
    for (const [name, t] of named) {
      const got: tv.Tensor | tv.IntTensor = parsed.tensors.get(name)!;
      assert.deepEqual(got.shape, t.shape);
      assert.deepEqual([...got.data], [...t.data], `tensor "${name}" did not round-trip`);
    }
  }
  return "ran";
}

/** The file with the case's mutation; whether it must be refused, and which tensor the error must name. */
function mutate(file: Uint8Array, c: SafetensorsCase): { bytes: Uint8Array; mustFail: boolean; names: string | null } {
  const m = c.mutation;
  const view = new DataView(file.buffer, file.byteOffset);
  const headerLength = Number(view.getBigUint64(0, true));
  switch (m.kind) {
    case "none":
      return { bytes: file, mustFail: false, names: null };
    case "truncate": {
      const dataBytes = file.byteLength - 8 - headerLength;
      return {
        bytes: file.slice(0, file.byteLength - Math.min(m.bytes, dataBytes)),
        mustFail: dataBytes > 0,
        names: null,
      };
    }
    case "headerLength": {
      const bytes = file.slice();
      new DataView(bytes.buffer).setBigUint64(0, BigInt(headerLength + file.byteLength + m.extra), true);
      return { bytes, mustFail: true, names: null };
    }
    case "flip": {
      const bytes = file.slice();
      bytes[8 + (m.at % headerLength)] ^= 1 << m.bit;
      return { bytes, mustFail: false, names: null };
    }
    case "entry": {
      const header = JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + headerLength))) as Record<
        string,
        Record<string, unknown>
      >;
      const name = c.tensors[0].name;
      header[name][m.field === "offsets" ? "data_offsets" : m.field] = m.value;
      const text = new TextEncoder().encode(JSON.stringify(header));
      const bytes = new Uint8Array(8 + text.byteLength + file.byteLength - 8 - headerLength);
      new DataView(bytes.buffer).setBigUint64(0, BigInt(text.byteLength), true);
      bytes.set(text, 8);
      bytes.set(file.subarray(8 + headerLength), 8 + text.byteLength);
      return { bytes, mustFail: true, names: m.field === "offsets" && c.tensors.length > 1 ? null : name };
    }
  }
}
