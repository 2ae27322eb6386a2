/** Heat map SVG and HTML report as strings: escaping, cells, colours worked out by hand, legends, tables. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as tv from "../src/index.js";
import type { CollectResult, PatchResult, ScoreGrid, TraceComponent, TraceResult } from "../src/sweeps/results.js";

function grid(values: number[], layers: number[], positions: number[]): ScoreGrid {
  assert.equal(values.length, layers.length * positions.length);
  return { values: Float32Array.from(values), rows: layers.length, cols: positions.length, layers, positions };
}

interface Cell {
  row: number;
  col: number;
  fill: string;
  title: string;
}

function cells(svg: string): Cell[] {
  const found = [
    ...svg.matchAll(
      new RegExp(
        '<rect class="cell" data-row="(\\d+)" data-col="(\\d+)"[^>]* fill="(#[0-9a-f]{6})">' +
          "<title>([^<]*)</title></rect>",
        "g",
      ),
    ),
  ];
  return found.map((m) => ({ row: Number(m[1]), col: Number(m[2]), fill: m[3], title: m[4] }));
}

/** Text of the tick labels beside the colour bar, top to bottom. */
function ticks(svg: string): string[] {
  return [...svg.matchAll(/<text class="tick"[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
}

/** Every "&" must start one of the entities escapeXml writes. */
function assertNoBareAmpersand(markup: string): void {
  assert.doesNotMatch(markup, /&(?!amp;|lt;|gt;|quot;|#39;)/);
}

const TOKENS = ["<b>", " Tom", " &", " Jerry", " live", " in"];

function trace(component: TraceComponent, peak: { row: number; col: number }): TraceResult {
  const layers = [0, 1, 2, 3];
  const positions = TOKENS.map((_, i) => i);
  const values = layers.flatMap((_, r) =>
    positions.map((_, c) => (r === peak.row && c === peak.col ? 0.75 : 0.05 + 0.01 * r)),
  );
  return {
    kind: "trace",
    component,
    window: component === "block_output" ? 1 : 2,
    tokens: TOKENS,
    corruptedPositions: [1, 2, 3],
    target: 4241,
    targetLabel: " Paris",
    metric: "probability",
    samples: 1,
    clean: 0.8125,
    corrupted: 0.03125,
    grid: grid(values, layers, positions),
  };
}

describe("heatmapSvg", () => {
  const g = grid([0, 0.5, 1, 0.25, 0.1, 0.5], [4, 5], [0, 1, 2]);
  const svg = tv.heatmapSvg(g, { tokens: ["<b>", "&", "x"], valueLabel: "p(y)", title: "A & B" });

  it("draws one cell per value, in row-major order, each titled with its layer, token and exact value", () => {
    const found = cells(svg);
    assert.equal(found.length, 6);
    assert.deepEqual(
      found.map((c) => [c.row, c.col]),
      [
        [0, 0],
        [0, 1],
        [0, 2],
        [1, 0],
        [1, 1],
        [1, 2],
      ],
    );
    assert.equal(found[1].title, "layer 4, position 1 &quot;&amp;&quot;: p(y) = 0.5");
    // 0.1 in float32 is 0.100000001490116…: the title gives the shortest decimal that reads back as it.
    assert.equal(found[4].title, "layer 5, position 1 &quot;&amp;&quot;: p(y) = 0.1");
    assert.equal(found[0].title, "layer 4, position 0 &quot;&lt;b&gt;&quot;: p(y) = 0");
  });

  it("colours white→purple linearly from the smallest to the largest value", () => {
    const fill = cells(svg).map((c) => c.fill);
    assert.equal(fill[0], "#ffffff"); // 0, the minimum
    assert.equal(fill[2], "#3f007d"); // 1, the maximum: matplotlib's darkest Purple
    // 0.5: halfway, channel by channel, rounded: (255+63)/2 = 159, 255/2 = 127.5 → 128, (255+125)/2 = 190.
    assert.equal(fill[1], "#9f80be");
    // 0.25: 255 − 192/4 = 207, 255 − 255/4 = 191.25 → 191, 255 − 130/4 = 222.5 → 223.
    assert.equal(fill[3], "#cfbfdf");
  });

  it("escapes tokens and the title, and labels rows with layers and columns with tokens", () => {
    assertNoBareAmpersand(svg);
    assert.ok(!svg.includes("<b>"), "a token must never become markup");
    assert.match(svg, />&lt;b&gt;<\/text>/);
    assert.match(svg, />&amp;<\/text>/);
    assert.match(svg, />A &amp; B<\/text>/);
    assert.match(svg, />4<\/text>/);
    assert.match(svg, />5<\/text>/);
    assert.match(svg, />layer<\/text>/);
  });

  it("is an accessible, self-contained image", () => {
    assert.match(
      svg,
      new RegExp(
        '^<svg xmlns="http://www\\.w3\\.org/2000/svg" class="heatmap" role="img" ' +
          'aria-label="A &amp; B: heat map of p\\(y\\) over 2 layers \\(4–5\\) and 3 positions; ' +
          'colour scale from 0 to 1"',
      ),
    );
    assert.match(svg, /<svg[^>]*>\n<title>A &amp; B: heat map/);
    assert.doesNotMatch(svg, /<script|<image|href=|@import/);
  });

  it("labels the colour bar with the scale's ends and the value's name", () => {
    assert.deepEqual(ticks(svg), ["1", "0"]);
    assert.match(svg, /<text class="value-label"[^>]*>p\(y\)<\/text>/);
    const narrow = tv.heatmapSvg(grid([0.0123, 0.87], [0], [0, 1]), { tokens: ["a", "b"] });
    assert.deepEqual(ticks(narrow), ["0.87", "0.0123"]);
  });

  it("switches to a symmetric blue–white–red scale when values straddle zero", () => {
    const signed = tv.heatmapSvg(grid([-0.5, 0.25, 0], [0], [0, 1, 2]), { tokens: ["a", "b", "c"] });
    assert.deepEqual(ticks(signed), ["0.5", "0", "-0.5"]);
    const fill = cells(signed).map((c) => c.fill);
    assert.equal(fill[0], "#2166ac"); // −0.5 = −magnitude: full blue
    assert.equal(fill[2], "#ffffff"); // zero: white
    // 0.25 = half of +magnitude toward #b2182b:
    // 255 − 77/2 = 216.5 → 217, 255 − 231/2 = 139.5 → 140, 255 − 212/2 = 149.
    assert.equal(fill[1], "#d98c95");
  });

  it("marks positions with *, cuts long tokens with the full text as a tooltip, and shows control characters", () => {
    const long = "a".repeat(30);
    const out = tv.heatmapSvg(grid([1, 2, 3], [0], [0, 1, 2]), {
      tokens: ["\n", long, "Tom"],
      markedPositions: [1, 2],
    });
    assert.match(out, />\\n<\/text>/);
    assert.match(out, />Tom\*<\/text>/);
    assert.match(out, new RegExp(`<g><title>${long}\\*</title><text [^>]*>${"a".repeat(13)}…\\*</text></g>`));
    assert.equal(cells(out)[2].title, "layer 0, position 2 &quot;Tom*&quot;: 3");
  });

  it("labels columns by their positions' tokens when the grid covers only some positions", () => {
    const out = tv.heatmapSvg(grid([1, 2], [7], [3, 1]), { tokens: ["a", "b", "c", "d"] });
    assert.deepEqual(
      cells(out).map((c) => c.title),
      ["layer 7, position 3 &quot;d&quot;: 1", "layer 7, position 1 &quot;b&quot;: 2"],
    );
  });

  it("greys out NaN cells and leaves them out of the scale", () => {
    const out = tv.heatmapSvg(grid([NaN, 2, 4], [0], [0, 1, 2]), { tokens: ["a", "b", "c"] });
    const found = cells(out);
    assert.equal(found[0].fill, "#bdbdbd");
    assert.equal(found[0].title, "layer 0, position 0 &quot;a&quot;: NaN");
    assert.equal(found[1].fill, "#ffffff");
    assert.deepEqual(ticks(out), ["4", "2"]);
  });

  it("names what is wrong with a malformed grid", () => {
    const bad = { ...grid([1, 2], [0], [0, 1]), values: new Float32Array(3) };
    assert.throws(() => tv.heatmapSvg(bad, { tokens: ["a", "b"] }), /grid\.values must hold rows × cols = 2 values/);
    assert.throws(
      () => tv.heatmapSvg(grid([1, 2], [0], [0, 5]), { tokens: ["a", "b"] }),
      /grid position 5 has no token/,
    );
    assert.throws(
      () => tv.heatmapSvg({ ...grid([1, 2], [0], [0, 1]), layers: [0, 1] }, { tokens: ["a", "b"] }),
      /grid\.layers must name each of the 1 rows/,
    );
    assert.throws(
      () => tv.heatmapSvg(grid([1], [0], [0]), { tokens: ["a"], idPrefix: "a b" }),
      /idPrefix "a b" must be a letter/,
    );
  });
});

describe("reports", () => {
  it("shows ROME's three panels in ROME's order with the prompt, metric, clean and corrupted values", () => {
    const traces = [
      trace("attention_output", { row: 3, col: 5 }),
      trace("block_output", { row: 1, col: 3 }),
      trace("mlp_output", { row: 2, col: 3 }),
    ];
    const html = tv.traceReport(traces);
    assertNoBareAmpersand(html);
    assert.ok(html.startsWith("<!DOCTYPE html>"));
    assert.match(html, /<title>Causal tracing<\/title>/);
    assert.doesNotMatch(html, /<script|<link|<img|src=|@import/);

    const headings = [...html.matchAll(/<h2>([^<]*)<\/h2>/g)].map((m) => m[1]);
    assert.deepEqual(headings, [
      "Impact of restoring state after corrupted input",
      "Impact of restoring MLP after corrupted input",
      "Impact of restoring attention after corrupted input",
    ]);
    assert.equal((html.match(/<svg /g) ?? []).length, 3);
    assert.equal(cells(html).length, 3 * 4 * 6);
    // Each panel's gradient id is its own, so the three colour bars do not share one.
    assert.deepEqual(
      [...html.matchAll(/<linearGradient id="([^"]+)"/g)].map((m) => m[1]),
      ["trace-block_output-scale", "trace-mlp_output-scale", "trace-attention_output-scale"],
    );
    // ROME's hues: block purple, MLP green, attention red, at each panel's peak cell.
    assert.deepEqual(
      cells(html)
        .filter((c) => c.fill !== "#ffffff" && /= 0\.75$/.test(c.title))
        .map((c) => c.fill),
      ["#3f007d", "#00441b", "#67000d"],
    );

    assert.match(
      html,
      new RegExp(
        '<span class="token" title="position 0">&lt;b&gt;</span>' +
          '<span class="token marked" title="position 1, corrupted"> Tom\\*</span>',
      ),
    );
    assert.match(html, /probability of &quot; Paris&quot; \(token 4241\) at the last position/);
    assert.match(
      html,
      /Corrupted positions<\/dt><dd>1 &quot; Tom&quot;, 2 &quot; &amp;&quot;, 3 &quot; Jerry&quot;<\/dd>/,
    );
    assert.match(html, /<span class="clean">p\( Paris\) = 0\.8125<\/span>/);
    assert.match(html, /<span class="corrupted-value">p\( Paris\) = 0\.03125<\/span>/);
    assert.match(html, /\(window of 2 layers around each\)/);
  });

  it("lists the top cells by how far they move the metric from the corrupted run", () => {
    const html = tv.traceReport(trace("block_output", { row: 1, col: 3 }), { topCells: 3 });
    const rows = [
      ...html.matchAll(
        new RegExp(
          "<tr><td>(\\d+)</td><td>(\\d+)</td><td>(\\d+)</td>" +
            '<td class="token">([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td></tr>',
          "g",
        ),
      ),
    ];
    assert.equal(rows.length, 3);
    // Peak 0.75 at layer 1, position 3; then layer 3's cells (0.08), first by position.
    assert.deepEqual(rows[0].slice(1), ["1", "1", "3", " Jerry", "0.75", "0.7188"]);
    assert.deepEqual(rows[1].slice(1, 5), ["2", "3", "0", "&lt;b&gt;"]);
    assert.deepEqual(rows[2].slice(1, 5), ["3", "3", "1", " Tom"]);
    assert.match(html, /<caption>Top 3 cells by \|value − corrupted\|<\/caption>/);
  });

  it("refuses traces of different prompts or two of one component", () => {
    const other = { ...trace("mlp_output", { row: 0, col: 0 }), tokens: ["a", "b", "c", "d", "e", "f"] };
    assert.throws(
      () => tv.traceReport([trace("block_output", { row: 0, col: 0 }), other]),
      /must share tokens, target and metric; mlp_output differs from block_output/,
    );
    assert.throws(
      () => tv.traceReport([trace("block_output", { row: 0, col: 0 }), trace("block_output", { row: 1, col: 1 })]),
      /two traces for block_output/,
    );
    assert.throws(() => tv.traceReport([]), /at least one TraceResult/);
    assert.throws(
      () => tv.traceReport(trace("block_output", { row: 0, col: 0 }), { topCells: -1 }),
      /topCells must be a non-negative integer/,
    );
  });

  it("reports a patch with both prompts, both runs' values and the base tokens on the heat map", () => {
    const patch: PatchResult = {
      kind: "patch",
      component: "block_output",
      baseTokens: ["The", " capital", " of", " Spain", " is"],
      sourceTokens: ["The", " capital", " of", " Italy", " is"],
      target: 10598,
      targetLabel: " Rome",
      metric: "logit",
      base: -1.5,
      source: 6.25,
      grid: grid([-1.5, -1.5, -1.5, 5, -1.25, -1.5, -1.5, -1.5, 0.5, 6.25], [0, 1], [0, 1, 2, 3, 4]),
    };
    const html = tv.patchReport(patch, { title: "Spain → Italy" });
    assert.match(html, /<h1>Spain → Italy<\/h1>/);
    assert.match(html, /Base<\/span> <span class="prompt">.*> Spain<\/span>/);
    assert.match(html, /Source<\/span> <span class="prompt">.*> Italy<\/span>/);
    assert.match(html, /<span class="base-value">logit\( Rome\) = -1\.5<\/span>/);
    assert.match(html, /<span class="source-value">logit\( Rome\) = 6\.25<\/span>/);
    assert.equal(cells(html).length, 10);
    assert.equal(cells(html)[3].title, "layer 0, position 3 &quot; Spain&quot;: logit( Rome) = 5");
    // Values straddle zero: a diverging scale symmetric about 0 at ±6.25.
    assert.deepEqual(ticks(html), ["6.25", "0", "-6.25"]);
    const firstRow = html.match(/<tbody>\n<tr><td>1<\/td><td>(\d+)<\/td><td>(\d+)<\/td>/);
    assert.deepEqual(firstRow?.slice(1), ["1", "4"]); // 6.25 moves the base logit by 7.75, the most
  });

  it("summarises collected activations per layer instead of drawing a heat map", () => {
    const collect: CollectResult = {
      kind: "collect",
      component: "mlp_output",
      layers: [0, 2],
      activations: [
        { layer: 0, shape: [1, 2, 2], values: Float32Array.from([3, 4, 0, 0]) },
        { layer: 2, shape: [2, 1, 3], values: Float32Array.from([1, 2, 2, -2, -1, -2]) },
      ],
    };
    const html = tv.collectReport(collect);
    assert.doesNotMatch(html, /<svg/);
    assert.match(html, /<title>Collected activations<\/title>/);
    const rows = [
      ...html.matchAll(/<tr><td>(\d+)<\/td><td>([^<]*)<\/td><td>([^<]*)<\/td><td>([^<]*)<\/td><\/tr>/g),
    ].map((m) => m.slice(1));
    // Layer 0: mean 7/4; vectors (3,4) and (0,0) have norms 5 and 0. Layer 2: mean 0; both norms 3.
    assert.deepEqual(rows, [
      ["0", "1 × 2 × 2", "1.75", "2.5"],
      ["2", "2 × 1 × 3", "0", "3"],
    ]);
    const bad: CollectResult = { ...collect, activations: [{ layer: 0, shape: [2, 2], values: new Float32Array(3) }] };
    assert.throws(
      () => tv.collectReport(bad),
      /layer 0's activations must have shape \[examples, positions, width\] matching its 3 values, got \[2, 2\]/,
    );
  });
});
