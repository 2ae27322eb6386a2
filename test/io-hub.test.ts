/**
 * Hub downloads against a local HTTP server that answers the part of the Hub API that
 * `@huggingface/hub` calls on tsvene's download path:
 *   GET /api/models/{id}/revision/{rev}   model info, for the commit the revision points at
 *   GET /api/models/{id}/tree/{commit}    the file listing (path, size, git oid, LFS sha256)
 *   GET /{id}/resolve/{commit}/{file}     the file, first probed with `Range: bytes=0-0`
 * and that misbehaves on demand (`FakeHub.fault`): stalls, cut or oversized bodies, altered bytes,
 * an HTML page or cut JSON where JSON belongs.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as tv from "../src/index.js";
import { OptionError } from "../src/options/strict.js";
import { FakeHub, type Fault } from "./support/hub-server.js";

const scratch = await mkdtemp(join(tmpdir(), "tsvene-io-hub-"));
after(() => rm(scratch, { recursive: true, force: true }));

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

/** The *.partial files anywhere under `folder`. */
async function partialFiles(folder: string): Promise<string[]> {
  return (await readdir(folder, { recursive: true }).catch(() => [])).filter((name) => name.endsWith(".partial"));
}

const TINY = "tsvene-test/tiny-llama";
const SHARD = "model-00002-of-00003.safetensors";
const BIN_ONLY = "tsvene-test/bin-only";
/** Short, so that tests of stalls take little time. */
const timeoutMs = 200;

