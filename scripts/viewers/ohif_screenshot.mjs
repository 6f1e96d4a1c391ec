// Open a study in the real OHIF viewer (served by ohif_serve.py) in headless Chromium,
// load our SEG / SR series into the viewport and take screenshots.
//
//   node ohif_screenshot.mjs --url http://127.0.0.1:PORT --study UID --out DIR \
//        [--series SERIESNUMBER[@TEXT]:NAME ...]  # display set to load into the viewport, screenshot NAME.png;
//                                                  # TEXT: the thumbnail must contain it (several series share
//                                                  # a number: the lumbar SEG series are all 9001, "stack 2" picks one)
//        [--scroll N] [--settle MS]          # wheel steps after loading; wait after each step
//
// Needs playwright-core (var/viewers/browser) and Debian's chromium. Prints what the page
// logged (errors and warnings) as JSON lines, so a SEG/SR load failure in OHIF is visible.

import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const args = process.argv.slice(2);
const opt = { series: [] };
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--series') opt.series.push(args[++i]);
  else opt[a.replace(/^--/, '')] = args[++i];
}
fs.mkdirSync(opt.out, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist',
    '--enable-webgl', '--disable-dev-shm-usage'],
});
const page = await browser.newPage({ viewport: { width: 1500, height: 900 } });
const log = [];
page.on('console', msg => {
  if (['error', 'warning'].includes(msg.type())) log.push({ type: msg.type(), text: msg.text().slice(0, 400) });
});
page.on('pageerror', err => log.push({ type: 'pageerror', text: String(err).slice(0, 400) }));

const sleep = ms => new Promise(r => setTimeout(r, ms));
await page.goto(`${opt.url}/viewer?StudyInstanceUIDs=${opt.study}`, { waitUntil: 'domcontentloaded', timeout: 120000 });
await sleep(Number(opt.settle || 20000));
const skip = page.getByText('Skip all', { exact: true });
if (await skip.count()) await skip.first().click(); // the first-visit tour
await sleep(1000);
await page.screenshot({ path: path.join(opt.out, 'study.png') });

for (const spec of opt.series) {
  const [seriesSpec, name] = spec.split(':');
  const [seriesNumber, text] = seriesSpec.split('@');
  const mark = log.length;
  // study browser thumbnails carry data-series="<Series Number>"; double-click loads the
  // display set into the active viewport
  let thumbs = page.locator(`[data-series="${seriesNumber}"]`);
  if (text) thumbs = thumbs.filter({ hasText: text });
  const thumb = thumbs.first();
  const clicked = (await thumb.count()) > 0;
  if (clicked) await thumb.dblclick();
  await sleep(Number(opt.settle || 20000));
  if (opt.scroll) {
    // mouse wheel over the viewport: one image per step
    await page.mouse.move(800, 450);
    for (let k = 0; k < Number(opt.scroll); k++) {
      await page.mouse.wheel(0, 100);
      await sleep(400);
    }
    await sleep(3000);
  }
  // OHIF asks before it hydrates a SEG/SR into the source viewport; take the prompt's "Yes"
  const yes = page.getByRole('button', { name: /^(yes|load|hydrate)/i }).first();
  if (await yes.count()) {
    await yes.click();
    await sleep(Number(opt.settle || 20000));
  }
  await page.screenshot({ path: path.join(opt.out, `${name}.png`) });
  // what OHIF shows as text in the viewport (its error details when a load failed)
  // textContent: OHIF puts a failed load's error details in the viewport, not always visible
  const viewportText = await page.evaluate(() => document.body.textContent);
  fs.writeFileSync(path.join(opt.out, `${name}.txt`), viewportText);
  console.log(JSON.stringify({ series: seriesSpec, name, clicked, messages: log.slice(mark) }));
  fs.writeFileSync(path.join(opt.out, `${name}.html`), await page.content());
}
fs.writeFileSync(path.join(opt.out, 'console.json'), JSON.stringify(log, null, 1));
fs.writeFileSync(path.join(opt.out, 'dom.html'), await page.content());
await browser.close();
