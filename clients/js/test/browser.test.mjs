// Browser test: the /demo page in real Chromium (Debian's /usr/bin/chromium
// driven by playwright-core), against a real edge on loopback.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { Edge, mintKey, waitFor, freePort, repoRoot } from './harness.mjs';

const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const artifacts = join(repoRoot, 'clients', 'js', 'test-artifacts');

/** staticSite serves a page that uses the SDK from another origin (loopback). */
async function staticSite(port, html) {
  const sdkDir = join(repoRoot, 'edge', 'demo', 'sdk');
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    if (path === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html' }).end(html);
      return;
    }
    const m = /^\/sdk\/([a-z]+\.js)$/.exec(path);
    if (m && existsSync(join(sdkDir, m[1]))) {
      res.writeHead(200, { 'Content-Type': 'text/javascript' }).end(readFileSync(join(sdkDir, m[1])));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(r)) };
}

let edge, browser, allowedSite, deniedSite;

before(async () => {
  const allowedPort = await freePort();
  edge = await new Edge({ name: 'browser-edge' }).init();
  // With a list configured the edge allows only the listed origins, so the
  // edge's own origin (the /demo page) is listed too.
  edge.extraEnv.ALLSPARK_ALLOWED_ORIGINS = `http://127.0.0.1:${allowedPort},${edge.url}`;
  await edge.start();
  const page = `<!doctype html><script type="module">
    import { connect } from '/sdk/index.js';
    window.sdkConnect = connect;
    window.ready = true;
  </script>`;
  allowedSite = await staticSite(allowedPort, page);
  deniedSite = await staticSite(await freePort(), page);
  browser = await chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
});

after(async () => {
  await browser?.close();
  await allowedSite?.close();
  await deniedSite?.close();
  await edge?.stop();
  edge?.cleanup();
});

async function openDemo(node, storageState) {
  const context = await browser.newContext(storageState ? { storageState } : {});
  const page = await context.newPage();
  page.on('pageerror', (e) => console.log(`[${node}] page error: ${e.message}`));
  await page.goto(`${edge.url}/demo/#auth_key=${mintKey(node)}`);
  await waitForState(page, 'connected');
  return { context, page };
}

async function waitForState(page, state, timeout = 60000) {
  await page.waitForFunction((s) => document.getElementById('state').textContent === s, state, { timeout });
}

const received = (page) => page.evaluate(() => window.demo.received);

async function sendDirect(page, to, text) {
  await page.fill('#direct-to', to);
  await page.fill('#direct-text', text);
  await page.click('#direct-form button');
}

async function sendSession(page, sid, text) {
  await page.fill('#session-id', sid);
  await page.fill('#session-text', text);
  await page.click('#session-send-form button');
}

/** outcome waits until the page's outgoing line for label has a final tick. */
async function outcome(page, label) {
  const h = await page.waitForFunction(
    (l) => {
      const li = [...document.querySelectorAll('#log li.out')].find((x) => x.firstChild.textContent === l);
      return li && li.dataset.status !== 'pending' ? li.dataset.status : null;
    },
    label,
    { timeout: 60000 },
  );
  return h.jsonValue();
}

function texts(list, session) {
  return list.filter((m) => m.session === session).map((m) => m.text);
}

