// Stops the shared Hearth instance started by `global-setup.ts`.
// Its data dir (with `server.log`) is kept when HEARTH_E2E_KEEP_DATA is set.

export default async function globalTeardown(): Promise<void> {
  const server = globalThis.__hearthServer;
  if (!server) return;
  globalThis.__hearthServer = undefined;
  await server.dispose();
}