describe("Hub downloads", () => {
  let hub: FakeHub;
  let endpoint: string;
  let original: tv.Checkpoint;
  let served: Map<string, Buffer>;
  let COMMIT: string;

  /** The result or error of `run` while the Hub misbehaves as `fault` says. */
  async function withFault(fault: Fault, run: () => Promise<unknown>): Promise<unknown> {
    hub.fault = fault;
    try {
      return await run().catch((e: unknown) => e);
    } finally {
      hub.fault = undefined;
    }
  }

  before(async () => {
    // A sharded tiny model, plus files tsvene must not fetch.
    original = await tv.loadCheckpoint(
      new URL("../../../shared/fixtures/pyvene-0.1.8/llama_tiny_gqa", import.meta.url).pathname,
    );
    const modelFolder = join(scratch, "served-model");
    await tv.saveCheckpoint(modelFolder, original.tensors, {
      config: original.config,
      generationConfig: original.generationConfig,
      maxShardBytes: 60_000,
    });
    const files = await folderFiles(modelFolder);
    files.set("tokenizer_config.json", Buffer.from(JSON.stringify({ padding_side: "left" })));
    files.set("README.md", Buffer.from("# tiny"));
    files.set("pytorch_model.bin", Buffer.alloc(4096));
    files.set("onnx.safetensors", Buffer.alloc(16));
    hub = new FakeHub();
    served = files;
    COMMIT = hub.addRepo(TINY, files);
    hub.addRepo(
      BIN_ONLY,
      new Map([
        ["config.json", Buffer.from("{}")],
        ["pytorch_model.bin", Buffer.alloc(8)],
      ]),
    );
    endpoint = await hub.start();
  });
  after(() => hub.stop());

  it("downloads the needed files into the cache and loads them", async () => {
    const cacheDir = join(scratch, "cache-download");
    const folder = await tv.resolveModel(TINY, { endpoint, cacheDir });
    assert.equal(folder, join(cacheDir, "models--tsvene-test--tiny-llama", "snapshots", COMMIT));
    assert.equal(await readFile(join(cacheDir, "models--tsvene-test--tiny-llama", "refs", "main"), "utf8"), COMMIT);
    assert.deepEqual((await readdir(folder)).sort(), [
      "config.json",
      "generation_config.json",
      "model-00001-of-00003.safetensors",
      "model-00002-of-00003.safetensors",
      "model-00003-of-00003.safetensors",
      "model.safetensors.index.json",
      "tokenizer_config.json",
    ]);
    const loaded = await tv.loadCheckpoint(folder);
    assert.deepEqual(loaded.config, original.config);
    assert.equal(loaded.tensors.size, original.tensors.size);
    for (const [name, t] of original.tensors) assert.deepEqual(loaded.tensors.get(name)!.data, t.data, name);

    const fetched = hub.requests.filter((r) => r.includes("/resolve/"));
    assert.ok(
      fetched.every((r) => !/README|pytorch_model|onnx/.test(r)),
      `fetched more than needed: ${fetched.join(", ")}`,
    );
    assert.ok(hub.requests.includes(`GET /api/models/${TINY}/revision/main`));
    assert.ok(hub.requests.includes(`GET /api/models/${TINY}/tree/${COMMIT}`));
  });

  it("does not fetch files again that the cache already holds", async () => {
    const cacheDir = join(scratch, "cache-again");
    await tv.resolveModel(TINY, { endpoint, cacheDir });
    hub.requests.length = 0;
    await tv.resolveModel(TINY, { endpoint, cacheDir });
    assert.deepEqual(
      hub.requests.filter((r) => r.includes("/resolve/")),
      [],
    );
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
      assert.equal(
        await tv.resolveModel(TINY, { cacheDir }),
        join(cacheDir, "models--tsvene-test--tiny-llama", "snapshots", COMMIT),
      );
    } finally {
      if (saved === undefined) delete process.env.HF_ENDPOINT;
      else process.env.HF_ENDPOINT = saved;
    }
  });

  it("says when the Hub cannot be reached and nothing is cached", async () => {
    const unreachable = `http://127.0.0.1:${await closedPort()}`;
    const error = await tv
      .resolveModel(TINY, { endpoint: unreachable, cacheDir: join(scratch, "cache-empty") })
      .catch((e: unknown) => e);
    assert.ok(error instanceof tv.HubError, String(error));
    assert.equal(error.code, "unreachable");
    assert.match(
      error.message,
      new RegExp(`model "${TINY}" \\(revision "main"\\): cannot reach the Hub at ${unreachable} \\(ECONNREFUSED\\)`),
    );
    assert.match(error.message, /pass a local model folder/);

    const offline = await tv
      .resolveModel(TINY, { cacheDir: join(scratch, "cache-empty"), offline: true })
      .catch((e: unknown) => e);
    assert.ok(
      offline instanceof tv.HubError && offline.code === "unreachable" && /offline mode is on/.test(offline.message),
      String(offline),
    );
  });

  it("says when a model or revision does not exist", async () => {
    const cacheDir = join(scratch, "cache-missing");
    const error = await tv.resolveModel("tsvene-test/no-such-model", { endpoint, cacheDir }).catch((e: unknown) => e);
    assert.ok(error instanceof tv.HubError, String(error));
    assert.equal(error.code, "not_found");
    assert.match(
      error.message,
      new RegExp(
        'model "tsvene-test/no-such-model" \\(revision "main"\\) was not found on http://127\\.0\\.0\\.1:\\d+ ' +
          "\\(HTTP 404: Repository not found",
      ),
    );
    assert.match(error.message, /private and gated models need an access token/);
    const revision = await tv.resolveModel(TINY, { endpoint, cacheDir, revision: "v9" }).catch((e: unknown) => e);
    assert.ok(
      revision instanceof tv.HubError && revision.code === "not_found" && /Invalid rev id: v9/.test(revision.message),
      String(revision),
    );
  });

  it("says when a repo has no safetensors weights", async () => {
    const error = await tv
      .resolveModel(BIN_ONLY, { endpoint, cacheDir: join(scratch, "cache-bin") })
      .catch((e: unknown) => e);
    assert.ok(error instanceof tv.HubError, String(error));
    assert.equal(error.code, "no_safetensors");
    assert.match(
      error.message,
      new RegExp(
        "has no model\\.safetensors or model\\.safetensors\\.index\\.json; tsvene loads safetensors weights only " +
          "\\(the repo has pytorch_model\\.bin\\)",
      ),
    );
    assert.deepEqual(
      hub.requests.filter((r) => r.startsWith(`GET /${BIN_ONLY}/resolve/`)),
      [],
      "nothing is downloaded from a repo tsvene cannot load",
    );
  });

  it("refuses a revision that is not a git ref name or commit id, before any request or file", async () => {
    const cacheDir = join(scratch, "cache-revision");
    hub.requests.length = 0;
    for (const revision of ["../../x", "/etc", "a\\b", "", "main\n", "v1..v2", "refs/heads/", "x.lock", 42]) {
      const error = await tv
        .resolveModel(TINY, { endpoint, cacheDir, revision: revision as string })
        .catch((e: unknown) => e);
      assert.ok(
        error instanceof tv.HubError && error.code === "bad_revision",
        `${JSON.stringify(revision)}: ${String(error)}`,
      );
      assert.match(
        error.message,
        new RegExp(
          '^option revision: .*; expected a git ref name such as "main", "v1\\.0" or "refs/pr/1", ' +
            "or a commit id of 40 hex digits$",
        ),
      );
    }
    await assert.rejects(
      tv.resolveModel(TINY, { endpoint, cacheDir, revision: "../../x" }),
      /option revision: "\.\.\/\.\.\/x" is not a branch, tag or commit: it contains "\.\."/,
    );
    assert.deepEqual(hub.requests, []);
    assert.deepEqual(await readdir(cacheDir).catch(() => "absent"), "absent");
    // A ref name with slashes is fine (this one is just not on the fake Hub).
    const pr = await tv.resolveModel(TINY, { endpoint, cacheDir, revision: "refs/pr/1" }).catch((e: unknown) => e);
    assert.ok(pr instanceof tv.HubError && pr.code === "not_found", String(pr));
  });

  it("refuses a commit id from the Hub that is not 40 hex digits", async () => {
    const error = await withFault({ kind: "commit", sha: "../../../escaped" }, () =>
      tv.resolveModel(TINY, { endpoint, cacheDir: join(scratch, "cache-sha") }),
    );
    assert.ok(error instanceof tv.HubError && error.code === "bad_response", String(error));
    assert.match(error.message, /answered with the commit id "\.\.\/\.\.\/\.\.\/escaped"; expected 40 hex digits/);
  });

  it("gives up on a stalled Hub after timeoutMs, naming the URL, and then uses a complete cached copy", async () => {
    const cacheDir = join(scratch, "cache-stall");
    const started = Date.now();
    const error = await withFault({ kind: "stall" }, () => tv.resolveModel(TINY, { endpoint, cacheDir, timeoutMs }));
    assert.ok(error instanceof tv.HubError && error.code === "timeout", String(error));
    assert.match(
      error.message,
      new RegExp(
        `^model "${TINY}" \\(revision "main"\\): ` +
          `no bytes from ${endpoint}/api/models/${TINY}/revision/main for 200 ms \\(option timeoutMs\\)`,
      ),
    );
    assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);

    const folder = await tv.resolveModel(TINY, { endpoint, cacheDir });
    assert.equal(
      await withFault({ kind: "stall" }, () => tv.resolveModel(TINY, { endpoint, cacheDir, timeoutMs })),
      folder,
    );
  });

  it("gives up on a body that stops arriving, leaving no partial file", async () => {
    const cacheDir = join(scratch, "cache-stall-body");
    const error = await withFault({ kind: "stall-body", file: SHARD }, () =>
      tv.resolveModel(TINY, { endpoint, cacheDir, timeoutMs }),
    );
    assert.ok(error instanceof tv.HubError && error.code === "timeout", String(error));
    assert.match(error.message, new RegExp(`no bytes from ${endpoint}/${TINY}/resolve/${COMMIT}/${SHARD} for 200 ms`));
    assert.deepEqual(await partialFiles(cacheDir), []);
  });

  it("reports a body cut short as a truncated download, with the bytes received", async () => {
    const cacheDir = join(scratch, "cache-truncated");
    const error = await withFault({ kind: "truncate", file: SHARD }, () =>
      tv.resolveModel(TINY, { endpoint, cacheDir }),
    );
    assert.ok(error instanceof tv.HubError && error.code === "truncated", String(error));
    const size = served.get(SHARD)!.length;
    // What arrived before the connection broke but was not read yet is lost with it, so "got" is at most the half sent.
    const got = new RegExp(
      `the download of ${SHARD} from ${endpoint}/\\S+ is truncated: ` +
        `got (\\d+) of ${size} bytes \\(the connection broke`,
    ).exec(error.message);
    assert.ok(got !== null && Number(got[1]) <= size >> 1, error.message);
    assert.deepEqual(await partialFiles(cacheDir), []);
  });

  it("stops reading a body longer than the listed size", async () => {
    const cacheDir = join(scratch, "cache-oversize");
    const error = await withFault({ kind: "oversize", file: SHARD }, () =>
      tv.resolveModel(TINY, { endpoint, cacheDir }),
    );
    assert.ok(error instanceof tv.HubError && error.code === "integrity", String(error));
    assert.match(
      error.message,
      new RegExp(
        `sent more than the ${served.get(SHARD)!.length} bytes the Hub lists for ${SHARD}; stopped reading there`,
      ),
    );
    assert.deepEqual(await partialFiles(cacheDir), []);
  });

  it(`refuses a downloaded file whose hash is not the listed one (sha256 for LFS files, \
else git's blob sha1)`, async () => {
    const cacheDir = join(scratch, "cache-altered");
    const shard = await withFault({ kind: "wrong-bytes", file: SHARD }, () =>
      tv.resolveModel(TINY, { endpoint, cacheDir }),
    );
    assert.ok(shard instanceof tv.HubError && shard.code === "integrity", String(shard));
    const sha256 = createHash("sha256").update(served.get(SHARD)!).digest("hex");
    assert.match(
      shard.message,
      new RegExp(
        `${SHARD} downloaded from \\S+ is not the file the Hub lists: ` +
          `its sha256 is [0-9a-f]{64}, expected ${sha256}\\.`,
      ),
    );
    assert.deepEqual(
      await readdir(join(cacheDir, "models--tsvene-test--tiny-llama", "snapshots", COMMIT)).then((names) =>
        names.includes(SHARD),
      ),
      false,
    );

    const config = await withFault({ kind: "wrong-bytes", file: "config.json" }, () =>
      tv.resolveModel(TINY, { endpoint, cacheDir: join(scratch, "cache-altered-config") }),
    );
    assert.ok(config instanceof tv.HubError && config.code === "integrity", String(config));
    const blob = served.get("config.json")!;
    const gitSha1 = createHash("sha1").update(`blob ${blob.length}\0`).update(blob).digest("hex");
    assert.match(
      config.message,
      new RegExp(
        "config\\.json downloaded from \\S+ is not the file the Hub lists: " +
          `its git-sha1 is [0-9a-f]{40}, expected ${gitSha1}\\.`,
      ),
    );
    assert.deepEqual(await partialFiles(cacheDir), []);
    assert.deepEqual(await partialFiles(join(scratch, "cache-altered-config")), []);
  });

  it("downloads again a cached file whose bytes are not the listed ones, and trusts unchanged ones", async () => {
    const cacheDir = join(scratch, "cache-damaged");
    const folder = await tv.resolveModel(TINY, { endpoint, cacheDir });
    await writeFile(join(folder, SHARD), Buffer.alloc(served.get(SHARD)!.length)); // the right size, the wrong bytes
    hub.requests.length = 0;
    assert.equal(await tv.resolveModel(TINY, { endpoint, cacheDir }), folder);
    assert.deepEqual(
      hub.requests.filter((r) => r.includes("/resolve/")),
      [`GET /${TINY}/resolve/${COMMIT}/${SHARD}`, `GET /${TINY}/resolve/${COMMIT}/${SHARD}`],
    );
    assert.deepEqual(await readFile(join(folder, SHARD)), served.get(SHARD));

    // Without the stamps of checked files, the files are hashed again, found good, and kept.
    await rm(join(cacheDir, "models--tsvene-test--tiny-llama", "verified"), { recursive: true });
    hub.requests.length = 0;
    assert.equal(await tv.resolveModel(TINY, { endpoint, cacheDir }), folder);
    assert.deepEqual(
      hub.requests.filter((r) => r.includes("/resolve/")),
      [],
    );
  });

  it("removes partial files that a killed process left behind, but not those of a live download", async () => {
    const cacheDir = join(scratch, "cache-orphans");
    const folder = await tv.resolveModel(TINY, { endpoint, cacheDir });
    const orphan = join(folder, `${SHARD}.0123456789ab.partial`);
    const live = join(folder, `${SHARD}.ba9876543210.partial`);
    await writeFile(orphan, "half a shard");
    await writeFile(live, "a shard on its way");
    const twoHoursAgo = new Date(Date.now() - 2 * 3600 * 1000);
    await utimes(orphan, twoHoursAgo, twoHoursAgo);
    await tv.resolveModel(TINY, { endpoint, cacheDir });
    assert.deepEqual(await partialFiles(folder), [`${SHARD}.ba9876543210.partial`]);
  });

  it("says what came back when an HTML page or broken JSON answers where JSON was expected", async () => {
    const error = await withFault({ kind: "html" }, () =>
      tv.resolveModel(TINY, { endpoint, cacheDir: join(scratch, "cache-html") }),
    );
    assert.ok(error instanceof tv.HubError && error.code === "bad_response", String(error));
    assert.match(
      error.message,
      new RegExp(
        `^model "${TINY}" \\(revision "main"\\): ${endpoint}/api/models/${TINY}/revision/main answered HTTP 200 ` +
          "with text/html; charset=utf-8 where JSON was expected, " +
          'starting "<!DOCTYPE html> <html><head><title>Sign in to Hotel Wi-Fi',
      ),
    );
    assert.match(error.message, /A proxy, firewall or captive portal may be answering instead of the Hub\.$/);

    const cut = await withFault({ kind: "cut-json" }, () =>
      tv.resolveModel(TINY, { endpoint, cacheDir: join(scratch, "cache-html") }),
    );
    assert.ok(cut instanceof tv.HubError && cut.code === "bad_response", String(cut));
    assert.match(
      cut.message,
      new RegExp(
        `^model "${TINY}" \\(revision "main"\\): the Hub at ${endpoint} gave an answer tsvene cannot read \\(.*JSON`,
      ),
    );
  });

  it("rejects unknown options with a suggestion, and accepts snake_case names", async () => {
    const cacheDir = join(scratch, "cache-options");
    await assert.rejects(
      tv.resolveModel(TINY, { endpoint, cacheDir, revison: "main" } as tv.ResolveModelOptions),
      (e: unknown) =>
        e instanceof OptionError &&
        new RegExp(
          '^loadPretrained options: unknown option "revison" \\(did you mean "revision"\\?\\); ' +
            "expected one of revision, cacheDir, endpoint, accessToken, offline, timeoutMs",
        ).test(e.message),
    );
    await assert.rejects(
      tv.loadPretrained(TINY, { endpoint, cacheDir, cachedir: cacheDir } as tv.ResolveModelOptions),
      /unknown option "cachedir" \(did you mean "cacheDir"\?\)/,
    );
    await assert.rejects(
      tv.resolveModel(TINY, { endpoint, cacheDir, timeoutMs: 0 }),
      /option timeoutMs: expected a number of milliseconds from 1 to 2147483647, got 0/,
    );
    const snake = { endpoint, cache_dir: cacheDir, timeout_ms: 5000 } as tv.ResolveModelOptions;
    assert.equal(
      await tv.resolveModel(TINY, snake),
      join(cacheDir, "models--tsvene-test--tiny-llama", "snapshots", COMMIT),
    );
  });
});

describe("model references", () => {
  it("uses an existing local folder as it is, without any request", async () => {
    const fixture = new URL("../../../shared/fixtures/pyvene-0.1.8/gpt2_tiny", import.meta.url).pathname;
    assert.equal(await tv.resolveModel(fixture, { endpoint: "http://127.0.0.1:1" }), fixture);
  });

  it("rejects references that are neither a folder nor a Hub id", async () => {
    await assert.rejects(
      tv.resolveModel("./no/such/folder"),
      new RegExp(
        'model reference "\\./no/such/folder": no such local folder, ' +
          'and not a Hub model id \\(expected "owner/name" or "name"\\)',
      ),
    );
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
      for (const [key, value] of [
        ["TSVENE_HOME", saved.home],
        ["XDG_CACHE_HOME", saved.xdg],
      ] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });
});
