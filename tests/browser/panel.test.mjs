// Browser test of the Denwa control panel: Debian's chromium driven by playwright-core.
//
// Run by crates/denwa/tests/web_browser.rs, which starts `denwa serve`, creates the
// administrator and owns the baresip phones. This script talks to it on stdout, one command per
// line:  PHONE <number> <password>  (start a phone that registers),  DIAL <from> <to>.
// Everything else it prints is progress. Exit code 0 means every step passed.
//
// Env: DENWA_URL, DENWA_ADMIN, DENWA_PASSWORD, CHROMIUM (default /usr/bin/chromium),
// DENWA_PROMPT_WAV (a 1.5 s WAV to upload as a prompt).

import { expect, launch } from "./lib.mjs";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const base = process.env.DENWA_URL;
const admin = process.env.DENWA_ADMIN;
const password = process.env.DENWA_PASSWORD;
if (!base || !admin || !password) {
  console.error("DENWA_URL, DENWA_ADMIN and DENWA_PASSWORD must be set");
  process.exit(2);
}
const LIVE = 30_000; // live updates arrive every 2 s; this bounds waiting for a phone or a call

const step = (s) => console.log(`STEP ${s}`);
const send = (cmd) => console.log(cmd);

const profile = mkdtempSync(join(tmpdir(), "denwa-chromium-"));
const browser = await launch();

// Loads an <audio> element's source and returns its length in seconds (the browser decoded
// what the server sent: content type, security policy and WAV format all right).
async function audioSeconds(page, selector) {
  return page.$eval(selector, (a) => new Promise((resolve, reject) => {
    a.addEventListener("loadedmetadata", () => resolve(a.duration), { once: true });
    a.addEventListener("error", () => reject(new Error(`audio error ${a.error && a.error.code}`)), { once: true });
    a.preload = "metadata";
    a.load();
  }));
}

async function signIn(page, labels) {
  await page.goto(`${base}/login`);
  expect((await page.getAttribute("html", "lang")) === labels.lang, `page language ${labels.lang}`);
  await page.fill("input[name=username]", admin);
  await page.fill("input[name=password]", password);
  await page.click(`button:has-text("${labels.signIn}")`);
  await page.waitForSelector(`h2:has-text("${labels.nodeStatus}")`);
}

async function createExtension(page, number, name) {
  await page.goto(`${base}/extensions`);
  await page.fill("#new-extension input[name=number]", number);
  await page.fill("#new-extension input[name=display_name]", name);
  await page.click("#new-extension button[type=submit]");
  await page.waitForSelector("#new-password, #form-error");
  if (await page.isVisible("#form-error")) {
    throw new Error(`creating ${number} failed: ${await page.textContent("#form-error")}`);
  }
  const pw = (await page.textContent("#new-password")).trim();
  expect(pw.length === 16, "a generated password is shown once");
  return pw;
}

// Adds a trunk, an outbound route and an inbound route through the real forms; `t` holds the
// labels of the page language (checked in the DOM: Chromium here has no CJK fonts).
async function outsideLines(page, { trunk, route, did, t }) {
  await page.goto(`${base}/trunks/new`);
  for (const legend of t.groups) {
    expect(await page.isVisible(`#trunk-form legend:has-text("${legend}")`), `trunk form group ${legend}`);
  }
  await page.fill("#trunk-form input[name=name]", trunk);
  await page.fill("#trunk-form input[name=host]", "192.0.2.50");
  await page.fill("#trunk-form input[name=username]", "0312345678");
  await page.fill("#trunk-form input[name=password]", "trunk-secret-pw");
  await page.check("#trunk-form input[name=register]");
  await page.selectOption("#trunk-form select[name=identity]", "ppi");
  await page.click("#trunk-form button[type=submit]");
  await page.waitForSelector(`tr[data-trunk="${trunk}"]`);
  const reg = await page.textContent(`tr[data-trunk="${trunk}"] td[data-registration]`);
  expect(t.registration.some((w) => reg.includes(w)), `${trunk} shows its registration (${reg})`);
  expect(!(await page.content()).includes("trunk-secret-pw"), "the trunk password is not shown");

  // A bad pattern first: the error sits at the field and the input is kept.
  await page.goto(`${base}/routes/new`);
  await page.fill("#route-form input[name=name]", route);
  await page.fill("#route-form textarea[name=pattern]", "0|0Q");
  await page.selectOption("#route-form select[name=trunk] >> nth=0", trunk);
  await page.click("#route-form button[type=submit]");
  await page.waitForSelector("#err-pattern");
  expect((await page.inputValue("#route-form textarea[name=pattern]")) === "0|0Q", "pattern input kept");
  await page.fill("#route-form textarea[name=pattern]", "0|0ZXXXXXXXX\n0|0[789]0XXXXXXXX");
  await page.selectOption("#route-form select[name=cos]", "mobile");
  await page.click("#route-form button[type=submit]");
  await page.waitForSelector(`tr[data-route="${route}"]`);
  expect((await page.textContent(`tr[data-route="${route}"]`)).includes(t.mobile), "route class shown in the page language");

  await page.goto(`${base}/dids/new`);
  await page.fill("#did-form input[name=pattern]", did);
  await page.fill("#did-form input[name=to]", "ext:1001");
  await page.selectOption("#did-form select[name=trunk]", trunk);
  await page.click("#did-form button[type=submit]");
  await page.waitForSelector(`tr[data-did="${did}"]`);
  expect((await page.textContent("#form-ok")).includes(t.didAdded), "inbound route added");
  await page.goto(`${base}/`);
  expect(await page.isVisible(`#dash-trunks tr[data-trunk="${trunk}"]`), "dashboard trunk panel");
}

