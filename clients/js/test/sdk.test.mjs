// SDK tests against a real edge (cmd/edge built once, embedded NATS with
// JetStream in a temp dir, loopback only).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { connect, AllSparkError, Backoff, SeenSet, validId, outgoingFrame } from '../dist/index.js';
import { Edge, mintKey, waitFor, nextEvent } from './harness.mjs';

const clients = [];
after(() => {
  for (const c of clients) c.close(); // a failed test must not leave a client reconnecting
});
function track(c) {
  clients.push(c);
  return c;
}
function open(edge, node, opts = {}) {
  const c = connect({ url: edge.url, authKey: mintKey(node, opts.keyOpts), backoff: { initialMs: 50, maxMs: 1000 }, ...opts });
  clients.push(c);
  return c;
}
const synced = (c) => nextEvent(c, 'synced');
async function openSynced(edge, node, opts) {
  const c = open(edge, node, { lazy: true, ...opts });
  const s = synced(c);
  c.open();
  await s;
  return c;
}
function collect(c) {
  const got = [];
  c.on('message', (m) => {
    got.push(m);
  });
  return got;
}

/** rawFrame sends one frame over a plain websocket and returns the first answer. */
async function rawAnswer(edge, node, frame) {
  const r = await fetch(`${edge.url}/v1/connect`, { headers: { Authorization: `Bearer ${mintKey(node)}` } });
  const info = await r.json();
  const ws = new WebSocket(`${info.edge.ws_url}?validation_token=${encodeURIComponent(info.validation_token)}`);
  const answers = [];
  ws.on('message', (d) => answers.push(JSON.parse(String(d))));
  await new Promise((res, rej) => ws.once('open', res).once('error', rej));
  ws.send(JSON.stringify(frame));
  const a = await waitFor('an answer to the raw frame', () => answers.find((x) => x.type === 'error' || x.type === 'sent'), 10000);
  ws.close();
  return a;
}

/** pendingOf connects as node without acking and returns sync_done's pending count. */
async function pendingOf(edge, node) {
  const r = await fetch(`${edge.url}/v1/connect`, { headers: { Authorization: `Bearer ${mintKey(node)}` } });
  const info = await r.json();
  const ws = new WebSocket(`${info.edge.ws_url}?validation_token=${encodeURIComponent(info.validation_token)}`);
  let pending;
  ws.on('message', (d) => {
    const f = JSON.parse(String(d));
    if (f.type === 'sync_done' && f.session_id === undefined) pending = f.pending;
  });
  await waitFor('sync_done on a raw connection', () => pending !== undefined, 10000);
  ws.close();
  return pending;
}

