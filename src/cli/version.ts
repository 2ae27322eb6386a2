/** tsvene's version, as package.json states it (printed by --version, recorded with sweep results). */
import { readFileSync } from "node:fs";

export function tsveneVersion(): string {
  const packageJson = new URL("../../../package.json", import.meta.url);
  return (JSON.parse(readFileSync(packageJson, "utf8")) as { version: string }).version;
}
