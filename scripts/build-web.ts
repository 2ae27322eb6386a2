/**
 * `npm run build:web`: the browser build, with esbuild.
 * - dist/browser/tsvene.js: the library as one ESM file for browsers (package.json exports it
 *   under the "browser" condition); its size is printed.
 * - dist/web/: the static page (`tsvene serve` serves it; any static host can): index.html, the
 *   page script, the worker that runs tsvene and its GEMM helpers' script, the embedded model's
 *   files, and the WebAssembly kernels (both builds) when build/wasm has them.
 * In both, platform/default.ts becomes default-browser.ts, and the Node built-ins that io/ uses
 * for disk and Hub-cache access become stubs that throw a clear error when called: the browser
 * reads models through io/sources.ts (File objects, fetch) instead. A node: import anywhere
 * outside io/ fails the build, as the core must not need Node.
 */
import { copyFile, mkdir, readdir, rm, stat } from "node:fs/promises";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

export interface WebBuild {
  /** The library bundle and its size in bytes. */
  library: { path: string; bytes: number };
  /** The site folder. */
  site: string;
  /** Every input of the library bundle, as esbuild's metafile names them. */
  libraryInputs: string[];
}

/** The package root: this file runs as dist/scripts/build-web.js. */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const NODE_STUB_NAMESPACE = "node-builtin-stub";
/** The WebAssembly kernels, one thread and threaded (web/kernel-threads.ts chooses). */
export const WASM_KERNEL_FILES = ["tsvene.wasm", "tsvene-threads.wasm"];

/** Builds the library bundle into `outDir`/browser and the site into `outDir`/web. */
export async function buildWeb(outDir = join(ROOT, "dist")): Promise<WebBuild> {
  const libraryPath = join(outDir, "browser", "tsvene.js");
  const site = join(outDir, "web");
  const common: esbuild.BuildOptions = {
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    sourcemap: true,
    minify: true,
    legalComments: "linked",
    logLevel: "warning",
    plugins: [browserForms()],
  };
  const library = await esbuild.build({
    ...common,
    entryPoints: [join(ROOT, "src", "index.ts")],
    outfile: libraryPath,
    metafile: true,
  });
  await rm(site, { recursive: true, force: true });
  await esbuild.build({
    ...common,
    entryPoints: {
      app: join(ROOT, "web", "app.ts"),
      worker: join(ROOT, "web", "worker.ts"),
      "kernel-thread": join(ROOT, "web", "kernel-thread.ts"),
    },
    outdir: site,
  });
  await copyFile(join(ROOT, "web", "index.html"), join(site, "index.html"));
  await copyFolder(join(ROOT, "models", "default"), join(site, "models", "default"));
  await copyWasmKernels(site);
  const bytes = (await stat(libraryPath)).size;
  return { library: { path: libraryPath, bytes }, site, libraryInputs: Object.keys(library.metafile.inputs) };
}

/** The aliases that make the browser forms: see the module comment. Other browser bundles (bench:browser) use it. */
export function browserForms(): esbuild.Plugin {
  return {
    name: "tsvene-browser-forms",
    setup(build) {
      build.onResolve({ filter: /^\.\/default\.js$/ }, (args) =>
        args.importer.endsWith(join("src", "platform", "index.ts"))
          ? { path: join(dirname(args.importer), "default-browser.ts") }
          : undefined,
      );
      // The package's own "browser" field names this file, but its "exports" map hides it from the resolver.
      build.onResolve({ filter: /^@huggingface\/hub$/ }, () => ({
        path: join(ROOT, "node_modules", "@huggingface", "hub", "dist", "browser", "index.mjs"),
      }));
      build.onResolve({ filter: /^node:/ }, (args) => {
        const from = relative(ROOT, args.importer);
        if (!from.startsWith(join("src", "io") + sep))
          return { errors: [{ text: `${from} imports ${args.path}: only src/io/ may use Node in the browser build` }] };
        return { path: args.path, namespace: NODE_STUB_NAMESPACE };
      });
      build.onLoad({ filter: /.*/, namespace: NODE_STUB_NAMESPACE }, async (args) => ({
        contents: await nodeStub(args.path),
        loader: "js",
      }));
    },
  };
}

/**
 * A module with every export of the Node built-in `specifier`, each a function that throws,
 * naming what was called and what the browser offers instead.
 */
async function nodeStub(specifier: string): Promise<string> {
  const names = Object.keys(await import(specifier)).filter((n) => /^[A-Za-z_$][\w$]*$/.test(n) && n !== "default");
  const message =
    `${specifier} is Node's; tsvene's browser build runs without Node (no files on disk, no Hub cache): ` +
    "load models with loadPretrainedFrom(filesFromBlobs(files)), filesFromUrl(url) or filesFromHub(id)";
  return [
    `const message = ${JSON.stringify(message)};`,
    'const unavailable = (name) => function () { throw new Error(message + " (called " + name + ")"); };',
    ...names.map((n) => `export const ${n} = unavailable(${JSON.stringify(n)});`),
    "export default {};",
  ].join("\n");
}

/** Copies into `site` the builds of the WebAssembly kernels that build/wasm has. */
export async function copyWasmKernels(site: string): Promise<void> {
  for (const name of WASM_KERNEL_FILES) {
    const built = join(ROOT, "build", "wasm", name);
    if (await isFile(built)) await copyFile(built, join(site, name));
  }
}

async function copyFolder(from: string, to: string): Promise<void> {
  await mkdir(to, { recursive: true });
  for (const entry of await readdir(from, { withFileTypes: true })) {
    if (entry.isFile()) await copyFile(join(from, entry.name), join(to, entry.name));
  }
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const built = await buildWeb();
  const kib = (built.library.bytes / 1024).toFixed(1);
  process.stdout.write(`${relative(ROOT, built.library.path)}: ${kib} KiB\n${relative(ROOT, built.site)}/: the page\n`);
}