describe('against one edge', () => {
  let edge;
  before(async () => {
    edge = await (await new Edge({ name: 'sdk-edge' }).init()).start();
  });
  after(async () => {
    for (const c of clients) c.close();
    await edge.stop();
    edge.cleanup();
  });

  test('connect: states in order, synced, 1:1 delivered with every field and auto-ack', async () => {
    const states = [];
    const bob = open(edge, 'bob-1', { lazy: true, keyOpts: { client: 'bob' } });
    bob.on('state', (s) => states.push(s.state));
    const got = collect(bob);
    const s = synced(bob);
    bob.open();
    assert.deepEqual(await s, { pending: 0 });
    assert.deepEqual(states, ['connecting', 'connected']);
    assert.equal(bob.nodeId, 'bob-1');
    assert.equal(bob.clientId, 'bob');
    const alice = await openSynced(edge, 'alice-1', { keyOpts: { client: 'alice' } });
    const sentEvents = [];
    alice.on('sent', (f) => sentEvents.push(f));
    const out = await alice.send({ destId: 'bob-1', payload: { text: 'hi' }, payload1: 1, payload2: 'two' });
    assert.equal(out.status, 'delivered'); // delivered means bob's auto-ack reached the edge
    assert.ok(out.msgId);
    assert.equal(got.length, 1);
    const m = got[0];
    assert.equal(m.msgId, out.msgId);
    assert.equal(m.srcId, 'alice-1');
    assert.equal(m.srcClientId, 'alice');
    assert.equal(m.destId, 'bob-1');
    assert.deepEqual(m.payload, { text: 'hi' });
    assert.equal(m.payload1, 1);
    assert.equal(m.payload2, 'two');
    assert.equal(typeof m.ts, 'number');
    assert.equal(sentEvents.length, 1);
    assert.equal(sentEvents[0].id, out.id);
    // dest_client_id reaches the client's device.
    const out2 = await alice.send({ destClientId: 'bob', payload: 'to the client' });
    assert.equal(out2.status, 'delivered');
    await waitFor('the client message', () => got.length === 2);
    assert.equal(got[1].destClientId, 'bob');
  });

  test('an async handler is awaited before the ack; a late ack means stored, and the replay is dropped', async () => {
    const bob = await openSynced(edge, 'bob-async');
    let release;
    const gate = new Promise((r) => (release = r));
    const handled = [];
    bob.on('message', async (m) => {
      await gate;
      handled.push(m.msgId);
    });
    const dups = [];
    bob.on('duplicate', (d) => dups.push(d.msgId));
    const alice = await openSynced(edge, 'alice-async');
    // The handler holds the ack past ALLSPARK_ACK_TIMEOUT (2 s): the edge stores it.
    const out = await alice.send({ destId: 'bob-async', payload: 'slow' });
    assert.equal(out.status, 'stored');
    assert.equal(handled.length, 0, 'not acked before the handler returned');
    release();
    await waitFor('the slow handler', () => handled.length === 1);
    // The stored copy comes again (stored while bob is connected, so on this
    // connection); the SDK acks and drops it.
    await waitFor('the stored copy dropped as a duplicate', () => dups.includes(out.msgId));
    assert.deepEqual(handled, [out.msgId]);
    await waitFor('the inbox emptied by the duplicate ack', async () => (await pendingOf(edge, 'bob-async')) === 0);
  });

  test('dedup across reconnect: a message handled but not acked (link lost) is replayed and dropped', async () => {
    const bob = await openSynced(edge, 'bob-dedup');
    const got = [];
    let cut = true;
    bob.on('message', (m) => {
      got.push(m.msgId);
      if (cut) {
        cut = false;
        // The link dies after the app handled it and before the ack is written.
        bob.ws.close(4000, 'test cut');
      }
    });
    const dups = [];
    bob.on('duplicate', (d) => dups.push(d.msgId));
    const alice = await openSynced(edge, 'alice-dedup');
    const out = await alice.send({ destId: 'bob-dedup', payload: 'once' });
    assert.equal(out.status, 'stored', 'not acked, so stored');
    await waitFor('the replayed copy', () => dups.includes(out.msgId));
    // Barrier: a later message, then count what the app got before it.
    const out2 = await alice.send({ destId: 'bob-dedup', payload: 'barrier' });
    assert.equal(out2.status, 'delivered');
    await waitFor('the barrier', () => got.includes(out2.msgId));
    assert.deepEqual(got, [out.msgId, out2.msgId], 'each message handed to the app once');
    await waitFor('the inbox emptied by the duplicate ack', async () => (await pendingOf(edge, 'bob-dedup')) === 0);
  });

  test('offline recipient: stored, then replayed in order before synced', async () => {
    const alice = await openSynced(edge, 'alice-off');
    const outs = [];
    for (let i = 0; i < 5; i++) outs.push(await alice.send({ destId: 'carol-off', payload: i }));
    for (const o of outs) assert.equal(o.status, 'stored');
    const carol = open(edge, 'carol-off', { lazy: true });
    const order = [];
    carol.on('message', (m) => order.push(m.payload));
    carol.on('synced', (e) => order.push(`synced:${e.pending}`));
    carol.open();
    await waitFor('carol synced', () => order.includes('synced:5'));
    assert.deepEqual(order, [0, 1, 2, 3, 4, 'synced:5']);
  });

  test('send to an invalid id is rejected locally with the code the edge gives', async () => {
    const alice = await openSynced(edge, 'alice-bad');
    const cases = [
      [{ destId: '' }, { dest_id: '' }],
      [{ destId: 'x'.repeat(129) }, { dest_id: 'x'.repeat(129) }],
      [{ destId: 'a\u0001b' }, { dest_id: 'a\u0001b' }],
      [{ destClientId: 'é'.repeat(65) }, { dest_client_id: 'é'.repeat(65) }], // 130 bytes
      [{ destSessionId: 's', memberId: '' }, { dest_session_id: 's', member_id: '' }],
      [{ destId: 'a', destClientId: 'b' }, { dest_id: 'a', dest_client_id: 'b' }],
      [{ destId: 'a', memberId: 'm' }, { dest_id: 'a', member_id: 'm' }],
    ];
    for (const [msg, raw] of cases) {
      const local = await alice.send(msg).then(
        () => assert.fail('accepted ' + JSON.stringify(msg)),
        (e) => e,
      );
      assert.ok(local instanceof AllSparkError);
      const remote = await rawAnswer(edge, 'raw-bad', { id: 'x', ...raw });
      const remoteCode = remote.type === 'error' ? remote.code : remote.error?.code;
      assert.equal(local.code, remoteCode, `${JSON.stringify(msg)}: local ${local.code}, edge ${remoteCode}`);
    }
    assert.equal(validId('ok'), true);
    assert.equal(validId('\ud800'), false);
    assert.deepEqual(outgoingFrame({ destId: 'n', payload: null }), { dest_id: 'n', payload: null });
  });

  test('rejected by the edge: the promise rejects with the edge code', async () => {
    const alice = await openSynced(edge, 'alice-rej');
    const e = await alice.send({ destClientId: 'nobody-has-this-client', payload: 1 }).then(
      () => assert.fail('accepted'),
      (err) => err,
    );
    assert.equal(e.code, 'offline');
    const e2 = await alice.send({ destSessionId: 'no-such-session', payload: 1 }).then(
      () => assert.fail('accepted'),
      (err) => err,
    );
    assert.equal(e2.code, 'not_found');
  });

  test('manual ack mode: an unacked message is stored and comes back; ack() settles it', async () => {
    const alice = await openSynced(edge, 'alice-man');
    const bob = await openSynced(edge, 'bob-man', { ackMode: 'manual' });
    const got = collect(bob);
    const out = await alice.send({ destId: 'bob-man', payload: 'm' });
    assert.equal(out.status, 'stored', 'not acked within the ack timeout');
    assert.ok(got.length >= 1);
    // Stored while bob is connected: the edge delivers the stored copy on
    // this connection, and the SDK hands it over again (it was never acked).
    await waitFor('the unacked message again', () => got.length >= 2);
    assert.ok(got.every((m) => m.msgId === out.msgId));
    got[got.length - 1].ack();
    await waitFor('the inbox emptied by ack()', async () => (await pendingOf(edge, 'bob-man')) === 0);
  });

  test('a handler that throws: error event, the loop goes on, the message is not acked', async () => {
    const bob = await openSynced(edge, 'bob-throw');
    const errors = [];
    bob.on('error', (e) => errors.push(e));
    const got = [];
    bob.on('message', (m) => {
      got.push(m.payload);
      if (m.payload === 'boom') throw new Error('app bug');
    });
    const alice = await openSynced(edge, 'alice-throw');
    const o1 = await alice.send({ destId: 'bob-throw', payload: 'boom' });
    const o2 = await alice.send({ destId: 'bob-throw', payload: 'fine' });
    assert.equal(o1.status, 'stored');
    assert.equal(o2.status, 'delivered');
    assert.deepEqual(got.filter((p) => p === 'fine'), ['fine']);
    // Not acked, so stored, and redelivered (here on the same connection).
    await waitFor('boom delivered again', () => got.filter((p) => p === 'boom').length >= 2);
    assert.ok(errors.some((e) => e.code === 'handler_failed'));
    assert.equal(bob.state, 'connected');
  });

  test('sessions: create, anonymous join, presence, session messages with seq, members, unjoin', async () => {
    const alice = await openSynced(edge, 'alice-s');
    const bob = await openSynced(edge, 'bob-s');
    const { sessionId } = await alice.createSession({ sessionId: 'room-js-1', allowAnonymous: true });
    assert.equal(sessionId, 'room-js-1');
    const presence = [];
    alice.on('presence', (p) => presence.push(p));
    const { memberId } = await bob.joinSession('room-js-1', { anonymous: true });
    assert.match(memberId, /^anon-/);
    // Named members have presence; anonymous ones have none (PROTOCOL.md).
    const carol = await openSynced(edge, 'carol-s');
    await carol.joinSession('room-js-1');
    await waitFor('presence of the named member', () => presence.some((p) => p.memberId === 'carol-s' && p.online));
    const members = await alice.members('room-js-1');
    assert.deepEqual(members.map((m) => m.memberId).sort(), ['alice-s', 'carol-s', memberId].sort());
    assert.ok(members.filter((m) => m.memberId !== memberId).every((m) => m.online));
    const bobGot = collect(bob);
    const aliceGot = collect(alice);
    const o = await alice.send({ destSessionId: 'room-js-1', payload: 'hello room' });
    assert.equal(o.status, 'stored');
    assert.ok(o.seq > 0);
    await waitFor('bob gets the session message', () => bobGot.length === 1);
    assert.equal(bobGot[0].seq, o.seq);
    assert.equal(bobGot[0].srcId, 'alice-s');
    assert.equal(bobGot[0].destSessionId, 'room-js-1');
    const o2 = await bob.send({ destSessionId: 'room-js-1', payload: 'from anon' });
    await waitFor('alice gets the anonymous message', () => aliceGot.length === 1);
    assert.equal(aliceGot[0].srcId, memberId);
    assert.equal(aliceGot[0].srcClientId, undefined);
    assert.equal(aliceGot[0].seq, o2.seq);
    // One member, by alias.
    // To an anonymous member always 'stored' (through its inbox): the answer
    // must not tell whether the node behind the alias is connected.
    const o3 = await alice.send({ destSessionId: 'room-js-1', memberId, payload: 'just you' });
    assert.equal(o3.status, 'stored');
    await waitFor('the member message', () => bobGot.length === 2);
    assert.equal(bobGot[1].memberId, memberId);
    // Presence offline when carol goes; never any for the anonymous bob.
    carol.close();
    bob.close();
    await waitFor('carol offline', () => presence.some((p) => p.memberId === 'carol-s' && !p.online));
    assert.ok(!presence.some((p) => p.memberId === memberId), 'presence revealed the anonymous member');
    // Unjoin: alice is no longer a member.
    await alice.unjoinSession('room-js-1');
    const e = await alice.send({ destSessionId: 'room-js-1', payload: 'x' }).then(
      () => assert.fail('accepted'),
      (err) => err,
    );
    assert.equal(e.code, 'not_member');
    const e2 = await alice.getSession('room-js-1').then(
      () => assert.fail('answered'),
      (err) => err,
    );
    assert.equal(e2.code, 'not_member');
    assert.equal(e2.status, 403);
  });

  test('session resume: after a reconnect the client syncs from its last seq, paging, in order, once', async () => {
    const alice = await openSynced(edge, 'alice-r');
    await alice.createSession({ sessionId: 'room-js-2' });
    const carol = await openSynced(edge, 'carol-r', { syncLimit: 2 });
    await carol.joinSession('room-js-2');
    const got = collect(carol);
    const first = await alice.send({ destSessionId: 'room-js-2', payload: 0 });
    await waitFor('the live message', () => got.length === 1);
    assert.deepEqual(carol.sessionCursors(), [{ sessionId: 'room-js-2', afterSeq: first.seq, memberId: 'carol-r' }]);
    // carol's app goes away; alice keeps talking.
    const cursors = carol.sessionCursors();
    carol.close();
    const seqs = [];
    for (let i = 1; i <= 5; i++) seqs.push((await alice.send({ destSessionId: 'room-js-2', payload: i })).seq);
    // A new app instance resumes from the persisted cursor.
    const carol2 = open(edge, 'carol-r', { lazy: true, sessions: cursors, syncLimit: 2 });
    const got2 = collect(carol2);
    const done = nextEvent(carol2, 'session_synced');
    carol2.open();
    const ev = await done;
    assert.equal(ev.sessionId, 'room-js-2');
    assert.equal(ev.lastSeq, seqs[4]);
    assert.deepEqual(got2.map((m) => m.payload), [1, 2, 3, 4, 5]);
    assert.deepEqual(got2.map((m) => m.seq), seqs);
    // The same client reconnecting (link cut) resyncs only what it missed.
    const down = nextEvent(carol2, 'state', (st) => st.state === 'reconnecting');
    carol2.ws.close(4000, 'cut');
    await down;
    const more = (await alice.send({ destSessionId: 'room-js-2', payload: 6 })).seq;
    await waitFor('the missed message after the resync', () => got2.some((m) => m.seq === more));
    assert.deepEqual(got2.map((m) => m.payload), [1, 2, 3, 4, 5, 6]);
    // The read cursor reached the edge.
    await waitFor('acked_seq', async () => (await carol2.getSession('room-js-2')).ackedSeq === more);
  });

  test('push tokens: register, bad token answered with bad_request, unregister', async () => {
    const alice = await openSynced(edge, 'alice-push');
    await alice.registerPushToken('fcm', 'token-abc');
    const e = await alice.registerPushToken('fcm', 'bad token').then(
      () => assert.fail('accepted'),
      (err) => err,
    );
    assert.equal(e.code, 'bad_request');
    assert.equal(e.status, 400);
    await alice.unregisterPushToken('token-abc');
  });

  test('an expired auth_key: disconnected, no retry loop, onAuthExpired supplies a new key', async () => {
    let asked = 0;
    const errors = [];
    const c = open(edge, 'dave-auth', {
      lazy: true,
      keyOpts: { ttlSec: -10 },
      onAuthExpired: () => {
        asked++;
        return mintKey('dave-auth');
      },
    });
    c.on('error', (e) => errors.push(e.code));
    const s = synced(c);
    c.open();
    await s;
    assert.equal(asked, 1);
    assert.ok(errors.includes('unauthorized'));
    // Without a callback it waits for setAuthKey.
    const d = open(edge, 'dave-auth2', { lazy: true, keyOpts: { ttlSec: -10 } });
    const disc = nextEvent(d, 'state', (st) => st.state === 'disconnected');
    d.open();
    await disc;
    const s2 = synced(d);
    d.setAuthKey(mintKey('dave-auth2'));
    await s2;
    assert.equal(d.state, 'connected');
  });
});