test('two pages chat 1:1 and in a session, one goes away and comes back, the edge dies under them: in order, each once', { timeout: 600000 }, async () => {
  const alice = await openDemo('alice-web');
  let bob = await openDemo('bob-web');

  // A session: alice creates it, bob joins through the page.
  await alice.page.fill('#session-id', 'room-web');
  await alice.page.click('#session-create');
  await bob.page.fill('#session-id', 'room-web');
  await bob.page.click('#session-join');
  await alice.page.waitForFunction(() => window.demo.events.some((e) => e.includes('presence bob-web online')));
  await bob.page.waitForFunction(() => document.querySelectorAll('#presence li[data-online="true"]').length === 2);

  // Both online: 1:1 delivered, session stored (history) and received live.
  await sendDirect(alice.page, 'bob-web', 'd0');
  assert.equal(await outcome(alice.page, 'to bob-web: d0'), 'delivered');
  await sendSession(bob.page, 'room-web', 's0');
  assert.equal(await outcome(bob.page, '[room-web] s0'), 'stored');
  await waitFor('alice gets s0', async () => texts(await received(alice.page), 'room-web').includes('s0'));

  // bob goes away (his browser closes, keeping its storage); alice keeps sending.
  const bobStorage = await bob.context.storageState();
  await bob.context.close();
  await alice.page.waitForFunction(() => window.demo.events.some((e) => e.includes('presence bob-web offline')));
  for (let i = 1; i <= 5; i++) {
    await sendDirect(alice.page, 'bob-web', `d${i}`);
    assert.equal(await outcome(alice.page, `to bob-web: d${i}`), 'stored');
    await sendSession(alice.page, 'room-web', `s${i}`);
    assert.equal(await outcome(alice.page, `[room-web] s${i}`), 'stored');
  }

  // bob comes back: the inbox replays d1..d5, the session syncs s1..s5.
  bob = await openDemo('bob-web', bobStorage);
  await waitFor('bob gets everything he missed', async () => {
    const r = await received(bob.page);
    return texts(r, null).length >= 5 && texts(r, 'room-web').length >= 6;
  }, 60000);
  // Barrier: one more of each, live.
  await sendDirect(alice.page, 'bob-web', 'b1');
  await sendSession(alice.page, 'room-web', 'sb1');
  await waitFor('bob gets the barriers', async () => {
    const r = await received(bob.page);
    return texts(r, null).includes('b1') && texts(r, 'room-web').includes('sb1');
  }, 60000);
  let r = await received(bob.page);
  assert.deepEqual(texts(r, null), ['d1', 'd2', 'd3', 'd4', 'd5', 'b1']);
  // The returning page syncs the session from the cursor it kept, which is
  // before bob's own s0: a fresh page shows it from the history, once.
  assert.deepEqual(texts(r, 'room-web'), ['s0', 's1', 's2', 's3', 's4', 's5', 'sb1']);

  // The edge is killed and restarted under the open pages.
  await edge.kill();
  await Promise.all([waitForState(alice.page, 'reconnecting'), waitForState(bob.page, 'reconnecting')]);
  // alice writes while the edge is down: the SDK holds the sends until it is back.
  await sendDirect(alice.page, 'bob-web', 'd6');
  await sendSession(alice.page, 'room-web', 's6');
  await edge.start();
  await Promise.all([waitForState(alice.page, 'connected'), waitForState(bob.page, 'connected')]);
  for (const i of [7, 8]) {
    await sendDirect(alice.page, 'bob-web', `d${i}`);
    await sendSession(alice.page, 'room-web', `s${i}`);
  }
  for (const label of ['to bob-web: d6', '[room-web] s6', 'to bob-web: d8', '[room-web] s8']) {
    assert.notEqual(await outcome(alice.page, label), 'rejected', label);
  }
  await waitFor('bob gets what was sent across the restart', async () => {
    const x = await received(bob.page);
    return texts(x, null).includes('d8') && texts(x, 'room-web').includes('s8');
  }, 90000);
  // bob answers in the session; alice sees it (her session resumed too).
  await sendSession(bob.page, 'room-web', 'bye');
  await waitFor('alice gets bye', async () => texts(await received(alice.page), 'room-web').includes('bye'), 60000);

  r = await received(bob.page);
  assert.deepEqual(texts(r, null), ['d1', 'd2', 'd3', 'd4', 'd5', 'b1', 'd6', 'd7', 'd8']);
  assert.deepEqual(texts(r, 'room-web'), ['s0', 's1', 's2', 's3', 's4', 's5', 'sb1', 's6', 's7', 's8']);
  const ids = r.map((m) => m.msgId);
  assert.equal(new Set(ids).size, ids.length, 'a msg_id shown twice');
  const a = await received(alice.page);
  assert.deepEqual(texts(a, 'room-web'), ['s0', 'bye']);

  mkdirSync(artifacts, { recursive: true });
  await bob.page.screenshot({ path: join(artifacts, 'demo-bob-final.png'), fullPage: true });
  await alice.page.screenshot({ path: join(artifacts, 'demo-alice-final.png'), fullPage: true });
  await alice.context.close();
  await bob.context.close();
});

