/**
 * A throwaway redis-server for tests: on a free 127.0.0.1 port, without persistence, stopped (and
 * its folder removed) by the test. Tests that need one skip with a reason when redis-server is not
 * installed (.ci/run installs it).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Why Redis tests cannot run here, or undefined when they can. */
export const noRedis: string | undefined =
  spawnSync("redis-server", ["--version"]).status === 0
    ? undefined
    : "redis-server is not installed (apt-get install redis-server)";

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((listening) => server.listen(0, "127.0.0.1", listening));
  const { port } = server.address() as { port: number };
  await new Promise((closed) => server.close(closed));
  return port;
}

export interface TestRedis {
  port: number;
  url: string;
  /** Kills the server at once (SIGKILL), as a crash would; its data is gone. */
  kill(): Promise<void>;
  /** Starts a fresh, empty server on the same port. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  const folder = await mkdtemp(join(tmpdir(), "tsvene-redis-"));
  let server: ChildProcess;
  const launch = async () => {
    server = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", folder],
      { stdio: "ignore" },
    );
    await untilAnswering(port);
  };
  const kill = async () => {
    if (server.exitCode !== null || server.signalCode !== null) return;
    const exited = new Promise((done) => server.once("exit", done));
    server.kill("SIGKILL");
    await exited;
  };
  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    restart: launch,
    async stop() {
      await kill();
      await rm(folder, { recursive: true, force: true });
    },
  };
}

/** Waits until the server on `port` answers PING (it takes a moment to start listening). */
async function untilAnswering(port: number): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const answered = await new Promise<boolean>((done) => {
      const socket = createConnection({ port, host: "127.0.0.1" }, () => socket.write("PING\r\n"));
      socket.once("data", (data) => {
        socket.destroy();
        done(data.toString().startsWith("+PONG"));
      });
      socket.once("error", () => done(false));
    });
    if (answered) return;
    await new Promise((wait) => setTimeout(wait, 50));
  }
  throw new Error(`redis-server on port ${port} did not start`);
}
