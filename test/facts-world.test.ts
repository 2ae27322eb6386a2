/**
 * The facts world (src/causal/facts-world.ts): facts.json's two forms parsed with errors that name
 * the field, templates filled with their subject spans, the world written back as read, and
 * causal traces averaged over ROME's position classes.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  POSITION_CLASSES,
  averageTraces,
  factsJson,
  fillTemplate,
  parseFacts,
  subjectsIn,
  worldFact,
  worldFacts,
  type SubjectTrace,
} from "../src/causal/facts-world.js";

/** A small world in facts.json's form: two relations, three people, one template naming another person. */
function smallWorld(): Record<string, unknown> {
  return {
    seed: 1,
    relations: [
      {
        name: "city",
        values: ["Rome", "Oslo"],
        trainTemplates: ["{subject} lives in", "{other} says that {subject} lives in"],
        heldOutTemplates: ["Fact : {subject} resides in"],
      },
      { name: "sport", values: ["golf", "judo"], trainTemplates: ["{subject} plays"], heldOutTemplates: [] },
    ],
    subjects: [
      { name: "Ka Bo", tokens: ["Ka", "Bo"], city: "Rome", sport: "golf" },
      { name: "Lo Mi Ta", tokens: ["Lo", "Mi", "Ta"], city: "Oslo", sport: "golf" },
      { name: "Se Vi", tokens: ["Se", "Vi"], city: "Oslo", sport: "judo" },
    ],
    demo: { prompt: "Ka Bo lives in", subject: "Ka Bo", subjectTokens: [0, 1], answer: "Rome" },
  };
}

describe("facts world", () => {
  it("reads a world: every subject × template is a fact, trained templates before held-out ones", () => {
    const { facts, demo, world } = parseFacts(smallWorld(), "small.json");
    assert.equal(facts.length, 3 * 3 + 3 * 1);
    assert.deepEqual(demo, smallWorld().demo);
    assert.deepEqual(world!.subjects[1], {
      name: "Lo Mi Ta",
      tokens: ["Lo", "Mi", "Ta"],
      attributes: { city: "Oslo", sport: "golf" },
    });
    assert.deepEqual(facts[0], {
      prompt: "Ka Bo lives in",
      subject: "Ka Bo",
      attribute: "Rome",
      relation: "city",
      heldOut: false,
      subjectSpan: [0, 2],
    });
    assert.deepEqual(
      facts.filter((f) => f.heldOut).map((f) => f.prompt),
      ["Fact : Ka Bo resides in", "Fact : Lo Mi Ta resides in", "Fact : Se Vi resides in"],
    );
    assert.deepEqual(
      facts.filter((f) => f.relation === "sport").map((f) => f.attribute),
      ["golf", "golf", "judo"],
    );
  });

  it("fills {other} with another person, a different one per template, and counts the subject's span in words", () => {
    const { world } = parseFacts(smallWorld(), "small.json");
    const city = world!.relations[0];
    const fact = worldFact(world!, city, false, 1, 1);
    assert.deepEqual(fact, {
      prompt: "Ka Bo says that Lo Mi Ta lives in",
      subject: "Lo Mi Ta",
      attribute: "Oslo",
      relation: "city",
      heldOut: false,
      subjectSpan: [4, 7],
    });
    for (const f of worldFacts(world!)) {
      const words = f.prompt.split(" ");
      assert.equal(words.slice(...f.subjectSpan).join(" "), f.subject, f.prompt);
      assert.ok(
        !words.slice(0, f.subjectSpan[0]).join(" ").includes(f.subject),
        `${f.prompt}: the other person is not the subject`,
      );
    }
    assert.deepEqual(fillTemplate("{subject} and {other} met", "A B", "C"), {
      prompt: "A B and C met",
      subjectSpan: [0, 2],
    });
  });

  it("writes a world back as it was read", () => {
    const json = smallWorld();
    assert.deepEqual(factsJson(parseFacts(json, "small.json").world!), json);
  });

  it("reads a plain list of facts: no relation, nothing held out, the first fact as the demo", () => {
    const { facts, demo, world } = parseFacts(
      [{ prompt: "Ada lives in", subject: " Ada ", attribute: "Rome" }],
      "list.json",
    );
    assert.equal(world, null);
    assert.deepEqual(facts, [
      { prompt: "Ada lives in", subject: "Ada", attribute: "Rome", relation: "", heldOut: false },
    ]);
    assert.deepEqual(demo, facts[0]);
  });

  it("refuses a malformed file with an error naming the field", () => {
    const refused = (json: unknown, message: string) =>
      assert.throws(
        () => parseFacts(json, "f.json"),
        (e: Error) => e.message === `f.json: ${message}`,
      );
    refused(
      42,
      'the content must be a list of facts [{"prompt", "subject", "attribute"}, …] ' +
        'or a world {"relations", "subjects", "demo"}, got 42',
    );
    refused([], "the list of facts is empty");
    refused(
      [{ prompt: "Ka lives in", subject: "Bo", attribute: "Rome" }],
      'entry 0: subject "Bo" does not occur in the prompt "Ka lives in"',
    );
    refused(
      [{ prompt: "Ka lives in", subject: "Ka", atribute: "Rome" }],
      'entry 0 has a field "atribute" it does not take (its fields are prompt, subject, attribute)',
    );
    refused(
      [{ prompt: "Ka lives in", subject: "Ka", attribute: "" }],
      'entry 0: attribute must be non-empty text, got ""',
    );
    // biome-ignore lint/suspicious/noExplicitAny: the edits write malformed values into a parsed world on purpose
    const world = (edit: (w: any) => void) => {
      const w = smallWorld();
      edit(w);
      return w;
    };
    refused(
      world((w) => (w.subjects[2].city = "Lima")),
      'subjects[2].city must be one of the city values (Rome, Oslo), got "Lima"',
    );
    refused(
      world((w) => delete w.subjects[0].sport),
      "subjects[0].sport must be one of the sport values (golf, judo), got undefined",
    );
    refused(
      world((w) => (w.subjects[0].height = 3)),
      'subjects[0] has a field "height" it does not take (its fields are name, tokens, city, sport)',
    );
    refused(
      world((w) => (w.subjects[2].name = "Ka Bo")),
      'subjects[2].name "Ka Bo" is taken by an earlier entry (names must differ)',
    );
    refused(
      world((w) => (w.relations[0].trainTemplates[0] = "{subject}lives in")),
      'relations[0].trainTemplates[0] must be words separated by single spaces, with "{subject}" once as a word ' +
        '(and "{other}" as words for another person), got "{subject}lives in"',
    );
    refused(
      world((w) => (w.relations[1].heldOutTemplates = "{subject} plays")),
      'relations[1].heldOutTemplates must be a list of templates, got "{subject} plays"',
    );
    refused(
      world((w) => (w.relations[1].values = [])),
      "relations[1].values must be a non-empty list, got []",
    );
    refused(
      world((w) => (w.subjects = [w.subjects[0]])),
      "subjects must name at least two people (a template names {other})",
    );
    refused(
      world((w) => (w.demo.subject = "Se Vi")),
      'demo.subject "Se Vi" does not occur in the prompt "Ka Bo lives in"',
    );
    refused(
      world((w) => (w.seed = "one")),
      'seed must be an integer, got "one"',
    );
  });

  it("finds the subjects of the facts in a prompt, longest first", () => {
    const { facts } = parseFacts(smallWorld(), "small.json");
    assert.deepEqual(subjectsIn(facts, "I heard Lo Mi Ta and Ka Bo"), ["Lo Mi Ta", "Ka Bo"]);
    assert.deepEqual(subjectsIn(facts, "nobody"), []);
  });
});

