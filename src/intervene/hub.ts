/**
 * Sharing a trained IntervenableModel through the Hugging Face Hub, as pyvene's
 * `save(save_to_hf_hub=True, hf_repo_name=…)` does: the folder saveIntervenable writes goes to a
 * model repo (created when it does not exist) as one commit, through `@huggingface/hub`.
 * `loadIntervenable(repoId, model)` reads it back.
 *
 * Settings (option, else environment): Hub address `endpoint`, else `HF_ENDPOINT`, else
 * https://huggingface.co; access token `accessToken`, else `HF_TOKEN` (one with write access).
 */
import { createRepo, HubApiError, uploadFiles } from "@huggingface/hub";
import { fileUrl, joinPath, listFolder, withTemporaryFolder } from "../io/files.js";
import { hubAccessToken, HubError, isHubId, networkErrorCode, resolveHubUrl } from "../io/hub.js";
import { readOptions } from "../options/index.js";
import type { IntervenableModel } from "./intervenable-model.js";
import { SAVE_OPTION_NAMES, saveIntervenable, type SaveIntervenableOptions } from "./save.js";

/** The Hub's answer to creating a repo that exists. */
const CONFLICT = 409;

export interface PushIntervenableOptions extends SaveIntervenableOptions {
  /** The Hub's base URL; default `HF_ENDPOINT`, else https://huggingface.co. */
  endpoint?: string;
  /** A token with write access to the repo; default `HF_TOKEN`. */
  accessToken?: string;
  /** Make the repo private if it has to be created. */
  private?: boolean;
  /** Default "Upload IntervenableModel". */
  commitTitle?: string;
}

const PUSH_OPTION_NAMES = [
  ...SAVE_OPTION_NAMES,
  "endpoint",
  "accessToken",
  "private",
  "commitTitle",
] as const satisfies readonly (keyof PushIntervenableOptions)[];

export interface PushResult {
  /** The commit the upload made. */
  commit: string;
  /** Its address on the Hub. */
  url: string;
}

/** Saves `im` and uploads the folder to the Hub model repo `repoId` ("owner/name") as one commit. */
export async function pushIntervenable(
  im: IntervenableModel<unknown>,
  repoId: string,
  pushOptions: PushIntervenableOptions = {},
): Promise<PushResult> {
  const options = readOptions<PushIntervenableOptions>(pushOptions, PUSH_OPTION_NAMES, "pushIntervenable options");
  if (!isHubId(repoId) || !repoId.includes("/"))
    throw new TypeError(`pushIntervenable: repo id must be "owner/name", got ${JSON.stringify(repoId)}`);
  const accessToken = hubAccessToken(options.accessToken);
  if (accessToken === undefined) {
    throw new TypeError(
      `pushIntervenable: uploading to "${repoId}" needs an access token with write access ` +
        "(option accessToken, or HF_TOKEN)",
    );
  }
  const hubUrl = resolveHubUrl(options.endpoint);
  const where = `pushIntervenable to "${repoId}" at ${hubUrl}`;

  return withTemporaryFolder("tsvene-push-", async (folder) => {
    try {
      await saveIntervenable(im, folder, { includeModel: options.includeModel });
      const files = (await listFolder(folder)).sort().map((name) => fileUrl(joinPath(folder, name)));
      try {
        await createRepo({
          repo: repoId,
          accessToken,
          hubUrl,
          ...(options.private ? { visibility: "private" as const } : {}),
        });
      } catch (error) {
        if (!(error instanceof HubApiError && error.statusCode === CONFLICT)) throw error;
      }
      const output = await uploadFiles({
        repo: repoId,
        accessToken,
        hubUrl,
        files,
        commitTitle: options.commitTitle ?? "Upload IntervenableModel",
      });
      if (output === undefined) throw new Error(`${where}: the Hub answered the commit without a commit id`);
      return { commit: output.commit.oid, url: output.commit.url };
    } catch (error) {
      throw explain(error, where, hubUrl);
    }
  });
}

/** A Hub failure as an error that says what went wrong and what to do. */
function explain(error: unknown, where: string, hubUrl: string): unknown {
  const network = networkErrorCode(error);
  if (network !== undefined) {
    return new HubError(
      "unreachable",
      `${where}: cannot reach the Hub at ${hubUrl} (${network}). ` +
        "Connect to the network or point HF_ENDPOINT at a reachable Hub.",
      { cause: error },
    );
  }
  if (error instanceof HubApiError && (error.statusCode === 401 || error.statusCode === 403)) {
    return new Error(
      `${where}: the Hub refused the upload (HTTP ${error.statusCode}: ${error.message}). ` +
        "The access token needs write access to the repo's owner.",
      { cause: error },
    );
  }
  if (error instanceof HubApiError) {
    return new Error(`${where}: the Hub answered HTTP ${error.statusCode} (${error.message})`, { cause: error });
  }
  if (error instanceof Error && !error.message.startsWith("saveIntervenable") && !error.message.startsWith(where)) {
    return new Error(`${where}: ${error.message}`, { cause: error });
  }
  return error;
}
