// Starts and stops real Hearth server processes for the end-to-end suite.
//
// The suite never relies on `cargo leptos` to start the app: it runs the binary
// that `cargo leptos build` left in `target/debug/hearth` (or `HEARTH_BIN`), from
// the repository root so `target/site` resolves, with its own fresh data
// directory. The shared instance is started by `global-setup.ts`; tests that
// must kill the server (reconnect) start a private instance with this module.

import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

export const REPO_ROOT = path.resolve(__dirname, "..", "..");

/** Port of the shared instance; `playwright.config.ts` builds `baseURL` from it. */
export const DEFAULT_PORT = Number(process.env.HEARTH_E2E_PORT ?? 3107);

const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;
const LOG_TAIL_CHARS = 8_000;

export function hearthBinary(): string {
  return path.resolve(REPO_ROOT, process.env.HEARTH_BIN ?? "target/debug/hearth");
}

/**
 * The site (`pkg/` with the browser bundle) served next to the binary. It must come from
 * the same build as `hearthBinary()`, or hydration fails; point both elsewhere
 * (`HEARTH_BIN`, `HEARTH_E2E_SITE_ROOT`) to test a snapshot while `target/` is rebuilt.
 */
export function siteRoot(): string {
  return path.resolve(REPO_ROOT, process.env.HEARTH_E2E_SITE_ROOT ?? "target/site");
}

export function freshDataDir(label = "hearth-e2e"): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `${label}-`));
}

/** Asks the kernel for a port nobody holds right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** True when something already accepts connections on 127.0.0.1:`port`. */
export async function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: "127.0.0.1", port });
    sock.setTimeout(1_000);
    sock.once("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("timeout", () => {
      sock.destroy();
      resolve(false);
    });
    sock.once("error", () => resolve(false));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface ServerOptions {
  port: number;
  /** Reused across restarts so history survives; a fresh temp dir when omitted. */
  dataDir?: string;
  /** Extra environment for the server process. */
  env?: Record<string, string>;
}

export class HearthServer {
  readonly port: number;
  readonly dataDir: string;
  readonly logFile: string;
  private readonly extraEnv: Record<string, string>;
  private child: ChildProcess | null = null;
  private log = "";

  private constructor(opts: ServerOptions) {
    this.port = opts.port;
    this.dataDir = opts.dataDir ?? freshDataDir();
    this.logFile = path.join(this.dataDir, "server.log");
    this.extraEnv = opts.env ?? {};
  }

  /** Spawns the server and resolves once `GET /` answers 200. */
  static async start(opts: ServerOptions): Promise<HearthServer> {
    const server = new HearthServer(opts);
    await server.spawnAndWait();
    return server;
  }

