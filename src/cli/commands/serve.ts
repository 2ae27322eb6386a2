/** `tsvene serve`: the browser page (`npm run build:web` writes it to dist/web), served on this machine. */
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { UsageError, type OptionTable } from "../args.js";
import type { Command } from "../context.js";
import { checkInputPath } from "../files.js";
import { staticServer } from "../static-server.js";

/** dist/web, beside dist/src where this file runs. */
const SITE = fileURLToPath(new URL("../../../web/", import.meta.url));
const DEFAULT_PORT = 8080;

const options = {
  port: { kind: "int", min: 0, form: "N", description: `The port (default ${DEFAULT_PORT}; 0 picks a free one).` },
  host: {
    kind: "string",
    form: "<address>",
    description: "The address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for every network).",
  },
  dir: {
    kind: "string",
    form: "<folder>",
    description: "The folder to serve (default: the package's dist/web, which npm run build:web writes).",
  },
} as const satisfies OptionTable;

export const serveCommand: Command<typeof options> = {
  syntax: {
    name: "serve",
    summary: "Serve the browser page: tracing, patching and the logit lens, run in the browser.",
    synopsis: "[--port N] [--dir <folder>]",
    options,
    notes: [
      "Prints the page's URL, then serves until stopped (Ctrl-C). The page loads the embedded model; it can",
      "also load a model folder you pick or drop, or a Hub model by id (when online).",
    ].join("\n"),
    examples: ["tsvene serve --port 8080"],
  },

  async run({ values }) {
    const port = values.port ?? DEFAULT_PORT;
    if (port > 65535) throw new UsageError(`--port ${port}: expected a port from 0 to 65535`);
    const folder = values.dir ?? SITE;
    await checkInputPath("--dir", folder, "folder", "the page's folder; npm run build:web writes it to dist/web");
    await checkInputPath("--dir", `${folder}/index.html`, "file", "a folder with index.html (run npm run build:web)");
    const server = staticServer(folder);
    await new Promise<void>((listening, failed) => {
      server.once("error", (error: NodeJS.ErrnoException) =>
        failed(error.code === "EADDRINUSE" ? new UsageError(`--port ${port} is in use; pick another`) : error),
      );
      server.listen(port, values.host ?? "127.0.0.1", listening);
    });
    const { address, port: bound } = server.address() as AddressInfo;
    const host = address.includes(":") ? `[${address}]` : address;
    process.stdout.write(`tsvene serve: ${folder} at http://${host}:${bound}/ (Ctrl-C stops)\n`);
    await new Promise((closed) => server.once("close", closed));
    return 0;
  },
};
