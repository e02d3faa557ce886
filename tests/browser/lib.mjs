// What the browser scripts share: Debian's chromium launched headless with the flags that work
// here (TESTING.md), and a failing expectation.

import { chromium } from "playwright-core";

/// Launches CHROMIUM (default /usr/bin/chromium).
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}

/// Throws unless `cond` holds.
export function expect(cond, what) {
  if (!cond) throw new Error(`expectation failed: ${what}`);
}
