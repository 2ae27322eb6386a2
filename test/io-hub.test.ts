/**
 * Hub downloads against a local HTTP server that answers the part of the Hub API that
 * `@huggingface/hub` calls on tsvene's download path:
 *   GET /api/models/{id}/revision/{rev}   model info, for the commit the revision points at
 *   GET /api/models/{id}/tree/{commit}    the file listing (path, size)
 *   GET /{id}/resolve/{commit}/{file}     the file, first probed with `Range: bytes=0-0`
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as tv from "../src/index.js";

const scratch = await mkdtemp(join(tmpdir(), "tsvene-io-hub-"));
after(() => rm(scratch, { recursive: true, force: true }));

interface Repo {
  commit: string;
  files: Map<string, Buffer>;
}

/** A fake Hub serving `repos`; every request path is recorded in `requests`. */
class FakeHub {
  readonly requests: string[] = [];
  private server: Server | undefined;

  constructor(private readonly repos: Map<string, Repo>) {}

  async start(): Promise<string> {
    this.server = createServer((req, res) => this.answer(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server!.closeAllConnections();
    await new Promise((resolve) => this.server!.close(resolve));
  }

  private answer(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url!, "http://hub");
    this.requests.push(`${req.method} ${url.pathname}`);
    const api = url.pathname.match(/^\/api\/models\/([^/]+\/[^/]+)\/(revision|tree)\/([^/]+)$/);
    const resolve = url.pathname.match(/^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/);
    const repo = this.repos.get((api ?? resolve)?.[1] ?? "");
    if (repo === undefined) return notFound(res, "RepoNotFound", "Repository not found");
    const revision = decodeURIComponent((api?.[3] ?? resolve?.[2])!);
    if (revision !== "main" && revision !== repo.commit) return notFound(res, "RevisionNotFound", `Invalid rev id: ${revision}`);

    if (api?.[2] === "revision") {
      return json(res, { _id: "0", id: api[1], sha: repo.commit, private: false, gated: false, downloads: 0, likes: 0, lastModified: "2024-01-01T00:00:00.000Z" });
    }
    if (api?.[2] === "tree") {
      return json(res, [...repo.files].map(([path, bytes]) => ({ type: "file", path, size: bytes.length, oid: oidOf(bytes) })));
    }
    const bytes = repo.files.get(decodeURIComponent(resolve![3]));
    if (bytes === undefined) return notFound(res, "EntryNotFound", "Entry not found");
    const headers = { ETag: `"${oidOf(bytes)}"`, "Content-Type": "application/octet-stream" };
    if (req.headers.range === "bytes=0-0") {
      res.writeHead(206, { ...headers, "Content-Range": `bytes 0-0/${bytes.length}`, "Content-Length": "1" });
      res.end(bytes.subarray(0, 1));
    } else {
      res.writeHead(200, { ...headers, "Content-Length": String(bytes.length) });
      res.end(bytes);
    }
  }
}

function json(res: ServerResponse, body: unknown): void {
  res.writeHead(200, { "Content-Type": "application/json" });
  res.end(JSON.stringify(body));
}

function notFound(res: ServerResponse, code: string, message: string): void {
  res.writeHead(404, { "Content-Type": "application/json", "X-Error-Code": code });
  res.end(JSON.stringify({ error: message }));
}

function oidOf(bytes: Buffer): string {
  return createHash("sha1").update(bytes).digest("hex");
}

async function folderFiles(folder: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const name of await readdir(folder)) files.set(name, await readFile(join(folder, name)));
  return files;
}

