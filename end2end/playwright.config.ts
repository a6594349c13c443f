// Playwright runs every spec twice over: once in Chromium with JavaScript
// (`js`, all specs) and once without (`nojs`, only `*.nojs.spec.ts`), so the
// server-rendered pages are proven to work on their own.
//
// The suite starts Hearth itself (tests/global-setup.ts) from the binary that
// `cargo leptos build` produced; it never downloads a browser and uses the
// system Chromium (`CHROMIUM_PATH`, default /usr/bin/chromium).

import { defineConfig } from "@playwright/test";
import { DEFAULT_PORT } from "./tests/server";

const chromiumArgs = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-dev-shm-usage",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export default defineConfig({
  testDir: "./tests",
  testMatch: "**/*.spec.ts",
  globalSetup: "./tests/global-setup.ts",
  globalTeardown: "./tests/global-teardown.ts",
  // Two cores: one browser at a time keeps the latency assertions honest.
  workers: 1,
  fullyParallel: false,
  forbidOnly: !!process.env.CI,
  retries: 0,
  reporter: "list",
  timeout: 60_000,
  expect: { timeout: 5_000 },
  use: {
    baseURL: `http://127.0.0.1:${DEFAULT_PORT}`,
    headless: true,
    actionTimeout: 10_000,
    navigationTimeout: 20_000,
    trace: "retain-on-failure",
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      args: chromiumArgs,
    },
  },
  projects: [
    {
      name: "js",
      grepInvert: /@nojs-only/,
      use: { browserName: "chromium", javaScriptEnabled: true },
    },
    {
      name: "nojs",
      testMatch: "**/*.nojs.spec.ts",
      use: { browserName: "chromium", javaScriptEnabled: false },
    },
  ],
});