  get baseURL(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The last few kilobytes the server printed, for failure messages. */
  logTail(): string {
    return this.log.slice(-LOG_TAIL_CHARS);
  }

  /** SIGTERM, then SIGKILL if the process has not exited after a grace period. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    const timedOut = await Promise.race([
      exited.then(() => false),
      sleep(STOP_GRACE_MS).then(() => true),
    ]);
    if (timedOut) {
      child.kill("SIGKILL");
      await exited;
    }
    // The socket may linger for a moment after exit; wait until the port is free
    // so a restart on the same port does not race the old listener.
    for (let i = 0; i < 50 && (await portInUse(this.port)); i++) await sleep(100);
  }

  /** Starts a stopped instance again, on the same port and data dir. */
  async start(): Promise<void> {
    if (this.child) throw new Error(`Hearth server on port ${this.port} is already running`);
    await this.spawnAndWait();
  }

  /** Stops the process and starts a new one on the same port and data dir. */
  async restart(opts: { downMs?: number } = {}): Promise<void> {
    await this.stop();
    if (opts.downMs) await sleep(opts.downMs);
    await this.spawnAndWait();
  }

  /** Stops the process and deletes its data dir (unless HEARTH_E2E_KEEP_DATA is set). */
  async dispose(): Promise<void> {
    await this.stop();
    if (!process.env.HEARTH_E2E_KEEP_DATA) {
      fs.rmSync(this.dataDir, { recursive: true, force: true });
    }
  }

  private async spawnAndWait(): Promise<void> {
    const bin = hearthBinary();
    if (!fs.existsSync(bin)) {
      throw new Error(
        `Hearth binary not found at ${bin}. Build it with \`cargo leptos build\` ` +
          `(or point HEARTH_BIN at it).`,
      );
    }
    if (!fs.existsSync(path.join(siteRoot(), "pkg"))) {
      throw new Error(
        `${siteRoot()}/pkg is missing: run \`cargo leptos build\` so the ` +
          `browser bundle exists, or hydration tests will fail.`,
      );
    }
    if (await portInUse(this.port)) {
      throw new Error(
        `Port ${this.port} is already in use on 127.0.0.1; stop whatever holds it or set ` +
          `HEARTH_E2E_PORT to another port.`,
      );
    }

    const env: NodeJS.ProcessEnv = {
      ...process.env,
      LEPTOS_OUTPUT_NAME: "hearth",
      LEPTOS_SITE_ROOT: siteRoot(),
      LEPTOS_SITE_PKG_DIR: "pkg",
      LEPTOS_SITE_ADDR: `127.0.0.1:${this.port}`,
      HEARTH_DATA_DIR: this.dataDir,
      HEARTH_PRESENCE_GRACE_MS: "1000",
      // The whole suite connects from 127.0.0.1 and registers or logs in many times a
      // minute: per-IP limits sized for real people would throttle it. `seedRoom` posts a
      // room's history (120+ messages) in one go over one connection, so the burst is
      // raised too; the steady message rate keeps its default (10/s). A spec can still
      // pass its own values in `env`.
      HEARTH_UPGRADES_PER_MINUTE: "100000",
      HEARTH_LOGIN_ATTEMPTS: "100000",
      HEARTH_LOGIN_ATTEMPTS_PER_ADDRESS: "100000",
      HEARTH_LOGIN_ATTEMPTS_PER_NAME: "100000",
      HEARTH_REGISTRATIONS_PER_HOUR: "100000",
      HEARTH_FORM_POSTS_PER_MINUTE: "100000",
      HEARTH_MESSAGE_BURST: "1000",
      // Specs create many rooms from one address and a few names.
      HEARTH_ROOMS_PER_HOUR: "100000",
      HEARTH_ROOMS_PER_HOUR_PER_ADDRESS: "100000",
      RUST_LOG: process.env.RUST_LOG ?? "info",
      NO_COLOR: "1",
      ...this.extraEnv,
    };
    const child = spawn(bin, [], { cwd: REPO_ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    const logStream = fs.createWriteStream(this.logFile, { flags: "a" });
    const record = (chunk: Buffer) => {
      const text = chunk.toString();
      this.log = (this.log + text).slice(-4 * LOG_TAIL_CHARS);
      logStream.write(text);
      if (process.env.HEARTH_E2E_VERBOSE) process.stderr.write(`[hearth:${this.port}] ${text}`);
    };
    child.stdout?.on("data", record);
    child.stderr?.on("data", record);
    // "close" fires after the pipes drain, so nothing is written after end().
    child.once("close", () => logStream.end());

    const state: { exit: string | null } = { exit: null };
    child.once("exit", (code, signal) => {
      state.exit = signal ? `signal ${signal}` : `code ${code}`;
    });
    child.once("error", (err) => {
      state.exit = `spawn error: ${err.message}`;
    });

    const deadline = Date.now() + READY_TIMEOUT_MS;
    let lastError = "";
    while (Date.now() < deadline) {
      if (state.exit) {
        this.child = null;
        await sleep(100); // let the last lines of output arrive

        throw new Error(
          `Hearth server on port ${this.port} exited during start-up (${state.exit}).\n` +
            `--- server output ---\n${this.logTail()}`,
        );
      }
      try {
        const res = await fetch(`${this.baseURL}/`, { signal: AbortSignal.timeout(2_000) });
        if (res.status === 200) return;
        lastError = `GET / answered ${res.status}`;
      } catch (err) {
        lastError = err instanceof Error ? err.message : String(err);
      }
      await sleep(200);
    }
    await this.stop();
    throw new Error(
      `Hearth server on port ${this.port} did not answer GET / with 200 within ` +
        `${READY_TIMEOUT_MS / 1000} s (last: ${lastError}).\n--- server output ---\n${this.logTail()}`,
    );
  }
}

/**
 * A database of its own on the run's PostgreSQL server (started by `scripts/test.sh`,
 * which sets `HEARTH_TEST_POSTGRES` and `HEARTH_TEST_PG_BIN`); returns its URL.
 */
export async function freshDatabase(): Promise<string> {
  const admin = process.env.HEARTH_TEST_POSTGRES;
  const bin = process.env.HEARTH_TEST_PG_BIN;
  if (!admin || !bin) {
    throw new Error(
      "HEARTH_TEST_POSTGRES is not set: the cluster spec needs the PostgreSQL server that " +
        "./scripts/test.sh starts (run the suite through it).",
    );
  }
  const url = new URL(admin);
  const name = `hearth_e2e_${process.pid}_${Date.now()}`;
  await run(path.join(bin, "createdb"), [
    "-h",
    url.hostname,
    "-p",
    url.port,
    "-U",
    url.username,
    name,
  ]);
  url.pathname = `/${name}`;
  return url.toString();
}

/** A nats-server of its own on a free port (`HEARTH_TEST_NATS_SERVER`, set by `scripts/test.sh`). */
export async function startNats(): Promise<{ url: string; stop: () => void }> {
  const bin = process.env.HEARTH_TEST_NATS_SERVER;
  if (!bin) {
    throw new Error(
      "HEARTH_TEST_NATS_SERVER is not set: the cluster spec needs the nats-server that " +
        "./scripts/test.sh finds (run the suite through it).",
    );
  }
  const port = await freePort();
  const child = spawn(bin, ["-a", "127.0.0.1", "-p", String(port)], { stdio: "ignore" });
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!(await portInUse(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`nats-server did not start on 127.0.0.1:${port}`);
    }
    await sleep(50);
  }
  return { url: `nats://127.0.0.1:${port}`, stop: () => child.kill("SIGKILL") };
}

function run(program: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr?.on("data", (chunk: Buffer) => (err += chunk.toString()));
    child.once("error", reject);
    child.once("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`${program} ${args.join(" ")}: ${err}`)),
    );
  });
}