/** A port nothing listens on: one the system just handed out and that was closed again. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const TINY = "tsvene-test/tiny-llama";
const BIN_ONLY = "tsvene-test/bin-only";
const COMMIT = "0123456789abcdef0123456789abcdef01234567";

describe("Hub downloads", () => {
  let hub: FakeHub;
  let endpoint: string;
  let original: tv.Checkpoint;

  before(async () => {
    // A sharded tiny model, plus files tsvene must not fetch.
    original = await tv.loadCheckpoint(new URL("../../../shared/fixtures/pyvene-0.1.8/llama_tiny_gqa", import.meta.url).pathname);
    const modelFolder = join(scratch, "served-model");
    await tv.saveCheckpoint(modelFolder, original.tensors, { config: original.config, generationConfig: original.generationConfig, maxShardBytes: 60_000 });
    const files = await folderFiles(modelFolder);
    files.set("tokenizer_config.json", Buffer.from(JSON.stringify({ padding_side: "left" })));
    files.set("README.md", Buffer.from("# tiny"));
    files.set("pytorch_model.bin", Buffer.alloc(4096));
    files.set("onnx.safetensors", Buffer.alloc(16));
    hub = new FakeHub(new Map([
      [TINY, { commit: COMMIT, files }],
      [BIN_ONLY, { commit: COMMIT.replace(/0/g, "f"), files: new Map([["config.json", Buffer.from("{}")], ["pytorch_model.bin", Buffer.alloc(8)]]) }],
    ]));
    endpoint = await hub.start();
  });
  after(() => hub.stop());

  it("downloads the needed files into the cache and loads them", async () => {
    const cacheDir = join(scratch, "cache-download");
    const folder = await tv.resolveModel(TINY, { endpoint, cacheDir });
    assert.equal(folder, join(cacheDir, "models--tsvene-test--tiny-llama", "snapshots", COMMIT));
    assert.equal((await readFile(join(cacheDir, "models--tsvene-test--tiny-llama", "refs", "main"), "utf8")), COMMIT);
    assert.deepEqual((await readdir(folder)).sort(), [
      "config.json", "generation_config.json",
      "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors",
      "model.safetensors.index.json", "tokenizer_config.json",
    ]);
    const loaded = await tv.loadCheckpoint(folder);
    assert.deepEqual(loaded.config, original.config);
    assert.equal(loaded.tensors.size, original.tensors.size);
    for (const [name, t] of original.tensors) assert.deepEqual(loaded.tensors.get(name)!.data, t.data, name);

    const fetched = hub.requests.filter((r) => r.includes("/resolve/"));
    assert.ok(fetched.every((r) => !/README|pytorch_model|onnx/.test(r)), `fetched more than needed: ${fetched.join(", ")}`);
    assert.ok(hub.requests.includes(`GET /api/models/${TINY}/revision/main`));
    assert.ok(hub.requests.includes(`GET /api/models/${TINY}/tree/${COMMIT}`));
  });

  it("does not fetch files again that the cache already holds", async () => {
    const cacheDir = join(scratch, "cache-again");
    await tv.resolveModel(TINY, { endpoint, cacheDir });
    hub.requests.length = 0;
    await tv.resolveModel(TINY, { endpoint, cacheDir });
    assert.deepEqual(hub.requests.filter((r) => r.includes("/resolve/")), []);
    hub.requests.length = 0;
    await tv.resolveModel(TINY, { endpoint, cacheDir, revision: COMMIT });
    assert.deepEqual(hub.requests, [], "a cached commit needs no request");
  });

  it("falls back to a complete cached copy when the Hub is unreachable or offline mode is on", async () => {
    const cacheDir = join(scratch, "cache-offline");
    const folder = await tv.resolveModel(TINY, { endpoint, cacheDir });
    const unreachable = `http://127.0.0.1:${await closedPort()}`;
    assert.equal(await tv.resolveModel(TINY, { endpoint: unreachable, cacheDir }), folder);
    assert.equal(await tv.resolveModel(TINY, { cacheDir, offline: true }), folder);
  });

  it("reads the endpoint from HF_ENDPOINT", async () => {
    const saved = process.env.HF_ENDPOINT;
    process.env.HF_ENDPOINT = endpoint;
    try {
      const cacheDir = join(scratch, "cache-env");
      assert.equal(await tv.resolveModel(TINY, { cacheDir }), join(cacheDir, "models--tsvene-test--tiny-llama", "snapshots", COMMIT));
    } finally {
      if (saved === undefined) delete process.env.HF_ENDPOINT;
      else process.env.HF_ENDPOINT = saved;
    }
  });

  it("says when the Hub cannot be reached and nothing is cached", async () => {
    const unreachable = `http://127.0.0.1:${await closedPort()}`;
    const error = await tv.resolveModel(TINY, { endpoint: unreachable, cacheDir: join(scratch, "cache-empty") }).catch((e: unknown) => e);
    assert.ok(error instanceof tv.HubError, String(error));
    assert.equal(error.code, "unreachable");
    assert.match(error.message, new RegExp(`model "${TINY}" \\(revision "main"\\): cannot reach the Hub at ${unreachable} \\(ECONNREFUSED\\)`));
    assert.match(error.message, /pass a local model folder/);

    const offline = await tv.resolveModel(TINY, { cacheDir: join(scratch, "cache-empty"), offline: true }).catch((e: unknown) => e);
    assert.ok(offline instanceof tv.HubError && offline.code === "unreachable" && /offline mode is on/.test(offline.message), String(offline));
  });

  it("says when a model or revision does not exist", async () => {
    const cacheDir = join(scratch, "cache-missing");
    const error = await tv.resolveModel("tsvene-test/no-such-model", { endpoint, cacheDir }).catch((e: unknown) => e);
    assert.ok(error instanceof tv.HubError, String(error));
    assert.equal(error.code, "not_found");
    assert.match(error.message, /model "tsvene-test\/no-such-model" \(revision "main"\) was not found on http:\/\/127\.0\.0\.1:\d+ \(HTTP 404: Repository not found/);
    assert.match(error.message, /private and gated models need an access token/);
    const revision = await tv.resolveModel(TINY, { endpoint, cacheDir, revision: "v9" }).catch((e: unknown) => e);
    assert.ok(revision instanceof tv.HubError && revision.code === "not_found" && /Invalid rev id: v9/.test(revision.message), String(revision));
  });

  it("says when a repo has no safetensors weights", async () => {
    const error = await tv.resolveModel(BIN_ONLY, { endpoint, cacheDir: join(scratch, "cache-bin") }).catch((e: unknown) => e);
    assert.ok(error instanceof tv.HubError, String(error));
    assert.equal(error.code, "no_safetensors");
    assert.match(error.message, /has no model\.safetensors or model\.safetensors\.index\.json; tsvene loads safetensors weights only \(the repo has pytorch_model\.bin\)/);
    assert.deepEqual(hub.requests.filter((r) => r.startsWith(`GET /${BIN_ONLY}/resolve/`)), [], "nothing is downloaded from a repo tsvene cannot load");
  });
});

describe("model references", () => {
  it("uses an existing local folder as it is, without any request", async () => {
    const fixture = new URL("../../../shared/fixtures/pyvene-0.1.8/gpt2_tiny", import.meta.url).pathname;
    assert.equal(await tv.resolveModel(fixture, { endpoint: "http://127.0.0.1:1" }), fixture);
  });

  it("rejects references that are neither a folder nor a Hub id", async () => {
    await assert.rejects(tv.resolveModel("./no/such/folder"), /model reference "\.\/no\/such\/folder": no such local folder, and not a Hub model id \(expected "owner\/name" or "name"\)/);
    await assert.rejects(tv.resolveModel("a/b/c"), /not a Hub model id/);
    const file = new URL("../../../shared/fixtures/pyvene-0.1.8/gpt2_tiny/config.json", import.meta.url).pathname;
    await assert.rejects(tv.resolveModel(file), /is a file; expected a model folder or a Hub model id/);
  });

  it("defaults the cache to ~/.cache/tsvene/hub, or $TSVENE_HOME/hub", () => {
    const saved = { home: process.env.TSVENE_HOME, xdg: process.env.XDG_CACHE_HOME };
    try {
      delete process.env.XDG_CACHE_HOME;
      process.env.TSVENE_HOME = "/data/tsvene";
      assert.equal(tv.defaultCacheDir(), "/data/tsvene/hub");
      delete process.env.TSVENE_HOME;
      assert.match(tv.defaultCacheDir(), /\/\.cache\/tsvene\/hub$/);
    } finally {
      for (const [key, value] of [["TSVENE_HOME", saved.home], ["XDG_CACHE_HOME", saved.xdg]] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });
});
