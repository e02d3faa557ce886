// Browser test of drag-and-drop transfer on the live calls page: Debian's chromium driven by
// playwright-core. Extensions are listed with their state beside the calls; the keyboard form
// refuses a number the remaining extension may not call (shown in the page, the call kept);
// dragging the callee onto extension 1003 with a real mouse drag (dragTo), confirmed in the
// dialog, moves it there. Japanese labels are checked in the DOM (no CJK fonts here).
//
// Run by crates/denwa/tests/xfer_drag.rs, which owns the server and the baresip phones. This
// script talks to it on stdout: CALL <from> <to> (the phones call and answer), KEPT <a> <b>
// (check the call still bridges a and b), MOVED <target> <released> (check the call landed on
// target's phone and released's phone was hung up). Exit code 0 means every step passed.
//
// Env: DENWA_URL, DENWA_ADMIN, DENWA_PASSWORD, CHROMIUM (default /usr/bin/chromium).

import { expect, launch } from "./lib.mjs";

const { DENWA_URL: base, DENWA_ADMIN: admin, DENWA_PASSWORD: password } = process.env;
if (!base || !admin || !password) {
  console.error("DENWA_URL, DENWA_ADMIN and DENWA_PASSWORD must be set");
  process.exit(2);
}
const LIVE = 30_000; // the page reloads its live parts every 2 s
const step = (s) => console.log(`STEP ${s}`);
const ext = (n, state) => `#ext-states li[data-ext="${n}"]${state ? `[data-state="${state}"]` : ""}`;
const party = (p, n) => `#live-calls span.party[data-party="${p}"][data-number="${n}"]`;

const browser = await launch();

async function signedIn(context, { signIn, nodeStatus }) {
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  await page.goto(`${base}/login`);
  await page.fill("input[name=username]", admin);
  await page.fill("input[name=password]", password);
  await page.click(`button:has-text("${signIn}")`);
  await page.waitForSelector(`h2:has-text("${nodeStatus}")`);
  return page;
}

try {
  const ctx = await browser.newContext({ locale: "en-US" });
  step("sign in: the extensions are idle");
  const page = await signedIn(ctx, { signIn: "Sign in", nodeStatus: "Node status" });
  await page.goto(`${base}/calls`);
  for (const n of ["1001", "1002", "1003"]) await page.waitForSelector(ext(n, "idle"));

  step("1001 calls 1002: both busy, the parties can be dragged");
  console.log("CALL 1001 1002");
  await page.waitForSelector(party("callee", "1002"), { timeout: LIVE });
  await page.waitForSelector(ext("1001", "busy"), { timeout: LIVE });
  await page.waitForSelector(ext("1002", "busy"), { timeout: LIVE });
  expect((await page.getAttribute(ext("1003"), "data-state")) === "idle", "1003 stays idle");
  expect((await page.textContent(ext("1002"))).includes("busy"), "busy shown in words");

  step("keyboard form: a number 1001 may not call is refused, the call kept");
  const form = "#live-calls form.transfer";
  await page.fill(`${form} input[name=to]`, "00312345678");
  await page.selectOption(`${form} select[name=moves]`, "callee");
  await page.click(`${form} button[type=submit]`);
  const refusal = await page.textContent("main p.error[role=alert]");
  expect(refusal.includes("Transfer refused"), `refusal shown: ${refusal}`);
  expect(refusal.includes("may not call this number"), `explained: ${refusal}`);
  console.log("KEPT 1001 1002");

  step("drag the callee onto 1003 with the mouse, confirm");
  await page.goto(`${base}/calls`);
  await page.waitForSelector(party("callee", "1002"), { timeout: LIVE });
  await page.locator(party("callee", "1002")).dragTo(page.locator(ext("1003")));
  await page.waitForSelector("#xfer-dialog[open]");
  expect((await page.textContent("#xfer-to-label")) === "1003", "the dialog names the target");
  expect(await page.isChecked('#xfer-dialog input[name=moves][value="callee"]'), "the dragged party is preselected");
  expect((await page.textContent("#xfer-call")).includes("1001 → 1002"), "the dialog names the call");
  await page.click("#xfer-confirm");
  await page.waitForSelector('#xfer-result.ok:has-text("Transfer started")');
  console.log("MOVED 1003 1001");

  step("the board follows: 1002 and 1003 busy, 1001 idle");
  await page.waitForSelector(ext("1003", "busy"), { timeout: LIVE });
  await page.waitForSelector(ext("1001", "idle"), { timeout: LIVE });
  expect((await page.getAttribute(ext("1002"), "data-state")) === "busy", "1002 still talks");
  await ctx.close();

  step("Japanese: the board's words");
  const ja = await browser.newContext({ locale: "ja-JP" });
  const jp = await signedIn(ja, { signIn: "サインイン", nodeStatus: "ノードの状態" });
  await jp.goto(`${base}/calls`);
  await jp.waitForSelector(ext("1003", "busy"));
  expect((await jp.textContent(ext("1003"))).includes("通話中"), "busy in Japanese");
  expect((await jp.textContent(ext("1001"))).includes("待機中"), "idle in Japanese");
  expect((await jp.textContent("#xfer-dialog")).includes("転送する相手"), "the dialog in Japanese");
  await ja.close();
  console.log("PASS");
} catch (e) {
  console.error(`FAIL: ${e.stack || e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
