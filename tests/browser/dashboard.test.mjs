// Browser test of the aiops dashboard in headless Chromium (Debian's package, driven by
// playwright-core over CDP): starts the real platform supervising two tiny services, signs in
// with the token, checks the overview, a trace waterfall across both services, exceptions and
// logs, then kills a service and watches its incident open and resolve in the page.
//
// Env: AIOPS_BIN (the aiops binary), CHROMIUM (default /usr/bin/chromium), ARTIFACTS (where
// screenshots go, default <repo>/target/browser-artifacts).
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const AIOPS = process.env.AIOPS_BIN || join(repo, 'target', 'debug', 'aiops');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = process.env.ARTIFACTS || join(repo, 'target', 'browser-artifacts');
// The platform generates its token and prints it, with a dashboard link that signs in by itself.
let TOKEN = null;
const T0 = Date.now();

mkdirSync(ARTIFACTS, { recursive: true });
const work = mkdtempSync(join(tmpdir(), 'aiops-dashboard-'));
const cleanups = [];
let step = 'start';
let failurePage = null;

function log(msg) {
  console.log(`[${((Date.now() - T0) / 1000).toFixed(1).padStart(5)} s] ${msg}`);
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

async function until(what, fn, timeoutMs = 20000, everyMs = 200) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

function startPlatform() {
  const toy = join(here, 'toy_service.py');
  const topology = `
[platform]
data_dir = ${JSON.stringify(join(work, 'data'))}
scrape_interval_ms = 1000

[gateway]
listen = "127.0.0.1:0"

[[service]]
name = "front"
command = ["python3", ${JSON.stringify(toy)}]
depends_on = ["back"]
routes = ["/work"]
env = { TOY_UPSTREAM_PATH = "/back/stock" }

[[service]]
name = "back"
command = ["python3", ${JSON.stringify(toy)}]
routes = ["/back"]

# Approval mode: the restart waits for a human, so the open incident is seen in the page.
[service.recovery]
mode = "approval"
`;
  const file = join(work, 'aiods.toml');
  writeFileSync(file, topology);
  const child = spawn(AIOPS, ['up', '-c', file, '--listen', '127.0.0.1:0'], {
    cwd: work, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'info' },
  });
  const stderr = [];
  child.stderr.on('data', (d) => {
    stderr.push(d);
    if (stderr.length > 2000) stderr.shift();
  });
  cleanups.push(async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await Promise.race([new Promise((r) => child.once('exit', r)), sleep(12000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    writeFileSync(join(ARTIFACTS, 'platform.stderr.log'), Buffer.concat(stderr));
  });
  return new Promise((resolvePromise, reject) => {
    const found = {};
    const timer = setTimeout(() => reject(new Error('aiops up printed no "listening" line in 30 s')), 30000);
    child.once('exit', (code) => reject(new Error(`aiops up exited with ${code}: ${Buffer.concat(stderr).toString().slice(-2000)}`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      let ev;
      try {
        ev = JSON.parse(line);
      } catch {
        return;
      }
      if (ev.event === 'listening') found.url = ev.url;
      if (ev.event === 'gateway') found.gateway = ev.url;
      if (ev.event === 'dashboard') found.dashboard = ev.url;
      if (ev.event === 'api_token') TOKEN = ev.token;
      if (found.url && found.gateway && found.dashboard && TOKEN) {
        clearTimeout(timer);
        resolvePromise({ child, ...found });
      }
    });
  });
}

async function main() {
  step = 'platform';
  const platform = await startPlatform();
  log(`platform at ${platform.url}, gateway at ${platform.gateway}`);
  const apiGet = async (path) => {
    const r = await fetch(`${platform.url}/api/v1/${path}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    if (!r.ok) throw new Error(`${path}: ${r.status}`);
    return r.json();
  };
  await until('both instances ready', async () => {
    const inst = (await apiGet('instances')).items;
    return inst.length === 2 && inst.every((i) => i.status === 'ready');
  });

  // Steady client load through the gateway, like users of the services.
  let loading = true;
  const load = (async () => {
    while (loading) {
      await fetch(`${platform.gateway}/work/order`).then((r) => r.arrayBuffer()).catch(() => {});
      await sleep(80);
    }
  })();
  cleanups.push(async () => {
    loading = false;
    await load;
  });

  // One exception group (twice) in the Sentry store format, linked to a trace.
  const traceForException = 'a'.repeat(31) + '1';
  for (let i = 0; i < 2; i++) {
    const r = await fetch(`${platform.url}/api/1/store/`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({
        event_id: `${'0'.repeat(31)}${i}`,
        level: 'error',
        platform: 'python',
        tags: { service: 'front' },
        contexts: { trace: { trace_id: traceForException, span_id: 'b'.repeat(16) } },
        exception: { values: [{
          type: 'StockError', value: `no stock for item ${i}`,
          stacktrace: { frames: [
            { function: 'main', filename: 'toy_service.py', lineno: 200, in_app: true },
            { function: 'reserve_stock', filename: 'stock.py', lineno: 42 + i, in_app: true },
          ] },
        }] },
      }),
    });
    assert.equal(r.status, 200, 'the Sentry store endpoint accepts the event');
  }

  step = 'browser';
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    // playwright gives every launch a fresh temporary profile (user-data-dir).
  });
  cleanups.unshift(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  failurePage = page;
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of (401|404|503)/.test(m.text())) pageErrors.push(`console: ${m.text()}`);
  });
  const shot = async (name) => {
    await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
    log(`screenshot ${name}.png`);
  };

  step = 'sign-in link';
  // The printed link carries the token in the fragment (never sent to the server); opening it
  // lands signed in, with the token moved to sessionStorage and gone from the address bar.
  assert.ok(platform.dashboard.startsWith(`${platform.url}/#token=`), `printed link: ${platform.dashboard}`);
  {
    const linkContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const linkPage = await linkContext.newPage();
    const sentToServer = [];
    linkPage.on('request', (r) => { if (r.url().split('#')[0].includes(TOKEN)) sentToServer.push(r.url()); });
    await linkPage.goto(platform.dashboard);
    await linkPage.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    assert.equal(await linkPage.evaluate(() => sessionStorage.getItem('aiops.api_token')), TOKEN, 'the link\'s token is kept in sessionStorage');
    const address = linkPage.url();
    assert.ok(!address.includes('token'), `the address bar no longer holds the token: ${address}`);
    assert.deepEqual(sentToServer, [], 'the token never goes into a URL sent to the server');
    await linkContext.close();
  }

  step = 'sign in';
  await page.goto(`${platform.url}/`);
  await page.getByLabel('API token').fill('wrong-token');
  await page.getByRole('button', { name: 'Open dashboard' }).click();
  await page.getByRole('alert').filter({ hasText: 'refused' }).waitFor();
  await page.getByLabel('API token').fill(TOKEN);
  await page.getByRole('button', { name: 'Open dashboard' }).click();
  await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('aiops.api_token')), TOKEN, 'the token is kept in sessionStorage');

  step = 'overview';
  const row = (svc) => page.locator(`table.services tbody tr[data-service="${svc}"]`);
  await row('front').locator('.chip', { hasText: 'ready' }).waitFor();
  await row('back').locator('.chip', { hasText: 'ready' }).waitFor();
  await page.locator('.allclear').waitFor();
  // Request-rate sparklines fill in from the gateway's counts (live refresh, no reload).
  await until('a request-rate sparkline with data', async () =>
    (await row('front').locator('svg.spark path.spark-line').count()) > 0, 20000);
  await shot('01-overview');

  step = 'trace waterfall';
  const trace = await until('a trace across front and back', async () =>
    (await apiGet('traces?service=front&limit=50')).items.find((t) => t.services.includes('back') && t.span_count >= 3));
  await page.goto(`${platform.url}/#/traces`);
  await page.locator(`a[href="#/traces/${trace.trace_id}"]`).first().click();
  await page.getByRole('heading', { level: 1, name: /^Trace / }).waitFor();
  const spans = page.locator('table.waterfall tbody tr.span-row');
  await until('three spans in the waterfall', async () => (await spans.count()) >= 3);
  const services = await spans.evaluateAll((rows) => rows.map((r) => r.dataset.service));
  assert.ok(services.includes('front') && services.includes('back'), `spans of both services: ${services}`);
  const bars = await page.locator('table.waterfall .bar').evaluateAll((els) => els.map((e) => e.getBoundingClientRect().width));
  assert.ok(bars.length >= 3 && bars.every((w) => w > 0), `every span has a bar: ${bars}`);
  // Expanding a span shows its attributes.
  await spans.first().getByRole('button').click();
  await page.locator('tr.span-detail dl.attrs').first().waitFor();
  assert.equal(await spans.first().getByRole('button').getAttribute('aria-expanded'), 'true');
  await shot('02-trace-waterfall');

  step = 'exceptions';
  await page.getByRole('link', { name: 'Exceptions' }).click();
  const group = page.locator('li.exc', { hasText: 'StockError' });
  await group.waitFor();
  assert.match(await group.locator('.exc-count').innerText(), /×2/);
  await group.locator('summary').click();
  await group.locator('ol.frames li', { hasText: 'reserve_stock' }).waitFor();
  const firstFrame = await group.locator('ol.frames li').first().innerText();
  assert.match(firstFrame, /reserve_stock/, 'the most recent call is listed first');
  assert.equal(await group.getByRole('link', { name: 'last trace' }).getAttribute('href'), `#/traces/${traceForException}`);
  await shot('03-exceptions');

  step = 'logs';
  await page.getByRole('link', { name: 'Logs', exact: true }).click();
  await page.locator('table.logs tbody tr').first().waitFor();
  await page.getByLabel('Service').selectOption('front');
  await page.getByLabel('Level').selectOption('info');
  await until('only front logs', async () => {
    const svcs = await page.locator('table.logs tbody td[data-label="Service"]').allInnerTexts();
    return svcs.length > 0 && svcs.every((s) => s.trim() === 'front');
  });
  assert.match(page.url(), /service=front/, 'the filter is kept in the address');
  await page.getByLabel('Trace id').fill(trace.trace_id);
  await page.getByRole('button', { name: 'Filter' }).click();
  await until('the logs of one trace', async () => {
    const links = await page.locator('table.logs tbody td[data-label="Trace"] a').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
    return links.length > 0 && links.every((h) => h === `#/traces/${trace.trace_id}`);
  });
  await shot('04-logs');

  step = 'kill';
  await page.getByRole('link', { name: 'Overview' }).click();
  await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
  const back = (await apiGet('instances')).items.find((i) => i.service === 'back');
  // The incident of this kill is the one that was not there before it: on a loaded machine a
  // slow probe of the toy service can open (and close) one of its own earlier.
  const before = new Set((await apiGet('incidents?service=back')).items.map((i) => i.id));
  log(`killing back#0 (pid ${back.pid})`);
  process.kill(back.pid, 'SIGKILL');
  const incidentId = await until('the incident of the kill', async () =>
    (await apiGet('incidents?service=back&status=open')).items.find((i) => !before.has(i.id))?.id);
  if (before.size) log(`incidents of back before the kill: ${[...before].join(', ')}`);
  const card = page.locator(`.incident-card[data-incident="${incidentId}"]`);
  await card.waitFor({ timeout: 20000 });
  await card.locator('.badge', { hasText: 'awaiting approval' }).waitFor();
  await row('back').locator('.chip-bad').waitFor();
  assert.equal((await row('back').locator('td[data-label="Live"]').innerText()).trim(), 'no');
  await shot('05-overview-incident-open');

  step = 'incident awaits approval';
  await card.getByRole('link', { name: /waiting for approval/ }).click();
  await page.getByRole('heading', { level: 2, name: 'Waiting for approval' }).waitFor();
  await page.locator('.lead .badge', { hasText: 'awaiting approval' }).waitFor();
  assert.match(await page.locator('dl.kpis').innerText(), /not recovered/);
  await shot('06-incident-awaiting-approval');
  await page.getByRole('button', { name: 'Approve and act' }).click();

  step = 'incident resolves';
  await page.locator('.lead .badge', { hasText: 'resolved' }).waitFor({ timeout: 30000 });
  const kpis = Object.fromEntries(await page.locator('dl.kpis .kpi').evaluateAll((ks) => ks.map((k) => [k.querySelector('dt').textContent, k.querySelector('dd').textContent])));
  log(`incident times: ${JSON.stringify(kpis)}`);
  assert.match(kpis.MTTD, /\d/, 'MTTD shown');
  assert.match(kpis.MTTR, /\d/, 'MTTR shown once recovered');
  const kinds = await page.locator('ol.timeline li .badge').allInnerTexts();
  for (const k of ['failure start', 'detected', 'recovered']) assert.ok(kinds.includes(k), `timeline has ${k}: ${kinds}`);
  await page.locator('section', { has: page.getByRole('heading', { name: 'Evidence' }) }).locator('tbody tr').first().waitFor();
  const actions = await page.locator('section', { has: page.getByRole('heading', { name: 'Actions' }) }).locator('tbody tr').allInnerTexts();
  assert.ok(actions.some((a) => /restart/i.test(a) && /approved by api:dashboard/i.test(a)), `a restart approved by the dashboard is listed: ${actions}`);
  assert.equal(await page.getByRole('button', { name: 'Approve and act' }).count(), 0, 'nothing left to approve');
  await shot('07-incident-resolved');

  step = 'incident list';
  await page.getByRole('navigation').getByRole('link', { name: 'Incidents' }).click();
  await page.getByRole('heading', { level: 1, name: 'Incidents' }).waitFor();
  const listed = page.locator(`tr[data-incident="${incidentId}"][data-status="resolved"]`);
  await listed.waitFor();
  assert.match(await listed.locator('td[data-label="MTTR"]').innerText(), /\d/);

  step = 'overview after recovery';
  await page.getByRole('link', { name: 'Overview' }).click();
  await page.locator('.allclear').waitFor({ timeout: 20000 });
  await row('back').locator('.chip', { hasText: 'ready' }).waitFor();
  assert.equal((await row('back').locator('td[data-label="Restarts"]').innerText()).trim(), '1');

  step = 'narrow window';
  await page.setViewportSize({ width: 420, height: 900 });
  await sleep(300);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 1, `no horizontal scrolling at 420 px (${overflow} px too wide)`);
  await shot('08-overview-narrow');
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.setViewportSize({ width: 1280, height: 900 });
  await sleep(300);
  await shot('09-overview-dark');

  step = 'accessibility basics';
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, button')]
    .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
    .map((el) => el.outerHTML.slice(0, 80)));
  assert.deepEqual(unlabelled, [], 'every control has a name');
  assert.deepEqual(pageErrors, [], 'no script errors in the page');
}

let failed = false;
try {
  await main();
  log('PASS dashboard browser test');
} catch (e) {
  failed = true;
  console.error(`FAIL at step "${step}": ${e.stack || e}`);
  if (failurePage) {
    await failurePage.screenshot({ path: join(ARTIFACTS, 'failure.png'), fullPage: true }).catch(() => {});
    console.error(`screenshot of the page at the failure: ${join(ARTIFACTS, 'failure.png')}`);
  }
} finally {
  for (const c of cleanups) {
    try {
      await c();
    } catch (e) {
      console.error(`cleanup: ${e.message}`);
    }
  }
  rmSync(work, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
