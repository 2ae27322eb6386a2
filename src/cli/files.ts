/**
 * The files a command reads and writes, checked before any work starts so that a long sweep never
 * ends in "cannot write", and written all or nothing: every result file goes to a temporary name
 * beside its final one and is renamed into place only once all of them are complete. Errors name
 * the flag and the path the user gave, never a temporary name or a bare errno code.
 */
import { constants } from "node:fs";
import { access, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { partialPath } from "../io/files.js";
import { UsageError } from "./args.js";

/** A file a command produces: `write` puts the whole content at the path it is given. */
export interface OutputFile {
  flag: string;
  path: string;
  write(path: string): Promise<void>;
}

export function textFile(flag: string, path: string, text: string): OutputFile {
  return { flag, path, write: (target) => writeFile(target, text) };
}

/** Plain words for the errors people meet with files; Node's own text (without its path) otherwise. */
export function describeFsError(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  switch (e.code) {
    case "ENOENT":
      return "no such file or folder";
    case "EISDIR":
      return "it is a folder, not a file";
    case "ENOTDIR":
      return "a part of the path is not a folder";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EROFS":
      return "the file system is read-only";
    case "ENOSPC":
      return "no space left on the device";
  }
  // Node's messages read "CODE: what happened, syscall 'path'": keep only what happened.
  return /^[A-Z]+: ([^,]+)/.exec(e.message ?? "")?.[1] ?? String(e.message ?? error);
}

/**
 * Checks that each given path can be written as a file: its folder exists and is writable, and the
 * path is not a folder. Two flags naming the same file would overwrite each other, so that is refused too.
 */
export async function checkOutputPaths(paths: Readonly<Record<string, string | undefined>>): Promise<void> {
  const seen = new Map<string, string>();
  for (const [flag, path] of Object.entries(paths)) {
    if (path === undefined) continue;
    const absolute = resolve(path);
    const other = seen.get(absolute);
    if (other !== undefined) throw new UsageError(`${other} and ${flag} both name ${path}; give each its own file`);
    seen.set(absolute, flag);
    await checkOutputPath(flag, path);
  }
}

async function checkOutputPath(flag: string, path: string): Promise<void> {
  const fail = (why: string): never => {
    throw new UsageError(`${flag} ${path}: ${why} (expected a file path in an existing, writable folder)`);
  };
  if (path.trim() === "" || /[/\\]$/.test(path)) fail("this names a folder, not a file");
  const existing = await stat(path).catch(() => null);
  if (existing?.isDirectory()) fail("this is a folder, not a file");
  const folder = dirname(path);
  const parent = await stat(folder).catch((e: unknown) =>
    fail(
      (e as NodeJS.ErrnoException).code === "ENOENT"
        ? `the folder ${folder} does not exist`
        : `the folder ${folder} cannot be used (${describeFsError(e)})`,
    ),
  );
  if (!parent.isDirectory()) fail(`${folder} is not a folder`);
  await access(folder, constants.W_OK).catch(() => fail(`the folder ${folder} is not writable`));
}

/**
 * Writes every file under a temporary name beside its own, then renames them all into place: when a
 * write fails, neither that file nor any other of the run appears, and no temporary file is left.
 */
export async function writeOutputs(files: readonly OutputFile[]): Promise<void> {
  const partials = files.map((file) => partialPath(file.path));
  let current = 0;
  try {
    for (; current < files.length; current++) await files[current].write(partials[current]);
    for (current = 0; current < files.length; current++) await rename(partials[current], files[current].path);
  } catch (error) {
    await Promise.all(partials.map((p) => rm(p, { force: true })));
    const file = files[current];
    throw new Error(`${file.flag} ${file.path}: cannot write the file (${describeFsError(error)})`, { cause: error });
  }
}

/** Checks that an input path exists and is a file (or a folder), so a wrong path is a usage error naming its flag. */
export async function checkInputPath(
  flag: string,
  path: string,
  kind: "file" | "folder",
  expected: string,
): Promise<void> {
  const fail = (why: string): never => {
    throw new UsageError(`${flag} ${path}: ${why} (expected ${expected})`);
  };
  const info = await stat(path).catch((e: unknown) => fail(describeFsError(e)));
  if (kind === "file" ? !info.isFile() : !info.isDirectory()) fail(`it is not a ${kind}`);
}
