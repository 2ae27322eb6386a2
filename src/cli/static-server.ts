/**
 * A static file server for the page `npm run build:web` writes (dist/web): GET and HEAD only,
 * files inside its folder only, each with its MIME type (application/wasm for the kernels, so
 * browsers compile them while streaming), and the headers that make the page cross-origin
 * isolated (COOP + COEP), which shared memory for WebAssembly threads needs.
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { extname, join, resolve, sep } from "node:path";

const MIME_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".wasm": "application/wasm",
  ".safetensors": "application/octet-stream",
  ".md": "text/markdown; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
};

const ISOLATION_HEADERS = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
  "Cross-Origin-Resource-Policy": "same-origin",
  "X-Content-Type-Options": "nosniff",
  "Cache-Control": "no-cache",
};

/** A server (not yet listening) for the files under `folder`; a folder's URL serves its index.html. */
export function staticServer(folder: string): Server {
  const root = resolve(folder);
  return createServer((request, response) => {
    const answer = (status: number, text: string, headers: Record<string, string> = {}) => {
      response.writeHead(status, { ...ISOLATION_HEADERS, "Content-Type": "text/plain; charset=utf-8", ...headers });
      response.end(request.method === "HEAD" ? undefined : `${text}\n`);
    };
    if (request.method !== "GET" && request.method !== "HEAD") {
      answer(405, `${request.method} is not served (GET and HEAD only)`, { Allow: "GET, HEAD" });
      return;
    }
    let path: string;
    try {
      path = decodeURIComponent(new URL(request.url ?? "/", "http://localhost").pathname);
    } catch {
      answer(400, "the path is not valid percent-encoding");
      return;
    }
    const file = resolve(join(root, path.endsWith("/") ? `${path}index.html` : path));
    if (file !== root && !file.startsWith(root + sep)) {
      answer(404, "not found");
      return;
    }
    stat(file).then(
      (info) => {
        if (!info.isFile()) {
          answer(404, "not found");
          return;
        }
        const type = MIME_TYPES[extname(file).toLowerCase()] ?? "application/octet-stream";
        response.writeHead(200, { ...ISOLATION_HEADERS, "Content-Type": type, "Content-Length": String(info.size) });
        if (request.method === "HEAD") response.end();
        else createReadStream(file).pipe(response);
      },
      () => answer(404, "not found"),
    );
  });
}