describe('units', () => {
  test('backoff: full jitter under a growing, capped ceiling', () => {
    const hi = new Backoff({ initialMs: 100, maxMs: 1000 }, () => 1);
    assert.deepEqual([0, 1, 2, 3, 4, 5].map(() => hi.next()), [100, 200, 400, 800, 1000, 1000]);
    const lo = new Backoff({ initialMs: 100 }, () => 0);
    assert.equal(lo.next(), 0);
    hi.reset();
    assert.equal(hi.next(), 100);
  });

  test('dedup memory is bounded: the oldest id is forgotten first', () => {
    const s = new SeenSet(3);
    for (const id of ['a', 'b', 'c', 'd']) s.add(id);
    assert.equal(s.size, 3);
    assert.equal(s.has('a'), false);
    assert.equal(s.has('d'), true);
  });
});

/**
 * fakeEdge is a loopback server that speaks just enough of the protocol for
 * what a real edge never does on demand: garbage frames, a reconnect frame,
 * a 4001 close.
 */
async function fakeEdge() {
  const { createServer } = await import('node:http');
  const { WebSocketServer } = await import('ws');
  const wss = new WebSocketServer({ noServer: true });
  const state = { connects: [], sockets: [], keys: [] };
  const server = createServer((req, res) => {
    if (req.url.startsWith('/v1/connect')) {
      const key = (req.headers.authorization ?? '').replace(/^Bearer /, '');
      state.keys.push(key);
      state.connects.push(Date.now());
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ node_id: 'n', client_id: 'n', validation_token: 'vt', expires_at: '', edge: { id: 'fake', ws_url: `ws://127.0.0.1:${server.address().port}/v1/ws` } }));
      return;
    }
    res.writeHead(404).end();
  });
  server.on('upgrade', (req, sock, head) => {
    wss.handleUpgrade(req, sock, head, (ws) => {
      state.sockets.push(ws);
      ws.received = [];
      ws.on('message', (d) => ws.received.push(String(d)));
      ws.send(JSON.stringify({ type: 'sync_done', pending: 0 }));
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  state.url = `http://127.0.0.1:${server.address().port}`;
  state.close = () => {
    for (const ws of state.sockets) ws.terminate();
    wss.close();
    return new Promise((r) => server.close(r));
  };
  return state;
}

describe('against a fake edge', () => {
  test('malformed frames (random bytes) are error events; the connection and the handler loop go on', async () => {
    const fake = await fakeEdge();
    const c = track(connect({ url: fake.url, authKey: 'k', backoff: { initialMs: 10 } }));
    const errors = [];
    const states = [];
    const got = [];
    c.on('error', (e) => errors.push(e));
    c.on('state', (s) => states.push(s.state));
    c.on('message', (m) => got.push(m.payload));
    await nextEvent(c, 'synced');
    const ws = fake.sockets[0];
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const junk = ['', 'null', '[]', '42', '"str"', '{', '{"type":"sent","status":"weird"}', '{"type":"presence"}', '{"msg_id":7}', '{"type":"message"}',
      '{"type":5}', '{"type":""}', '{"type":"presence_summary"}', '{"type":"presence_summary","online":3}',
      '{"type":"presence_summary","session_id":"r","online":-1}', '{"type":"presence_summary","session_id":"r","online":1.5}',
      '{"type":"presence_summary","session_id":"r","online":"3"}', '{"type":"presence_summary","session_id":"r"}'];
    for (let i = 0; i < 200; i++) {
      const n = Math.floor(rnd() * 64);
      const b = Buffer.alloc(n);
      for (let j = 0; j < n; j++) b[j] = Math.floor(rnd() * 256);
      // Binary frames carry raw bytes. Text frames must be UTF-8 (a websocket
      // implementation fails the connection otherwise, RFC 6455 8.1), so
      // random bytes go in decoded with replacement characters.
      if (i % 2 === 0) ws.send(b, { binary: true });
      else ws.send(b.toString('utf8'));
    }
    for (const j of junk) ws.send(j);
    ws.send(JSON.stringify({ msg_id: 'm-1', src_id: 'x', dest_id: 'n', payload: 'after the junk' }));
    await waitFor('the good message after the junk', () => got.length === 1);
    assert.equal(got[0], 'after the junk');
    assert.equal(errors.length, 200 + junk.length, 'one error event per malformed frame');
    assert.ok(errors.every((e) => e instanceof AllSparkError && e.code === 'bad_frame'));
    assert.deepEqual(states, ['connected'], 'the connection was kept');
    assert.equal(fake.connects.length, 1);
    await waitFor('the ack of the good message', () => ws.received.some((r) => r.includes('m-1')));
    c.close();
    await fake.close();
  });

  test('presence_summary frames are presenceSummary events, in order with the rest; unknown frame types are ignored', async () => {
    const fake = await fakeEdge();
    const c = track(connect({ url: fake.url, authKey: 'k', backoff: { initialMs: 10 } }));
    const errors = [];
    const order = [];
    const summaries = [];
    c.on('error', (e) => errors.push(e));
    c.on('presenceSummary', (p) => {
      summaries.push(p);
      order.push('summary');
    });
    c.on('presence', () => order.push('presence'));
    // An async handler that yields to the event loop (more frames are read
    // meanwhile): the events after the message still wait for it.
    c.on('message', async () => {
      await new Promise((r) => setImmediate(r));
      order.push('message');
    });
    await nextEvent(c, 'synced');
    const ws = fake.sockets[0];
    ws.send(JSON.stringify({ type: 'martian' }));
    ws.send(JSON.stringify({ type: 'martian', online: 'many', status: 5 }));
    ws.send(JSON.stringify({ msg_id: 'm-1', src_id: 'x', dest_id: 'n', payload: 'first' }));
    ws.send(JSON.stringify({ type: 'presence_summary', session_id: 'room-1', online: 42 }));
    ws.send(JSON.stringify({ type: 'typing', session_id: 'room-1', member_id: 'bob' }));
    ws.send(JSON.stringify({ type: 'presence', session_id: 'room-1', member_id: 'carol', online: true }));
    ws.send(JSON.stringify({ type: 'presence_summary', session_id: 'room-1', online: 0 }));
    // The barrier: every frame before it was read when it is handled.
    ws.send(JSON.stringify({ msg_id: 'm-2', src_id: 'x', dest_id: 'n', payload: 'barrier' }));
    await waitFor('the barrier message', () => order.filter((o) => o === 'message').length === 2);
    assert.deepEqual(errors, [], 'unknown frame types are not errors');
    assert.deepEqual(summaries, [
      { sessionId: 'room-1', online: 42 },
      { sessionId: 'room-1', online: 0 },
    ]);
    assert.deepEqual(order, ['message', 'summary', 'presence', 'summary', 'message']);
    c.close();
    await fake.close();
  });

  test('reconnect frame then 1001: reconnect at once, without backoff', async () => {
    const fake = await fakeEdge();
    // A backoff this long would time the test out if it were used.
    const c = track(connect({ url: fake.url, authKey: 'k', backoff: { initialMs: 600000, maxMs: 600000 } }));
    await nextEvent(c, 'synced');
    const re = nextEvent(c, 'state', (s) => s.state === 'reconnecting');
    fake.sockets[0].send(JSON.stringify({ type: 'reconnect', after_ms: 0 }));
    fake.sockets[0].close(1001, 'edge shutting down');
    const ev = await re;
    assert.equal(ev.code, 1001);
    assert.equal(ev.delayMs, 0);
    await nextEvent(c, 'synced');
    assert.equal(fake.connects.length, 2);
    // 1001 alone, too.
    const re2 = nextEvent(c, 'state', (s) => s.state === 'reconnecting');
    fake.sockets[1].close(1001, 'bye');
    assert.equal((await re2).delayMs, 0);
    await nextEvent(c, 'synced');
    c.close();
    await fake.close();
  });

  test('other closes back off with jitter; a send written before the close is rejected connection_lost; one made while down waits', async () => {
    const fake = await fakeEdge();
    const c = track(connect({ url: fake.url, authKey: 'k', backoff: { initialMs: 50, maxMs: 50 } }));
    await nextEvent(c, 'synced');
    const p = c.send({ destId: 'x', payload: 1 });
    await waitFor('the frame at the server', () => fake.sockets[0].received.length === 1);
    const re = nextEvent(c, 'state', (s) => s.state === 'reconnecting');
    fake.sockets[0].close(1011, 'oops');
    const ev = await re;
    assert.equal(ev.code, 1011);
    assert.ok(ev.delayMs >= 0 && ev.delayMs <= 50);
    await assert.rejects(p, (e) => e.code === 'connection_lost');
    const q = c.send({ destId: 'y', payload: 2 }); // while reconnecting
    await waitFor('the second connection', () => fake.sockets.length === 2);
    await waitFor('the queued send at the server', () => fake.sockets[1].received.some((r) => r.includes('"dest_id":"y"')));
    const id = JSON.parse(fake.sockets[1].received.find((r) => r.includes('"dest_id":"y"'))).id;
    fake.sockets[1].send(JSON.stringify({ type: 'sent', id, msg_id: 'M', status: 'delivered' }));
    assert.deepEqual(await q, { status: 'delivered', msgId: 'M', id });
    c.close();
    await assert.rejects(c.send({ destId: 'z' }), (e) => e.code === 'closed');
    await fake.close();
  });

  test('4011 (replaced by another connection of the node): an error, disconnected, and no reconnect', async () => {
    const fake = await fakeEdge();
    const c = track(connect({ url: fake.url, authKey: 'k', backoff: { initialMs: 1, maxMs: 1 } }));
    await nextEvent(c, 'synced');
    const states = [];
    c.on('state', (s) => states.push(s.state));
    const err = nextEvent(c, 'error', (e) => e.code === 'replaced');
    fake.sockets[0].close(4011, 'replaced');
    assert.equal((await err).closeCode, 4011);
    // The close is handled at once: a client about to reconnect would
    // already have said 'reconnecting' (as every other close does).
    await waitFor('the disconnected state', () => states.includes('disconnected'));
    assert.deepEqual(states, ['disconnected']);
    assert.equal(c.state, 'disconnected');
    assert.equal(fake.connects.length, 1);
    c.close();
    await fake.close();
  });

  test('4001 for the validation token alone: a plain reconnect with a fresh token, the key is not asked for', async () => {
    const fake = await fakeEdge();
    let asked = 0;
    const c = track(connect({ url: fake.url, authKey: 'k', backoff: { initialMs: 10, maxMs: 10 }, onAuthExpired: () => (asked++, 'other') }));
    await nextEvent(c, 'synced');
    const again = nextEvent(c, 'synced');
    fake.sockets[0].close(4001, 'validation token expired');
    await again;
    assert.equal(asked, 0);
    assert.deepEqual(fake.keys, ['k', 'k']);
    c.close();
    await fake.close();
  });

  test('4001: no reconnect until onAuthExpired gives a new key, which is used', async () => {
    const fake = await fakeEdge();
    let giveKey;
    const asked = new Promise((resolveAsked) => {
      const c = track(connect({
        url: fake.url,
        authKey: 'old-key',
        backoff: { initialMs: 1, maxMs: 1 },
        onAuthExpired: () => {
          resolveAsked(c);
          return new Promise((r) => (giveKey = r));
        },
      }));
      fake.client = c;
    });
    const c = fake.client;
    await nextEvent(c, 'synced');
    const disc = nextEvent(c, 'state', (s) => s.state === 'disconnected');
    fake.sockets[0].close(4001, 'auth_key expired');
    assert.equal((await disc).code, 4001);
    await asked;
    // The backoff is 1 ms: had the client retried, a second connect would be
    // in by now. The barrier is the callback itself, which runs after the close.
    assert.equal(fake.connects.length, 1);
    assert.equal(c.state, 'disconnected');
    const s = nextEvent(c, 'synced');
    giveKey('new-key');
    await s;
    assert.deepEqual(fake.keys, ['old-key', 'new-key']);
    c.close();
    await fake.close();
  });
});

describe('edge killed mid-stream', () => {
  test('SIGKILL and restart on the same data dir while 5,000 messages flow: 0 lost, 0 duplicates delivered', { timeout: 600000 }, async () => {
    const N = 5000;
    // One sender pushes 5,000 messages as fast as it can: not what the
    // per-connection rate limit is for, so it is off here.
    const edge = await (await new Edge({ name: 'kill-edge', env: { ALLSPARK_RATE_LIMIT: '0' } }).init()).start();
    let rx, tx;
    try {
      // rx's network stays down after the restart until a few hundred
      // messages were stored for it, so its inbox replay runs into live
      // traffic (and into redeliveries of what it had not acked).
      let rxBlocked = false;
      class RxSocket extends WebSocket {
        constructor(url) {
          if (rxBlocked) throw new Error('test: network down');
          super(url);
        }
      }
      rx = connect({ url: edge.url, authKey: mintKey('rx-kill'), backoff: { initialMs: 100, maxMs: 1000 }, lazy: true, WebSocket: RxSocket });
      tx = connect({ url: edge.url, authKey: mintKey('tx-kill'), backoff: { initialMs: 100, maxMs: 1000 }, lazy: true });
      const byMsgId = new Map(); // msg_id -> times handed to the app
      const byN = new Map(); // payload n -> times handed to the app
      rx.on('message', (m) => {
        byMsgId.set(m.msgId, (byMsgId.get(m.msgId) ?? 0) + 1);
        if (typeof m.payload?.n === 'number') byN.set(m.payload.n, (byN.get(m.payload.n) ?? 0) + 1);
      });
      let dropped = 0;
      rx.on('duplicate', () => dropped++);
      const s1 = nextEvent(rx, 'synced');
      const s2 = nextEvent(tx, 'synced');
      rx.open();
      tx.open();
      await Promise.all([s1, s2]);

      const confirmed = new Map(); // n -> status
      const unknown = new Set(); // n whose send's outcome was lost with the edge
      const window = 100;
      let next = 0;
      let killed = false;
      const killAt = Math.floor(N / 3);
      const sendOne = async (n) => {
        for (;;) {
          try {
            const o = await tx.send({ destId: 'rx-kill', payload: { n } });
            confirmed.set(n, o.status);
            return;
          } catch (e) {
            if (e.code !== 'connection_lost') throw e;
            unknown.add(n); // resend: the app cannot know whether it got through
          }
        }
      };
      const killer = (async () => {
        await waitFor('messages flowing before the kill', () => byN.size >= killAt, 120000);
        rxBlocked = true;
        await edge.kill();
        killed = true;
        await edge.start(); // same ports, same data dir
        const storedNow = () => [...confirmed.values()].filter((s) => s === 'stored').length;
        await waitFor('messages stored while rx is away', () => storedNow() >= 500 || next >= N, 120000);
        // Kill it again while rx is in the middle of its inbox replay: the
        // replayed messages whose acks were lost come a second time and the
        // SDK must drop them.
        const before = byN.size;
        rxBlocked = false;
        await waitFor('rx replaying its inbox', () => byN.size >= before + 200, 120000);
        await edge.kill();
        await edge.start();
      })();
      const workers = Array.from({ length: window }, async () => {
        while (next < N) await sendOne(next++);
      });
      await Promise.all(workers);
      await killer;
      assert.ok(killed);
      // Barrier: one more message after everything; all before it must be in.
      const barrier = await tx.send({ destId: 'rx-kill', payload: { barrier: true } });
      await waitFor('every message and the barrier', () => byN.size === N && byMsgId.has(barrier.msgId), 180000);
      const lost = [...confirmed.keys()].filter((n) => !byN.has(n));
      const dupMsgIds = [...byMsgId.values()].filter((v) => v > 1).length;
      // A resent message whose first copy got through arrives twice with two msg_ids:
      // that is the sender's retry, allowed only for sends whose outcome was lost.
      const resentTwice = [...byN].filter(([n, v]) => v > 1 && !unknown.has(n));
      const stats = { sent: N, confirmed: confirmed.size, stored: [...confirmed.values()].filter((s) => s === 'stored').length, outcomeLost: unknown.size, resentArrivedTwice: [...byN.values()].filter((v) => v > 1).length, duplicatesDroppedBySDK: dropped, lost: lost.length, duplicateMsgIds: dupMsgIds };
      console.log('edge kill:', JSON.stringify(stats));
      assert.equal(confirmed.size, N);
      assert.deepEqual(lost, [], 'lost messages');
      assert.equal(dupMsgIds, 0, 'a msg_id handed to the app twice');
      assert.deepEqual(resentTwice, [], 'duplicate payloads that were never resent');
    } finally {
      rx?.close();
      tx?.close();
      await edge.stop();
      edge.cleanup();
    }
  });
});
