// Starts the shared Hearth instance every spec talks to (see `server.ts`).
// The instance is kept on `globalThis` for `global-teardown.ts`, which runs in
// the same runner process.

import type { FullConfig } from "@playwright/test";
import { DEFAULT_PORT, HearthServer } from "./server";

declare global {
  // eslint-disable-next-line no-var
  var __hearthServer: HearthServer | undefined;
}

export default async function globalSetup(_config: FullConfig): Promise<void> {
  const server = await HearthServer.start({ port: DEFAULT_PORT });
  globalThis.__hearthServer = server;
  // Workers inherit the runner's environment: the fixtures attach this log to failed tests.
  process.env.HEARTH_E2E_LOG = server.logFile;
  // A crashed runner must not leave the server behind.
  process.once("exit", () => {
    if (server.pid) {
      try {
        process.kill(server.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  });
  console.log(`Hearth is up at ${server.baseURL} (data ${server.dataDir}, log ${server.logFile})`);
}
