/**
 * A local stand-in for the Hugging Face Hub: a node:http server answering exactly the part of
 * the Hub API that the real `@huggingface/hub` client calls on tsvene's paths (read from the
 * client's source: lib/model-info, list-files, file-download-info, create-repo, commit).
 *
 * Downloads
 *   GET  /api/models/{id}/revision/{rev}        model info: the commit `rev` points at (sha)
 *   GET  /api/models/{id}/tree/{rev}            the file listing (type, path, size, oid, lfs)
 *   GET  /{id}/resolve/{rev}/{path}             the file; probed first with `Range: bytes=0-0`
 * Uploads (a token is required, `Authorization: Bearer <token>`, except for the LFS PUT)
 *   POST /api/repos/create                      a new repo; 409 when it exists
 *   POST /api/models/{id}/preupload/{branch}    per file "regular" (inline) or "lfs"
 *   POST /{id}.git/info/lfs/objects/batch       the LFS "basic" transfer: where to PUT each object
 *   PUT  /lfs-objects/{sha256}                  an LFS object (its sha256 and size are checked)
 *   POST /api/models/{id}/commit/{branch}       the commit, as NDJSON: header, file, lfsFile, deletedFile
 *
 * Like the Hub, files named *.safetensors (and binary ones) go through LFS: the listing gives them
 * `lfs: {oid: sha256, size}` and, as `oid`, the git blob id of their pointer file; other files
 * have the git blob id of their bytes as `oid`. Every commit gets a new 40-hex id. Every request
 * is recorded as "METHOD /path" in `requests`.
 *
 * `fault` makes the server misbehave the ways real networks do, for tests of the client's care.
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

interface Commit {
  oid: string;
  files: Map<string, Buffer>;
}

/** A misbehaviour: of every request, or of the download of one file (not its `Range: bytes=0-0` probe). */
export type Fault =
  | { kind: "stall" } // never answers
  | { kind: "html" } // a captive portal's login page, HTTP 200
  | { kind: "cut-json" } // the API's JSON answers end halfway
  | { kind: "commit"; sha: string } // model info gives this as the commit id
  | { kind: "stall-body" | "truncate" | "oversize" | "wrong-bytes"; file: string };

/** How each download fault sends the file's body, after the headers. */
const FILE_FAULTS = {
  // half of it, then silence
  "stall-body": (res: ServerResponse, bytes: Buffer) => res.write(bytes.subarray(0, bytes.length >> 1)),
  // half of it, then the connection closed
  truncate: (res: ServerResponse, bytes: Buffer) =>
    res.write(bytes.subarray(0, bytes.length >> 1), () => res.destroy()),
  // all of it and 1 MiB more
  oversize: (res: ServerResponse, bytes: Buffer) => res.end(Buffer.concat([bytes, Buffer.alloc(1 << 20)])),
  // as long as it, with its first byte flipped
  "wrong-bytes": (res: ServerResponse, bytes: Buffer) =>
    res.end(Buffer.from(bytes.map((b, i) => (i === 0 ? b ^ 0xff : b)))),
};

const PORTAL_PAGE =
  "<!DOCTYPE html>\n<html><head><title>Sign in to Hotel Wi-Fi</title></head>" +
  "<body>Please accept the terms.</body></html>";

export class FakeHub {
  readonly requests: string[] = [];
  /** Commits of each repo, oldest first. */
  private readonly repos = new Map<string, Commit[]>();
  private readonly lfsObjects = new Map<string, Buffer>();
  private server: Server | undefined;
  private commitCount = 0;
  /** How the server misbehaves, until set back to undefined. */
  fault: Fault | undefined;

  /** `token`: the access token uploads must carry. */
  constructor(private readonly token = "hf_fake_write_token") {}

  /** Adds a repo whose main branch holds `files` (one commit). */
  addRepo(id: string, files: Map<string, Buffer>): string {
    const commit = { oid: this.newCommitId(), files: new Map(files) };
    this.repos.set(id, [commit]);
    return commit.oid;
  }

  /** The files at the head of a repo's main branch. */
  files(id: string): Map<string, Buffer> | undefined {
    return this.repos.get(id)?.at(-1)?.files;
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      this.answer(req, res).catch((error: unknown) => {
        res.writeHead(500, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ error: String(error) }));
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server!.closeAllConnections();
    await new Promise((resolve) => this.server!.close(resolve));
  }

