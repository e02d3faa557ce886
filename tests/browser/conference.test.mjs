// Browser test of the live conference participant list: Debian's chromium driven by
// playwright-core. The rooms page shows who joins without being reloaded (the server pushes the
// list as server-sent events; the page never polls the fragment while its stream is open), with
// the join time, mutes one participant and drops another, in English and in Japanese (checked
// in the DOM: no CJK fonts here).
//
// Run by crates/denwa/tests/conference_browser.rs, which starts `denwa serve` with room 800,
// creates the administrator and owns the baresip phones. This script talks to it on stdout:
// JOIN <number>  (that extension's phone dials room 800 and is answered). Everything else it
// prints is progress. Exit code 0 means every step passed.
//
// Env: DENWA_URL, DENWA_ADMIN, DENWA_PASSWORD, CHROMIUM (default /usr/bin/chromium).

import { expect, launch } from "./lib.mjs";

const { DENWA_URL: base, DENWA_ADMIN: admin, DENWA_PASSWORD: password } = process.env;
if (!base || !admin || !password) {
  console.error("DENWA_URL, DENWA_ADMIN and DENWA_PASSWORD must be set");
  process.exit(2);
}
const LIVE = 30_000; // bounds waiting for a phone to join and the push to arrive
const step = (s) => console.log(`STEP ${s}`);

const browser = await launch();

// Signs in on a new page of `context`, whose language gives the button and heading names.
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

const cell = "#members-800";
const member = (n) => `${cell} li:has(span.caller:text-is("${n}"))`;

try {
  const ctx = await browser.newContext({ locale: "en-US" });
  step("sign in, the room is empty");
  const page = await signedIn(ctx, { signIn: "Sign in", nodeStatus: "Node status" });
  const fragmentLoads = [];
  let streams = 0;
  page.on("request", (r) => {
    if (r.url().includes("/fragments/conferences/")) fragmentLoads.push(r.url());
    if (r.url().includes("/events/conferences/800")) streams += 1;
  });
  await page.goto(`${base}/conferences`);
  expect((await page.textContent(cell)).includes("Nobody"), "room 800 starts empty");
  // Set on this document only: still there later means the page was never reloaded.
  await page.evaluate(() => { window.denwaSamePage = true; });

  step("two phones join; the list shows them without a reload");
  console.log("JOIN 1001");
  await page.waitForSelector(member("1001"), { timeout: LIVE });
  console.log("JOIN 1002");
  await page.waitForSelector(member("1002"), { timeout: LIVE });
  expect(await page.evaluate(() => window.denwaSamePage === true), "the list changed without a page reload");
  expect(!(await page.textContent(cell)).includes("Nobody"), "no longer empty");
  expect((await page.getAttribute(member("1001"), "data-muted")) === "false", "1001 joined unmuted");
  expect(streams >= 1, "the page opened the participant stream");
  expect(fragmentLoads.length === 0, `pushed, not polled: ${fragmentLoads.join(", ")}`);
  const joined = await page.textContent(`${member("1001")} span.joined`);
  expect(/joined \d\d:\d\d:\d\d UTC/.test(joined), `the join time shown: ${joined}`);

  step("mute 1001");
  await page.click(`${member("1001")} button.mute`);
  await page.waitForSelector('#form-ok:has-text("Muted.")');
  expect((await page.getAttribute(member("1001"), "data-muted")) === "true", "1001 is muted");
  expect((await page.textContent(member("1001"))).includes("muted"), "shown as muted");
  expect((await page.textContent(`${member("1001")} button.mute`)).includes("Unmute"), "the button unmutes now");

  step("drop 1002");
  await page.click(`${member("1002")} button.kick`);
  await page.waitForSelector('#form-ok:has-text("Participant dropped from the room.")');
  await page.waitForSelector(member("1002"), { state: "detached", timeout: LIVE });
  expect(await page.isVisible(member("1001")), "1001 stays");
  console.log("DROPPED 1002");
  await ctx.close();

  step("Japanese: the same list");
  const ja = await browser.newContext({ locale: "ja-JP" });
  const jp = await signedIn(ja, { signIn: "サインイン", nodeStatus: "ノードの状態" });
  await jp.goto(`${base}/conferences`);
  expect((await jp.textContent(member("1001"))).includes("ミュート中"), "Japanese muted state");
  expect((await jp.textContent(member("1001"))).includes("参加"), "Japanese join time label");
  expect((await jp.textContent(`${member("1001")} button.kick`)).includes("退出させる"), "Japanese drop button");
  await ja.close();
  console.log("PASS");
} catch (e) {
  console.error(`FAIL: ${e.stack || e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
