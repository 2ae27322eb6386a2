/**
 * Model files read without a file system (io/sources.ts) and loadPretrainedFrom: dropped File
 * objects, a base URL and a Hub repo's resolve URLs (through a fetch that serves a folder), each
 * giving the model loadPretrained gives on the folder itself; and the errors for what is missing.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as tv from "../src/index.js";

const DEFAULT_MODEL = fileURLToPath(new URL("../../models/default/", import.meta.url));
const FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"];

async function blobs(names = FILES): Promise<Record<string, Blob>> {
  const entries = await Promise.all(names.map(async (n) => [n, new Blob([await readFile(join(DEFAULT_MODEL, n))])]));
  return Object.fromEntries(entries);
}

/** A fetch serving the default model's folder under any URL prefix, recording the URLs asked for. */
function folderFetch(asked: string[]): typeof fetch {
  return (async (input: string | URL | Request) => {
    const url = String(input);
    asked.push(url);
    const name = url.slice(url.lastIndexOf("/") + 1);
    const bytes = await readFile(join(DEFAULT_MODEL, name)).catch(() => undefined);
    return bytes === undefined ? new Response("Entry not found", { status: 404 }) : new Response(bytes);
  }) as typeof fetch;
}

async function lastLogits(pretrained: tv.Pretrained): Promise<Float32Array> {
  const ids = pretrained.tokenizer!.encode("Ka Bo lives in the city of");
  return pretrained.model.run({ inputIds: tv.intTensor([ids]) }).logits.data;
}

describe("loadPretrainedFrom", () => {
  it("reads File objects, a base URL and a Hub repo to the model loadPretrained reads from the folder", async () => {
    const want = await lastLogits(await tv.loadPretrained(DEFAULT_MODEL));
    const asked: string[] = [];
    const sources = [
      tv.filesFromBlobs(await blobs()),
      tv.filesFromUrl("https://models.example/default", { fetch: folderFetch(asked) }),
      tv.filesFromHub("someone/default", { revision: "v1", fetch: folderFetch(asked) }),
    ];
    for (const files of sources) assert.deepEqual(await lastLogits(await tv.loadPretrainedFrom(files)), want);
    assert.ok(asked.includes("https://models.example/default/config.json"));
    assert.ok(asked.includes("https://huggingface.co/someone/default/resolve/v1/model.safetensors"));
  });

  it("escapes each part of a file name and the revision in the URLs it fetches", async () => {
    const asked: string[] = [];
    const served = (async (input: string | URL | Request) => {
      asked.push(String(input));
      return new Response("bytes");
    }) as typeof fetch;
    const hub = tv.filesFromHub("someone/model", { revision: "refs/pr/1", fetch: served });
    await hub.read("intkey_x#0.bin");
    await hub.read("sub dir/50%?.json");
    await tv.filesFromUrl("https://models.example/m/", { fetch: served }).read("a#b.bin");
    assert.deepEqual(asked, [
      "https://huggingface.co/someone/model/resolve/refs%2Fpr%2F1/intkey_x%230.bin",
      "https://huggingface.co/someone/model/resolve/refs%2Fpr%2F1/sub%20dir/50%25%3F.json",
      "https://models.example/m/a%23b.bin",
    ]);
  });

  it("names the missing config, the missing weights and a missing shard", async () => {
    const noConfig = tv.filesFromBlobs(await blobs(FILES.slice(1)));
    await assert.rejects(tv.loadPretrainedFrom(noConfig), /the 3 files given: no config\.json/);
    const noWeights = tv.filesFromBlobs(await blobs(["config.json"]));
    await assert.rejects(tv.loadPretrainedFrom(noWeights), /no model\.safetensors or model\.safetensors\.index\.json/);
    const index = JSON.stringify({ weight_map: { "transformer.wte.weight": "model-00001-of-00002.safetensors" } });
    const shardless = tv.filesFromBlobs({
      ...(await blobs(["config.json"])),
      "model.safetensors.index.json": new Blob([index]),
    });
    await assert.rejects(
      tv.loadPretrainedFrom(shardless),
      /names shard model-00001-of-00002\.safetensors, which is missing/,
    );
  });

  it("refuses two files of one name, a bad Hub id and unknown options", async () => {
    const config = new File(["{}"], "config.json");
    assert.throws(() => tv.filesFromBlobs([config, config]), /two files are named "config\.json"/);
    assert.throws(() => tv.filesFromHub("../etc"), /not a Hub model id/);
    assert.throws(() => tv.filesFromUrl("https://x/", { fetcher: fetch } as never), /fetcher/);
    assert.throws(() => tv.filesFromUrl("models/default"), /not an absolute URL/);
  });

  it("reports a network failure as unreachable, and an HTTP error with its status", async () => {
    const offline = (() => Promise.reject(new TypeError("fetch failed"))) as typeof fetch;
    await assert.rejects(tv.filesFromHub("gpt2", { fetch: offline }).read("config.json"), (error: Error) => {
      assert.ok(error instanceof tv.HubError && error.code === "unreachable");
      assert.match(error.message, /cannot fetch https:\/\/huggingface\.co\/gpt2\/resolve\/main\/config\.json/);
      return true;
    });
    const denied = (async () => new Response("", { status: 401, statusText: "Unauthorized" })) as typeof fetch;
    await assert.rejects(tv.filesFromUrl("https://x/m", { fetch: denied }).read("config.json"), /HTTP 401/);
  });
});