  private async answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url!, "http://hub");
    const path = url.pathname;
    this.requests.push(`${req.method} ${path}`);
    const fault = this.fault;
    if (fault?.kind === "stall") return; // the connection stays open until the client gives up or stop() closes it
    if (fault?.kind === "html") {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
      res.end(PORTAL_PAGE);
      return;
    }
    const body = await readBody(req);
    const origin = `http://${req.headers.host}`;
    let m: RegExpMatchArray | null;

    if (req.method === "GET" && (m = path.match(/^\/api\/models\/([^/]+\/[^/]+)\/(revision|tree)\/([^/]+)$/))) {
      const commit = this.commitAt(res, m[1], decodeURIComponent(m[3]));
      if (!commit) return;
      if (m[2] === "revision") {
        const sha = fault?.kind === "commit" ? fault.sha : commit.oid;
        const info = {
          _id: "0",
          id: m[1],
          sha,
          private: false,
          gated: false,
          downloads: 0,
          likes: 0,
          lastModified: "2024-01-01T00:00:00.000Z",
        };
        return json(res, 200, info, fault?.kind === "cut-json");
      }
      return json(
        res,
        200,
        [...commit.files].map(([p, bytes]) => treeEntry(p, bytes)),
        fault?.kind === "cut-json",
      );
    }
    if (req.method === "GET" && (m = path.match(/^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/))) {
      const commit = this.commitAt(res, m[1], decodeURIComponent(m[2]));
      if (!commit) return;
      const file = decodeURIComponent(m[3]);
      const bytes = commit.files.get(file);
      if (bytes === undefined) return error(res, 404, "EntryNotFound", "Entry not found");
      const headers = { ETag: `"${gitOid(bytes)}"`, "Content-Type": "application/octet-stream" };
      if (req.headers.range === "bytes=0-0") {
        res.writeHead(206, { ...headers, "Content-Range": `bytes 0-0/${bytes.length}`, "Content-Length": "1" });
        res.end(bytes.subarray(0, 1));
      } else if (fault !== undefined && "file" in fault && fault.file === file) {
        // The oversized body goes without a length, as a chunked answer that just goes on.
        res.writeHead(
          200,
          fault.kind === "oversize" ? headers : { ...headers, "Content-Length": String(bytes.length) },
        );
        FILE_FAULTS[fault.kind](res, bytes);
      } else {
        res.writeHead(200, { ...headers, "Content-Length": String(bytes.length) });
        res.end(bytes);
      }
      return;
    }

    // The batch answer hands out the upload address itself (a presigned URL on the Hub), so it takes no token.
    if (req.method === "PUT" && (m = path.match(/^\/lfs-objects\/([0-9a-f]{64})$/))) {
      if (sha256(body) !== m[1] || String(body.length) !== url.searchParams.get("size"))
        return error(res, 400, "BadRequest", "object does not match its oid and size");
      this.lfsObjects.set(m[1], body);
      res.writeHead(200);
      res.end();
      return;
    }
    if (req.headers.authorization !== `Bearer ${this.token}`)
      return error(res, 401, "Unauthorized", "Invalid credentials in Authorization header");

    if (req.method === "POST" && path === "/api/repos/create") {
      const { name, organization, type } = JSON.parse(body.toString()) as {
        name: string;
        organization: string;
        type?: string;
      };
      if (type !== undefined && type !== "model")
        return error(res, 400, "BadRequest", `this fake Hub has model repos only, not ${type}`);
      const id = `${organization}/${name}`;
      if (this.repos.has(id))
        return json(res, 409, { error: "You already created this model repo", url: `${origin}/${id}` });
      this.addRepo(
        id,
        new Map([[".gitattributes", Buffer.from("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")]]),
      );
      return json(res, 200, { url: `${origin}/${id}`, name: id });
    }
    if (req.method === "POST" && (m = path.match(/^\/api\/models\/([^/]+\/[^/]+)\/preupload\/([^/]+)$/))) {
      if (!this.branchOf(res, m[1], m[2])) return;
      const { files } = JSON.parse(body.toString()) as { files: { path: string; size: number; sample: string }[] };
      return json(res, 200, {
        files: files.map((f) => ({
          path: f.path,
          uploadMode: isLfs(f.path, Buffer.from(f.sample, "base64")) ? "lfs" : "regular",
          shouldIgnore: false,
        })),
      });
    }
    if (req.method === "POST" && (m = path.match(/^\/([^/]+\/[^/]+)\.git\/info\/lfs\/objects\/batch$/))) {
      if (!this.repos.has(m[1])) return error(res, 404, "RepoNotFound", "Repository not found");
      const { operation, transfers, objects } = JSON.parse(body.toString()) as {
        operation: string;
        transfers: string[];
        objects: { oid: string; size: number }[];
      };
      if (operation !== "upload" || !transfers.includes("basic"))
        return error(res, 400, "BadRequest", "only basic uploads are served here");
      res.setHeader("Content-Type", "application/vnd.git-lfs+json");
      res.writeHead(200);
      res.end(
        JSON.stringify({
          transfer: "basic",
          objects: objects.map(({ oid, size }) =>
            this.lfsObjects.has(oid)
              ? { oid, size }
              : {
                  oid,
                  size,
                  authenticated: true,
                  actions: { upload: { href: `${origin}/lfs-objects/${oid}?size=${size}`, expires_in: 3600 } },
                },
          ),
        }),
      );
      return;
    }
    if (req.method === "POST" && (m = path.match(/^\/api\/models\/([^/]+\/[^/]+)\/commit\/([^/]+)$/))) {
      const commits = this.branchOf(res, m[1], m[2]);
      if (!commits) return;
      const files = new Map(commits.at(-1)!.files);
      const lines = body
        .toString()
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { key: string; value: Record<string, string> });
      if (lines[0]?.key !== "header" || typeof lines[0].value.summary !== "string")
        return error(res, 400, "BadRequest", "the commit must start with a header carrying a summary");
      for (const { key, value } of lines.slice(1)) {
        if (key === "file") files.set(value.path, Buffer.from(value.content, value.encoding as BufferEncoding));
        else if (key === "deletedFile") files.delete(value.path);
        else if (key === "lfsFile") {
          const object = this.lfsObjects.get(value.oid);
          if (object === undefined || String(object.length) !== String(value.size))
            return error(res, 400, "BadRequest", `LFS object ${value.oid} of ${value.path} was not uploaded`);
          files.set(value.path, object);
        } else return error(res, 400, "BadRequest", `unknown commit operation ${key}`);
      }
      const commit = { oid: this.newCommitId(), files };
      commits.push(commit);
      return json(res, 200, {
        success: true,
        commitOid: commit.oid,
        commitUrl: `${origin}/${m[1]}/commit/${commit.oid}`,
        hookOutput: "",
      });
    }
    return error(res, 404, "NotFound", `no such endpoint: ${req.method} ${path}`);
  }

  /** The commit `revision` ("main" or a commit id) names, or a 404 answered. */
  private commitAt(res: ServerResponse, id: string, revision: string): Commit | undefined {
    const commits = this.repos.get(id);
    if (commits === undefined) return void error(res, 404, "RepoNotFound", "Repository not found");
    const commit = revision === "main" ? commits.at(-1) : commits.find((c) => c.oid === revision);
    if (commit === undefined) return void error(res, 404, "RevisionNotFound", `Invalid rev id: ${revision}`);
    return commit;
  }

  /** The commits of a repo's branch (only main exists), or a 404 answered. */
  private branchOf(res: ServerResponse, id: string, branch: string): Commit[] | undefined {
    const commits = this.repos.get(id);
    if (commits === undefined) return void error(res, 404, "RepoNotFound", "Repository not found");
    if (decodeURIComponent(branch) !== "main")
      return void error(res, 404, "RevisionNotFound", `Invalid rev id: ${branch}`);
    return commits;
  }

  private newCommitId(): string {
    return createHash("sha1")
      .update(`commit ${++this.commitCount}`)
      .digest("hex");
  }
}

/** A file as the Hub's tree listing gives it. */
function treeEntry(path: string, bytes: Buffer): Record<string, unknown> {
  if (!isLfs(path, bytes)) return { type: "file", path, size: bytes.length, oid: gitOid(bytes) };
  const pointer = Buffer.from(
    `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256(bytes)}\nsize ${bytes.length}\n`,
  );
  return {
    type: "file",
    path,
    size: bytes.length,
    oid: gitOid(pointer),
    lfs: { oid: sha256(bytes), size: bytes.length, pointerSize: pointer.length },
  };
}

function isLfs(path: string, sample: Buffer): boolean {
  return path.endsWith(".safetensors") || sample.includes(0);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function json(res: ServerResponse, status: number, body: unknown, cut = false): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(cut ? text.slice(0, text.length >> 1) : text);
}

function error(res: ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { "Content-Type": "application/json", "X-Error-Code": code });
  res.end(JSON.stringify({ error: message }));
}

function sha256(bytes: Buffer): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Git's blob id, as the Hub lists it. */
function gitOid(bytes: Buffer): string {
  return createHash("sha1").update(`blob ${bytes.length}\0`).update(bytes).digest("hex");
}
