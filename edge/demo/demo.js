// The demo page: a small chat over the AllSpark SDK (./sdk is the built
// clients/js package). window.demo exposes what the page received, for the
// browser test.
import { connect, validId } from './sdk/index.js';

const $ = (id) => document.getElementById(id);
const demo = { client: null, received: [], events: [] };
window.demo = demo;

function event(text) {
  demo.events.push(text);
  const li = document.createElement('li');
  li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $('events').prepend(li);
}

function showState(s) {
  const el = $('state');
  el.textContent = s;
  el.className = `state ${s}`;
}

// Session cursors survive a reload, so a returning page resumes its sessions.
const cursorKey = (node) => `allspark-demo-sessions:${node}`;
function loadCursors(node) {
  try {
    return JSON.parse(localStorage.getItem(cursorKey(node)) ?? '[]');
  } catch {
    return [];
  }
}
function saveCursors() {
  if (demo.client?.nodeId) localStorage.setItem(cursorKey(demo.client.nodeId), JSON.stringify(demo.client.sessionCursors()));
}

function nodeOfKey(key) {
  try {
    const claims = JSON.parse(atob(key.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
    return typeof claims.sub === 'string' ? claims.sub : '';
  } catch {
    return '';
  }
}

async function devToken(node, client) {
  const body = { node_id: node };
  if (client) body.client_id = client;
  const r = await fetch('/v1/dev/token', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  const j = await r.json().catch(() => ({}));
  if (r.status === 404) throw new Error('this edge does not serve dev tokens (ALLSPARK_DEV_TOKENS=true enables them); open /demo/#auth_key=… instead');
  if (!r.ok) throw new Error(j?.error?.message ?? `dev token: HTTP ${r.status}`);
  return j.auth_key;
}

function addLine(kind, text, extra = {}) {
  const li = document.createElement('li');
  li.className = kind;
  li.textContent = text;
  Object.assign(li.dataset, extra);
  $('log').append(li);
  li.scrollIntoView({ block: 'nearest' });
  return li;
}

function tick(li, outcome) {
  const t = li.querySelector('.tick') ?? li.appendChild(document.createElement('span'));
  t.className = 'tick';
  if (outcome.status === 'delivered') t.textContent = '✓✓';
  else if (outcome.status === 'stored') t.textContent = '✓';
  else t.textContent = `✗ ${outcome.code}`;
  li.dataset.status = outcome.status;
}

async function send(msg, label) {
  const li = addLine('out', label, { status: 'pending' });
  try {
    tick(li, await demo.client.send(msg));
  } catch (e) {
    tick(li, { status: 'rejected', code: e.code ?? String(e) });
  }
}

function start(authKey) {
  const node = nodeOfKey(authKey);
  $('login').hidden = true;
  $('app').hidden = false;
  $('me').textContent = node ? `you are ${node}` : '';
  const client = connect({ url: location.origin, authKey, sessions: node ? loadCursors(node) : [] });
  demo.client = client;
  client.on('state', (s) => {
    showState(s.state);
    event(`state ${s.state}${s.code ? ` (${s.code}${s.reason ? ` ${s.reason}` : ''})` : ''}`);
  });
  client.on('synced', (s) => event(`inbox synced, ${s.pending} pending`));
  client.on('session_synced', (s) => event(`session ${s.sessionId} synced to seq ${s.lastSeq}`));
  client.on('error', (e) => event(`error ${e.message}`));
  client.on('presence', (p) => {
    event(`presence ${p.memberId} ${p.online ? 'online' : 'offline'} in ${p.sessionId}`);
    renderPresence(p.sessionId);
  });
  client.on('message', (m) => {
    const text = typeof m.payload === 'object' && m.payload !== null ? m.payload.text : m.payload;
    demo.received.push({ msgId: m.msgId, from: m.srcId, session: m.destSessionId ?? null, seq: m.seq ?? null, text });
    const where = m.destSessionId ? `[${m.destSessionId}] ` : '';
    addLine('in', `${where}${m.srcId}: ${text}`, { msgId: m.msgId });
    if (m.destSessionId) saveCursors();
  });
  showState(client.state);
}

async function renderPresence(sid) {
  try {
    const members = await demo.client.members(sid);
    const ul = $('presence');
    ul.replaceChildren(...members.map((m) => {
      const li = document.createElement('li');
      li.textContent = `${m.online ? '●' : '○'} ${m.memberId}`;
      li.dataset.online = String(m.online);
      return li;
    }));
  } catch (e) {
    event(`members: ${e.code ?? e}`);
  }
}

function sessionAction(fn) {
  return async () => {
    const sid = $('session-id').value.trim();
    try {
      await fn(sid);
      saveCursors();
      await renderPresence(sid);
    } catch (e) {
      event(`session ${sid}: ${e.code ?? e}`);
    }
  };
}

$('session-create').onclick = sessionAction(async (sid) => {
  await demo.client.createSession({ sessionId: sid, allowAnonymous: true });
  event(`created ${sid}`);
});
$('session-join').onclick = sessionAction(async (sid) => {
  const r = await demo.client.joinSession(sid, { anonymous: $('session-anon').checked });
  event(`joined ${sid} as ${r.memberId}`);
});
$('session-leave').onclick = sessionAction(async (sid) => {
  await demo.client.unjoinSession(sid);
  event(`left ${sid}`);
});
$('direct-form').onsubmit = (ev) => {
  ev.preventDefault();
  const to = $('direct-to').value.trim();
  const text = $('direct-text').value;
  $('direct-text').value = '';
  send({ destId: to, payload: { text } }, `to ${to}: ${text}`);
};
$('session-send-form').onsubmit = (ev) => {
  ev.preventDefault();
  const sid = $('session-id').value.trim();
  const text = $('session-text').value;
  $('session-text').value = '';
  send({ destSessionId: sid, payload: { text } }, `[${sid}] ${text}`);
};
$('login-btn').onclick = async () => {
  const node = $('node').value.trim();
  const client = $('client').value.trim();
  $('login-error').textContent = '';
  if (!validId(node)) {
    $('login-error').textContent = 'node id: 1-128 bytes, no control characters';
    return;
  }
  try {
    start(await devToken(node, client));
  } catch (e) {
    $('login-error').textContent = e.message;
  }
};

const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get('auth_key')) start(fragment.get('auth_key'));
