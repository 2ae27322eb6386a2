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
    noiseStd: 0.375,
    seed: 7,
    samples: 1,
    clean: 0.8125,
    corrupted: 0.03125,
    corruptedSpread: 0,
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
      ["block_output-scale", "mlp_output-scale", "attention_output-scale"],
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
    // Shown to 4 significant digits, the exact float32 on hover.
    assert.match(html, /<span class="clean">p\( Paris\) = <span title="0\.8125">0\.8125<\/span><\/span>/);
    assert.match(html, /<span class="corrupted-value">p\( Paris\) = <span title="0\.03125">0\.03125<\/span><\/span>/);
    assert.match(html, /\(window of 2 layers around each\)/);
  });

  it("lists the top cells by how far they move the metric from the corrupted run", () => {
    const html = tv.traceReport(trace("block_output", { row: 1, col: 3 }), { topCells: 3 });
    const rows = [
      ...html.matchAll(
        new RegExp(
          "<tr><td>(\\d+)</td><td>(\\d+)</td><td>(\\d+)</td>" +
            '<td class="token">([^<]*)</td><td title="[^"]*">([^<]*)</td><td title="[^"]*">([^<]*)</td></tr>',
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
      /must share tokens, target, metric, noiseStd, seed and samples; mlp_output differs from block_output/,
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
    assert.match(html, /Base<\/span> <span class="prompt">.*> Spain\*<\/span>/);
    assert.match(html, /Source<\/span> <span class="prompt">.*> Italy\*<\/span>/);
    assert.match(html, /<span class="base-value">logit\( Rome\) = <span title="-1\.5">-1\.5<\/span><\/span>/);
    assert.match(html, /<span class="source-value">logit\( Rome\) = <span title="6\.25">6\.25<\/span><\/span>/);
    assert.equal(cells(html).length, 10);
    // Position 3 is where base and source differ: marked on the map and in both prompts.
    assert.equal(cells(html)[3].title, "layer 0, position 3 &quot; Spain*&quot;: logit( Rome) = 5");
    assert.match(html, /<span class="token marked" title="position 3, differs from the source"> Spain\*<\/span>/);
    assert.match(html, /<span class="token marked" title="position 3, differs from the base"> Italy\*<\/span>/);
    // Centred on the base run's value: white there, the hue's end 7.75 above it.
    assert.deepEqual(ticks(html), ["6.25", "-1.5"]);
    assert.equal(cells(html)[0].fill, "#ffffff");
    assert.equal(cells(html)[9].fill, "#3f007d");
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

describe("reports people read", () => {
  const drawn = (peak: number, spread = 0): TraceResult => {
    const t = trace("block_output", { row: 1, col: 3 });
    const values = Float32Array.from(t.grid.values, (v) => (v === 0.75 ? peak : v));
    const cellSpread = new Float32Array(values.length).fill(spread);
    return { ...t, samples: 10, corruptedSpread: 0.015625, grid: { ...t.grid, values, spread: cellSpread } };
  };

  it("says the model, noise, seed and draws in the summary and on the picture; hover gives mean ± spread", () => {
    const html = tv.traceReport(drawn(0.75, 0.125), { model: "gpt2-test" });
    assert.match(html, /<dt>Model<\/dt><dd>gpt2-test<\/dd>/);
    assert.match(html, /<dt>Noise<\/dt><dd>Gaussian, σ = 0\.375, seed 7, 10 draws<\/dd>/);
    const subtitle = /<text class="heatmap-subtitle"[^>]*>([^<]*)</.exec(html)?.[1];
    assert.equal(subtitle, "model gpt2-test · Gaussian, σ = 0.375, seed 7, 10 draws");
    assert.match(html, /p\( Paris\) = <span title="0\.03125">0\.03125<\/span> ± <span title="0\.015625">0\.01563</);
    assert.equal(
      cells(html).find((c) => c.row === 1 && c.col === 3)?.title,
      "layer 1, position 3 &quot; Jerry*&quot;: p( Paris) = 0.75 ± 0.125",
    );
    assert.match(html, /the mean over 10 noise draws/);
  });

  it("centres each map's colours on the corrupted value: white there, blue below it", () => {
    const t = trace("block_output", { row: 1, col: 3 });
    const values = Float32Array.from(t.grid.values, (v, i) => (i === 0 ? 0 : v));
    const html = tv.traceReport({ ...t, grid: { ...t.grid, values } });
    const found = cells(html);
    // 0 is 0.03125 below the centre, 0.03125 / 0.71875 = 1/23 of the way to blue #2166ac:
    // 255 − 222/23 = 245.3 → f5, 255 − 153/23 = 248.3 → f8, 255 − 83/23 = 251.4 → fb.
    assert.equal(found[0].fill, "#f5f8fb");
    assert.equal(found.find((c) => /= 0\.75$/.test(c.title))?.fill, "#3f007d");
    // The top tick is the maximum; the centre's tick wins over the minimum's, too close to share the bar.
    assert.deepEqual(ticks(html), ["0.75", "0.03125"]);
  });

  it("puts ROME's three panels on one scale when asked, so a weaker peak is paler", () => {
    const panels = [drawn(0.75), { ...drawn(0.4), component: "mlp_output" as const }];
    const own = tv.traceReport(panels);
    const shared = tv.traceReport(panels, { sharedScale: true });
    const peakFill = (html: string, value: string) => cells(html).find((c) => c.title.includes(`= ${value}`))?.fill;
    assert.equal(peakFill(own, "0.4"), "#00441b"); // its own maximum: full green
    assert.notEqual(peakFill(shared, "0.4"), "#00441b");
    assert.deepEqual(ticks(shared), ["0.75", "0.03125", "0.75", "0.03125"]);
    assert.throws(() => tv.traceReport(panels, { sharedScale: "yes" as never }), /options\.sharedScale must be true/);
    assert.throws(() => tv.traceReport(panels, { shared: true } as never), /unknown option "shared"/);
  });

  it("notes a flat map", () => {
    const t = trace("block_output", { row: 0, col: 0 });
    const flat = { ...t, grid: { ...t.grid, values: new Float32Array(t.grid.values.length).fill(0.03125) } };
    assert.match(tv.traceReport(flat), /<p class="note flat">This map is flat: every cell is 0\.03125 \(corrupted: /);
    assert.doesNotMatch(tv.traceReport(t), /class="note flat"/);
  });

  it("draws any labelled grid, e.g. layers × heads, with gridReport", () => {
    const html = tv.gridReport({
      title: "Heads",
      tokens: ["a", " b"],
      markedPositions: [1],
      fields: [["Model", "m<1>"]],
      panels: [
        {
          heading: "Per-head effect",
          valueLabel: "Δ logit",
          grid: {
            rowTitle: "layer",
            colTitle: "head",
            rowLabels: ["0", "1"],
            colLabels: ["0", "1", "2"],
            values: [0.5, -0.25, 0, 1, 0, 0],
          },
        },
      ],
    });
    assertNoBareAmpersand(html);
    assert.match(html, /<dt>Model<\/dt><dd>m&lt;1&gt;<\/dd>/);
    assert.match(html, /<span class="token marked" title="position 1, marked"> b\*<\/span>/);
    const found = cells(html);
    assert.equal(found.length, 6);
    assert.equal(found[3].title, "layer 1, head 0: Δ logit = 1");
    assert.match(html, /aria-label="Heat map of Δ logit over 2 layers \(0–1\) and 3 heads/);
    assert.match(html, /<th>#<\/th><th>layer<\/th><th>head<\/th><th>Δ logit<\/th><\/tr>/);
    assert.match(html, /<caption>Top 6 cells by \|Δ logit\|<\/caption>/);
    assert.deepEqual(ticks(html), ["1", "0", "-1"]);
    const panel = { grid: { rowTitle: "layer", colTitle: "head", rowLabels: ["0"], colLabels: ["0"], values: [1, 2] } };
    assert.throws(
      () => tv.gridReport({ title: "x", panels: [panel] }),
      /panels\[0\]\.grid\.values must hold rows × cols = 1/,
    );
    assert.throws(() => tv.gridReport({ title: "x", panels: [] }), /gridReport: panels must be a non-empty list/);
    assert.throws(
      () => tv.gridReport({ title: "x", panels: [{ ...panel, heading: "h", colour: "red" } as never] }),
      /gridReport: panels\[0\]: unknown option "colour"/,
    );
  });
});
