/** House style the formatter cannot enforce: no line longer than 120 characters (strings and comments included). */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { it } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const FOLDERS = ["src", "test", "bench", "scripts", "examples"];
const MAX = 120;

function sources(folder: string): string[] {
  return readdirSync(join(ROOT, folder), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.(ts|mjs|js)$/.test(e.name))
    .map((e) => join(e.parentPath, e.name));
}

it(`keeps every line of the sources within ${MAX} characters`, () => {
  const long = FOLDERS.flatMap(sources).flatMap((file) =>
    readFileSync(file, "utf8")
      .split("\n")
      .flatMap((line, i) => {
        const length = [...line].length;
        return length > MAX ? [`${file.slice(ROOT.length)}:${i + 1} (${length})`] : [];
      }),
  );
  assert.deepEqual(long, []);
});
