/** `tsvene parity <dir>`: pyvene's reference cases run through tsvene (src/cli/parity.ts). */
import type { OptionTable } from "../args.js";
import type { Command } from "../context.js";
import { checkInputPath } from "../files.js";
import { runParity } from "../parity.js";

const options = {} as const satisfies OptionTable;

export const parityCommand: Command<typeof options> = {
  syntax: {
    name: "parity",
    summary: "Run a folder of pyvene reference cases through tsvene and compare the outputs.",
    synopsis: "<dir>",
    positionals: ["dir"],
    options,
    notes: [
      'Prints one line per failing case and a last line "N passed, M failed"; exits 1 on any failure.',
      "<dir> holds one folder per model (its config.json and weights, cases.json, tensors.safetensors), " +
        "or is one such folder.",
    ].join("\n"),
    // The repository's checkout keeps pyvene's fixtures beside it, in ../shared/fixtures.
    examples: ["tsvene parity ../shared/fixtures/pyvene-0.1.8"],
  },

  async run({ positionals }) {
    await checkInputPath("<dir>", positionals[0], "folder", "a folder of pyvene reference cases");
    const report = await runParity(positionals[0]);
    return report.failed === 0 ? 0 : 1;
  },
};