try {
  // ----- English -----
  const ctx = await browser.newContext({ locale: "en-US", acceptDownloads: true });
  const page = await ctx.newPage();
  page.setDefaultTimeout(15_000);
  step("sign in");
  await signIn(page, { lang: "en", signIn: "Sign in", nodeStatus: "Node status" });

  step("create extensions and watch real phones register");
  for (const [number, name] of [["1001", "Alice"], ["1002", "Bob"]]) {
    const pw = await createExtension(page, number, name);
    await page.goto(`${base}/extensions`);
    const state = `tr[data-number="${number}"] td[data-state]`;
    expect((await page.getAttribute(state, "data-state")) === "unregistered", `${number} starts unregistered`);
    send(`PHONE ${number} ${pw}`);
    // No reload: the live table must change by itself.
    await page.waitForSelector(`tr[data-number="${number}"] td[data-state="registered"]`, { timeout: LIVE });
    console.log(`${number} registered: ${await page.textContent(`tr[data-number="${number}"]`)}`);
  }

  step("call between the phones: calls in progress, hang up from the panel, call history");
  await page.goto(`${base}/calls`);
  expect(await page.isVisible("#no-calls"), "no call before dialling");
  send("DIAL 1001 1002");
  const row = 'tr.call[data-caller="1001"][data-callee="1002"]';
  await page.waitForSelector(`${row}:has-text("connected")`, { timeout: LIVE });
  await page.click(`${row} button[type=submit]`);
  await page.waitForSelector("#no-calls", { timeout: LIVE });
  let seen = false;
  for (let i = 0; i < 20 && !seen; i++) {
    await page.goto(`${base}/history?number=1001`);
    seen = await page.isVisible('tr.cdr[data-caller="1001"][data-callee="1002"][data-disposition="ANSWERED"]');
    if (!seen) await page.waitForTimeout(500);
  }
  expect(seen, "the call is in the history as answered");
  const csvHref = await page.getAttribute("#csv", "href");
  const csv = await (await page.request.get(`${base}${csvHref}`)).text();
  expect(csv.split("\r\n")[1]?.includes("1001") && csv.includes("ANSWERED"), "CSV export of the filter");

  step("dashboard: registered phones and today's counts");
  await page.goto(`${base}/`);
  expect((await page.$$("table.phones tbody tr")).length === 2, "two registered phones on the dashboard");
  expect((await page.textContent('td[data-disposition="ANSWERED"]')).trim() === "1", "one answered call today");

  step("download a backup, delete an extension, restore, see it back");
  await page.goto(`${base}/backup`);
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download-backup")]);
  const archive = join(profile, "backup.tar");
  await download.saveAs(archive);
  await page.goto(`${base}/extensions/1001`);
  await page.click("#delete-extension");
  await page.waitForSelector('p.ok:has-text("Extension deleted")');
  expect(!(await page.isVisible('tr[data-number="1001"]')), "1001 is gone");
  await page.goto(`${base}/backup`);
  await page.setInputFiles("#restore input[type=file]", archive);
  await page.click("#restore button[type=submit]");
  await page.waitForSelector("#restore-ok");
  await page.goto(`${base}/extensions`);
  expect(await page.isVisible('tr[data-number="1001"]'), "1001 is back after the restore");
  step("outside lines: trunk, outbound route, inbound route");
  await outsideLines(page, {
    trunk: "carrier", route: "national", did: "0312345678",
    t: { groups: ["Basic", "Authentication", "Caller ID", "Advanced"], registration: ["registered", "registering", "failing"],
         mobile: "mobile", didAdded: "Inbound route added" },
  });
  step("prompts: a default prompt plays in the browser; an upload replaces one");
  await page.goto(`${base}/prompts?lang=en`);
  expect((await page.getAttribute("#p-goodbye", "data-source")) === "default-tts", "goodbye is the synthesised default");
  expect(await audioSeconds(page, "#p-goodbye audio") > 0.3, "the default prompt decodes in the browser");
  await page.setInputFiles("#p-please-wait input[type=file]", process.env.DENWA_PROMPT_WAV);
  await page.click("#p-please-wait button[type=submit]");
  await page.waitForSelector("#prompt-saved");
  expect((await page.getAttribute("#p-please-wait", "data-source")) === "uploaded", "please-wait is now uploaded");
  const secs = await audioSeconds(page, "#p-please-wait audio");
  expect(Math.abs(secs - 1.5) < 0.1, `the uploaded prompt plays back at its length (${secs} s)`);
  await page.goto(`${base}/moh`);
  expect(await audioSeconds(page, "#moh-default audio") > 25, "the default hold music decodes in the browser");
  await page.click("#logout");
  await page.waitForSelector("input[name=username]");
  await ctx.close();

  // ----- Japanese -----
  step("Japanese: sign in and extensions");
  const ja = await browser.newContext({ locale: "ja-JP" });
  const jp = await ja.newPage();
  jp.setDefaultTimeout(15_000);
  await signIn(jp, { lang: "ja", signIn: "サインイン", nodeStatus: "ノードの状態" });
  await jp.goto(`${base}/extensions`);
  expect(await jp.isVisible('h2:has-text("内線を追加")'), "Japanese extensions page");
  // The browser itself refuses bad characters (pattern attribute); the server answers the rest.
  await jp.fill("#new-extension input[name=number]", "1002");
  await jp.click("#new-extension button[type=submit]");
  expect((await jp.textContent("#form-error")).includes("この内線番号はすでに存在します"), "Japanese validation message");
  const pw = await createExtension(jp, "1003", "佐藤");
  expect((await jp.textContent("div.once")).includes("今回だけ表示"), "Japanese password notice");
  expect(pw.length === 16, "password");
  await jp.goto(`${base}/extensions`);
  expect((await jp.textContent('tr[data-number="1003"]')).includes("佐藤"), "Japanese name stored");
  step("Japanese: outside lines");
  await jp.goto(`${base}/trunks`);
  expect(await jp.isVisible('h1:has-text("外線トランク")'), "Japanese trunks page");
  expect(await jp.isVisible('header nav a:has-text("発信ルート")'), "Japanese nav link");
  await outsideLines(jp, {
    trunk: "hikari", route: "mobile", did: "0312345679",
    t: { groups: ["基本設定", "認証", "発信者番号", "詳細設定"], registration: ["登録済み", "登録中", "登録失敗", "未登録"],
         mobile: "携帯電話", didAdded: "着信ルートを追加しました" },
  });
  await jp.goto(`${base}/extensions/1003`);
  for (const label of ["規制クラス", "外線発信者番号", "非通知で発信"]) {
    expect((await jp.textContent("#outside-calls")).includes(label), `extension form: ${label}`);
  }
  // The switch goes back to English and sticks.
  await jp.click("#lang-switch");
  expect((await jp.getAttribute("html", "lang")) === "en", "switched to English");
  await jp.goto(`${base}/calls`);
  expect((await jp.getAttribute("html", "lang")) === "en", "choice kept in a cookie");
  await ja.close();
  console.log("PASS");
} catch (e) {
  console.error(`FAIL: ${e.stack || e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
