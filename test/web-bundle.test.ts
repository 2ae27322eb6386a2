/**
 * The browser bundle (scripts/build-web.ts): nothing of Node enters it (no node: import survives,
 * platform/node.ts and the CLI are not among its inputs, node: built-ins appear only as io/'s
 * throwing stubs), and it runs: imported here, it uses the portable platform and traces a model
 * loaded from File objects to the numbers the Node library gives on the same folder.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as tv from "../src/index.js";
import { buildWeb, type WebBuild } from "../scripts/build-web.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const DEFAULT_MODEL = join(ROOT, "models", "default");
const FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"];

describe("the browser bundle", () => {
  let dir: string;
  let built: WebBuild;
  let bundle: typeof tv;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "tsvene-bundle-"));
    built = await buildWeb(join(dir, "dist"));
    bundle = (await import(pathToFileURL(built.library.path).href)) as typeof tv;
  });

  after(() => rm(dir, { recursive: true, force: true }));

  it("has no import of node: and no Node-only input but io/'s stubs", async () => {
    const code = await readFile(built.library.path, "utf8");
    assert.doesNotMatch(code, /(?:from|import|require)\s*\(?\s*["']node:/);
    assert.ok(built.libraryInputs.includes("src/platform/default-browser.ts"));
    for (const input of built.libraryInputs) {
      assert.ok(
        input.startsWith("node-builtin-stub:node:") || input.startsWith("src/") || input.startsWith("node_modules/"),
        input,
      );
      assert.ok(!["src/platform/node.ts", "src/platform/default.ts"].includes(input), input);
      assert.ok(!input.startsWith("src/cli/"), input);
    }
    assert.ok(built.library.bytes > 0);
  });

  it("runs on the portable platform and traces a model read from File objects as the Node build does", async () => {
    assert.equal(bundle.platform().name, "portable");
    const files = await Promise.all(
      FILES.map(async (name) => new File([await readFile(join(DEFAULT_MODEL, name))], name)),
    );
    const inBrowser = await bundle.loadPretrainedFrom(bundle.filesFromBlobs(files));
    const inNode = await tv.loadPretrained(DEFAULT_MODEL);
    const ids = inNode.tokenizer!.encode("Ka Bo lives in the city of");
    assert.deepEqual(inBrowser.tokenizer!.encode("Ka Bo lives in the city of"), ids);
    const options = { tokens: ids.map(String), corruptedPositions: [0, 1], seed: 2, samples: 2 };
    const got = bundle.causalTrace(inBrowser.model, { inputIds: bundle.intTensor([ids]), ...options });
    const want = tv.causalTrace(inNode.model, { inputIds: tv.intTensor([ids]), ...options });
    assert.equal(got.target, want.target);
    want.grid.values.forEach((v, i) => assert.ok(Math.abs(got.grid.values[i] - v) <= 1e-5, `cell ${i}`));
  });

  it("refuses disk access with an error that names the browser's way to load models", async () => {
    await assert.rejects(bundle.loadCheckpoint("models/default"), /browser build .*loadPretrainedFrom\(filesFromBlobs/);
  });
});