describe("averageTraces", () => {
  /** A trace over 2 layers of a prompt whose values are given row by row. */
  const trace = (rows: number[][], subject: number[], corrupted = 0.1): SubjectTrace => ({
    clean: 0.9,
    corrupted,
    corruptedPositions: subject,
    grid: { values: Float32Array.from(rows.flat()), rows: rows.length, cols: rows[0].length },
  });
  const at = (effect: Float32Array, layer: number, name: (typeof POSITION_CLASSES)[number]) =>
    effect[layer * POSITION_CLASSES.length + POSITION_CLASSES.indexOf(name)];

  it("averages the indirect effect per layer and position class, each prompt weighing the same", () => {
    // Prompt A: a prefix, a subject of 3 tokens (1..3), the first subsequent token, a further one, the last token.
    // Prompt B: a subject of 2 tokens first, the first subsequent token, the last token.
    const a = trace(
      [
        [0.1, 0.2, 0.3, 0.5, 0.1, 0.1, 0.4],
        [0.1, 0.1, 0.1, 0.7, 0.1, 0.2, 0.9],
      ],
      [1, 2, 3],
    );
    const b = trace(
      [
        [0.6, 0.4, 0.1, 0.2],
        [0.1, 0.1, 0.3, 0.9],
      ],
      [0, 1],
      0,
    );
    const avg = averageTraces([a, b]);
    const close = (actual: number, expected: number, what: string) =>
      assert.ok(Math.abs(actual - expected) < 1e-6, `${what}: ${actual}, expected ${expected}`);
    assert.equal(avg.prompts, 2);
    assert.equal(avg.layers, 2);
    close(avg.corrupted, 0.05, "corrupted");
    close(at(avg.effect, 0, "last subject token"), (0.5 - 0.1 + 0.4) / 2, "last subject token");
    close(at(avg.effect, 0, "middle subject tokens"), 0.3 - 0.1, "only A has a middle subject token");
    close(at(avg.effect, 1, "further tokens"), 0.2 - 0.1, "only A has a further token");
    close(at(avg.effect, 1, "first subsequent token"), (0.1 - 0.1 + 0.3) / 2, "first subsequent token");
    close(at(avg.effect, 1, "last token"), (0.9 - 0.1 + 0.9) / 2, "last token");
    assert.equal(avg.lastSubjectStrongest, 1, "A's last subject token is its strongest; B's first is");
    assert.ok(Number.isNaN(averageTraces([b]).effect[POSITION_CLASSES.indexOf("prefix")]), "no prompt has a prefix");
  });

  it("refuses traces it cannot average", () => {
    assert.throws(() => averageTraces([]), /averageTraces: no traces/);
    assert.throws(
      () => averageTraces([trace([[0, 0, 0]], [0, 2])]),
      /trace 0 must have 1 layers and its subject's positions in order, got 1 layers and positions \[0,2\]/,
    );
  });
});