test('an origin in ALLSPARK_ALLOWED_ORIGINS connects with the SDK; another origin is refused on HTTP and on the websocket', { timeout: 120000 }, async () => {
  const context = await browser.newContext();
  const page = await context.newPage();

  await page.goto(allowedSite.url);
  await page.waitForFunction(() => window.ready === true);
  const ok = await page.evaluate(
    ({ url, key }) =>
      new Promise((resolve) => {
        const c = window.sdkConnect({ url, authKey: key });
        c.on('synced', () => {
          c.close();
          resolve('synced');
        });
        c.on('error', (e) => resolve(`error ${e.code}`));
      }),
    { url: edge.url, key: mintKey('cross-ok') },
  );
  assert.equal(ok, 'synced');

  await page.goto(deniedSite.url);
  await page.waitForFunction(() => window.ready === true);
  // HTTP: the browser blocks the answer (no CORS headers for this origin).
  const httpResult = await page.evaluate(async ({ url, key }) => {
    try {
      const r = await fetch(`${url}/v1/connect`, { headers: { Authorization: `Bearer ${key}` } });
      return `status ${r.status}`;
    } catch (e) {
      return `blocked ${e.name}`;
    }
  }, { url: edge.url, key: mintKey('cross-no') });
  assert.equal(httpResult, 'blocked TypeError');
  // Websocket: even with a valid validation token the upgrade is refused (403).
  const info = await (await fetch(`${edge.url}/v1/connect`, { headers: { Authorization: `Bearer ${mintKey('cross-no')}` } })).json();
  const wsResult = await page.evaluate(
    (u) =>
      new Promise((resolve) => {
        const ws = new WebSocket(u);
        ws.onopen = () => resolve('open');
        ws.onclose = (e) => resolve(`closed ${e.code}`);
      }),
    `${info.edge.ws_url}?validation_token=${encodeURIComponent(info.validation_token)}`,
  );
  assert.equal(wsResult, 'closed 1006');
  // The same token from a page on the allowed origin opens (so the refusal was the origin).
  await page.goto(allowedSite.url);
  const allowedWs = await page.evaluate(
    (u) =>
      new Promise((resolve) => {
        const ws = new WebSocket(u);
        ws.onopen = () => {
          ws.close();
          resolve('open');
        };
        ws.onclose = (e) => resolve(`closed ${e.code}`);
      }),
    `${info.edge.ws_url}?validation_token=${encodeURIComponent(info.validation_token)}`,
  );
  assert.equal(allowedWs, 'open');
  // The SDK on the refused origin reports an error and keeps retrying, never connecting.
  await page.goto(deniedSite.url);
  await page.waitForFunction(() => window.ready === true);
  const sdkDenied = await page.evaluate(
    ({ url, key }) =>
      new Promise((resolve) => {
        const c = window.sdkConnect({ url, authKey: key });
        c.on('error', (e) => {
          c.close();
          resolve(`error ${e.code}`);
        });
        c.on('synced', () => resolve('synced'));
      }),
    { url: edge.url, key: mintKey('cross-no') },
  );
  assert.equal(sdkDenied, 'error unavailable');
  await context.close();
});

test('the demo page gets a dev token for a picked node id in dev mode, and says how to get a key otherwise', { timeout: 120000 }, async () => {
  const dev = await (await new Edge({ name: 'dev-edge', devMode: true }).init()).start();
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${dev.url}/demo/`);
    await page.fill('#node', 'picked-node');
    await page.fill('#client', 'picked-client');
    await page.click('#login-btn');
    await waitForState(page, 'connected');
    assert.equal(await page.textContent('#me'), 'you are picked-node');
    assert.equal(await page.evaluate(() => window.demo.client.clientId), 'picked-client');
    // An invalid node id is refused before asking the edge.
    const other = await context.newPage();
    await other.goto(`${dev.url}/demo/`);
    await other.click('#login-btn');
    assert.match(await other.textContent('#login-error'), /node id/);
    // An edge with a configured secret serves no dev tokens: the page says what to do.
    await other.goto(`${edge.url}/demo/`);
    await other.fill('#node', 'someone');
    await other.click('#login-btn');
    await other.waitForFunction(() => document.getElementById('login-error').textContent !== '');
    assert.match(await other.textContent('#login-error'), /ALLSPARK_DEV_TOKENS/);
  } finally {
    await context.close();
    await dev.stop();
    dev.cleanup();
  }
});
