// Browser test of the report pages and the dashboard's "today vs last week" panel: Debian's
// chromium driven by playwright-core, in English and in Japanese. Each chart is screenshotted
// (PNG files in SHOTS) and the screenshot itself is checked for coloured bar pixels, so an
// empty or unrendered chart fails. Japanese is checked in the DOM (no CJK fonts here).
//
// Run by crates/denwa/tests/report_browser.rs, which starts `denwa serve` with known call
// records. Env: DENWA_URL, DENWA_ADMIN, DENWA_PASSWORD, FROM, TO, SHOTS, CHROMIUM.
// Exit code 0 means every step passed.

import { expect, launch } from "./lib.mjs";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const { DENWA_URL: base, DENWA_ADMIN: admin, DENWA_PASSWORD: password, FROM, TO, SHOTS } = process.env;
if (!base || !admin || !password || !FROM || !TO || !SHOTS) {
  console.error("DENWA_URL, DENWA_ADMIN, DENWA_PASSWORD, FROM, TO and SHOTS must be set");
  process.exit(2);
}

const browser = await launch();

// Counts the strongly coloured pixels of a PNG (bars are saturated; grid, text and the grey
// last-week bars are not), decoded by the browser itself on a blank page (no CSP there).
let lab;
async function colouredPixels(png) {
  return lab.evaluate(async (b64) => {
    const img = new Image();
    img.src = "data:image/png;base64," + b64;
    await img.decode();
    const c = document.createElement("canvas");
    c.width = img.width;
    c.height = img.height;
    const g = c.getContext("2d");
    g.drawImage(img, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) {
      const hi = Math.max(d[i], d[i + 1], d[i + 2]);
      const lo = Math.min(d[i], d[i + 1], d[i + 2]);
      if (hi - lo > 60) n++;
    }
    return n;
  }, png.toString("base64"));
}

async function checkChart(page, id, name) {
  const chart = page.locator(`svg#${id}`);
  await chart.waitFor();
  const bars = await page.$$eval(`svg#${id} rect.bar`, (rs) => rs.filter((r) => Number(r.getAttribute("height")) > 0).length);
  expect(bars > 0, `${name}: bars with a height in the DOM`);
  const png = await chart.screenshot();
  writeFileSync(join(SHOTS, `${name}.png`), png);
  const n = await colouredPixels(png);
  expect(n > 200, `${name}: the screenshot shows coloured bars (${n} pixels)`);
  console.log(`STEP ${name}: ${bars} bars, ${n} coloured pixels`);
}

let failed = false;
try {
  lab = await browser.newPage();
  await lab.setContent("<html><body></body></html>");
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  await page.goto(`${base}/login`);
  await page.fill("input[name=username]", admin);
  await page.fill("input[name=password]", password);
  await page.click('button:has-text("Sign in")');
  await page.waitForSelector('h2:has-text("Node status")');

  const query = `from=${FROM}&to=${TO}&period=day`;
  for (const [lang, texts] of [
    ["en", ["Reports", "Busiest hours", "Today vs. the same weekday last week", "Answered"]],
    ["ja", ["レポート", "時間帯別", "本日と先週同曜日の比較", "応答"]],
  ]) {
    await page.goto(`${base}/lang?set=${lang}&back=${encodeURIComponent(`/reports?${query}`)}`);
    expect((await page.getAttribute("html", "lang")) === lang, `page language ${lang}`);
    const body = await page.textContent("body");
    for (const t of texts) expect(body.includes(t), `${lang}: "${t}" on the reports page`);
    await checkChart(page, "report-chart", `reports-${lang}-days`);
    await checkChart(page, "hours-chart", `reports-${lang}-hours`);
    await checkChart(page, "today-chart", `reports-${lang}-today`);
    await page.screenshot({ path: join(SHOTS, `reports-${lang}-page.png`), fullPage: true });
    // The table has the totals of the range.
    expect((await page.$$("table.report tbody tr")).length > 0, `${lang}: the report table has rows`);

    await page.goto(`${base}/`);
    await page.waitForSelector("#dash-today");
    await checkChart(page, "today-chart", `dashboard-${lang}-today`);
  }
  // The CSV export of the same range.
  const csv = await page.evaluate(async (u) => (await fetch(u)).text(), `/reports.csv?${query}`);
  expect(csv.split("\n").length > 2, "the CSV has rows");
  console.log("STEP done");
} catch (e) {
  console.error(`FAILED: ${e.stack || e}`);
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
