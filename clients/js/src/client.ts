import { AllSparkError, CloseCode } from './errors.js';
import { Backoff } from './backoff.js';
import { SeenSet } from './dedup.js';
import { Emitter } from './emitter.js';
import { request, type ConnectInfo } from './http.js';
import { validId } from './ids.js';
import { SessionTracker } from './sessions.js';
import type {
  ClientEvents,
  ConnectOptions,
  ConnectionState,
  Json,
  Message,
  OutgoingMessage,
  SentFrame,
  SentOutcome,
  TargetFailure,
  SessionInfo,
  WebSocketCtor,
  WebSocketLike,
} from './types.js';

const OPEN = 1;
const maxAckBatch = 1024; // the edge's limit per ack frame

interface PendingSend {
  id: string;
  frame: string;
  written: boolean;
  /** The session a session message goes to. */
  session?: string;
  /** Settles (never rejects) when the send does. */
  done?: Promise<void>;
  resolve(o: SentOutcome): void;
  reject(e: AllSparkError): void;
}

/** One unit of work for the app, handled in arrival order. */
type Work =
  | { kind: 'message'; raw: Record<string, any> }
  | { kind: 'presence'; raw: Record<string, any> }
  | { kind: 'presence_summary'; sessionId: string; online: number }
  | { kind: 'inbox_synced'; pending: number; gen: number }
  | { kind: 'session_synced'; sessionId: string; lastSeq: number; gen: number };

/** Connect to an edge: pre-connection info, then the websocket. */
export function connect(opts: ConnectOptions): AllSparkClient {
  const c = new AllSparkClient(opts);
  if (!opts.lazy) c.open();
  return c;
}

/**
 * AllSparkClient keeps one node connected: it reconnects with jittered
 * backoff, replays the inbox and resyncs sessions on every connection, acks
 * what the app handled and drops what it already handled.
 */
export class AllSparkClient extends Emitter<ClientEvents> {
  private readonly opts: ConnectOptions;
  private authKey: string;
  private readonly fetchFn: typeof fetch;
  private readonly backoff: Backoff;
  private readonly seen: SeenSet;
  private readonly sessions: SessionTracker;
  private readonly manual: boolean;

  private _state: ConnectionState = 'idle';
  private ws: WebSocketLike | null = null;
  /** Bumped per connection attempt; stale callbacks compare it. */
  private gen = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private keepalive: ReturnType<typeof setInterval> | null = null;
  private lastFrameAt = 0;
  private waitingForKey = false;
  private reconnectAfter: number | null = null; // set by a reconnect frame
  private nextId = 0;
  private readonly idPrefix = Math.random().toString(36).slice(2, 8);
  private readonly inflight = new Map<string, PendingSend>();

  private readonly work: Work[] = [];
  private pumping = false;
  private acks: string[] = [];
  private sessionAcks = new Map<string, number>();
  private ackTimer: ReturnType<typeof setTimeout> | null = null;
  /** The last pre-connection info: who this node is and which edge it uses. */
  private info: ConnectInfo | null = null;

  constructor(opts: ConnectOptions) {
    super();
    if (!opts || typeof opts.url !== 'string' || !opts.url) throw new AllSparkError('bad_request', 'url is required');
    if (typeof opts.authKey !== 'string' || !opts.authKey) throw new AllSparkError('bad_request', 'authKey is required');
    this.opts = opts;
    this.authKey = opts.authKey;
    const f = opts.fetch ?? globalThis.fetch;
    this.fetchFn = f.bind(globalThis);
    this.backoff = new Backoff(opts.backoff);
    this.seen = new SeenSet(opts.dedupSize ?? 10000);
    this.manual = opts.ackMode === 'manual';
    this.sessions = new SessionTracker(opts.syncLimit ?? 1000, (frame) => this.write(frame));
    for (const s of opts.sessions ?? []) this.sessions.track(s.sessionId, s.afterSeq ?? 0, s.memberId);
  }

  /** The connection state. */
  get state(): ConnectionState {
    return this._state;
  }

  /** The node and client this connection speaks for, once connected. */
  get nodeId(): string | undefined {
    return this.info?.node_id;
  }
  get clientId(): string | undefined {
    return this.info?.client_id;
  }

  /** Starts connecting (connect() does this unless lazy). */
  open(): void {
    if (this._state !== 'idle' && this._state !== 'closed') return;
    this.dial(false);
  }

  /** Closes the connection for good: no reconnect. Unanswered sends are rejected with `closed`. */
  close(): void {
    if (this._state === 'closed') return;
    this.gen++;
    this.clearTimers();
    this.flushAcks();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = ws.onmessage = ws.onerror = ws.onopen = null;
      try {
        ws.close(1000, 'client closed');
      } catch {
        /* already closed */
      }
    }
    this.failSends(new AllSparkError('closed', 'client closed'), true);
    this.setState('closed');
  }

  /** Gives a new auth_key; when the client was waiting for one it reconnects now. */
  setAuthKey(key: string): void {
    if (typeof key !== 'string' || !key) throw new AllSparkError('bad_request', 'auth key must be a non-empty string');
    this.authKey = key;
    if (this.waitingForKey && this._state !== 'closed') {
      this.waitingForKey = false;
      this.dial(true);
    }
  }

  /**
   * Sends one message. Resolves with the edge's `delivered` or `stored`
   * outcome; rejects with an AllSparkError whose code the edge gave
   * (`rejected`), `bad_id`/`bad_frame` decided locally exactly as the edge
   * would, `connection_lost` when the connection ended before the answer
   * (the outcome is unknown), or `closed`. While disconnected, sends wait
   * for the next connection.
   */
  send(msg: OutgoingMessage): Promise<SentOutcome> {
    let frame: Record<string, unknown>;
    try {
      frame = outgoingFrame(msg);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this._state === 'closed') return Promise.reject(new AllSparkError('closed', 'client closed'));
    const id = `${this.idPrefix}-${++this.nextId}`;
    frame.id = id;
    let p!: PendingSend;
    const result = new Promise<SentOutcome>((resolve, reject) => {
      p = { id, frame: JSON.stringify(frame), written: false, resolve, reject };
      if (typeof frame.dest_session_id === 'string' && frame.member_id === undefined) p.session = frame.dest_session_id;
    });
    p.done = result.then(
      () => undefined,
      () => undefined,
    );
    this.inflight.set(id, p);
    if (this.isOpen()) p.written = this.write(p.frame);
    return result;
  }

  /** Acknowledges a message (manual ack mode; the same as message.ack()). */
  ack(msgId: string): void {
    if (typeof msgId !== 'string' || !msgId) return;
    this.seen.add(msgId);
    this.queueAck(msgId);
  }

  // ---- sessions, push tokens (HTTP) ----

  /** Creates a session (the creator joins) and resumes it on every connection. */
  async createSession(opts: { sessionId?: string; allowAnonymous?: boolean } = {}): Promise<{ sessionId: string }> {
    if (opts.sessionId !== undefined && !validId(opts.sessionId)) throw new AllSparkError('bad_id', 'invalid session id');
    const body: Record<string, unknown> = {};
    if (opts.sessionId !== undefined) body.session_id = opts.sessionId;
    if (opts.allowAnonymous) body.allow_anonymous = true;
    const r = await this.http<{ session_id: string }>('POST', '/v1/sessions', body);
    this.sessions.track(r.session_id, 0, this.info?.node_id);
    return { sessionId: r.session_id };
  }

  /**
   * Joins a session (anonymously: with a random alias as member id) and
   * resumes it on every connection. Only new messages are synced unless
   * `history` is true.
   */
  async joinSession(sessionId: string, opts: { anonymous?: boolean; history?: boolean } = {}): Promise<{ sessionId: string; memberId: string }> {
    if (!validId(sessionId)) throw new AllSparkError('bad_id', 'invalid session id');
    const r = await this.http<{ session_id: string; member_id: string }>(
      'POST',
      `/v1/sessions/${encodeURIComponent(sessionId)}/join`,
      opts.anonymous ? { anonymous: true } : {},
    );
    let after = 0;
    if (!opts.history) after = (await this.getSession(sessionId)).lastSeq;
    this.sessions.track(sessionId, after, r.member_id);
    return { sessionId: r.session_id, memberId: r.member_id };
  }

  /** Leaves a session. */
  async unjoinSession(sessionId: string): Promise<void> {
    if (!validId(sessionId)) throw new AllSparkError('bad_id', 'invalid session id');
    await this.http('POST', `/v1/sessions/${encodeURIComponent(sessionId)}/unjoin`, {});
    this.sessions.untrack(sessionId);
  }

  /** The session's members with their presence, its last seq and this node's read cursor. */
  async getSession(sessionId: string): Promise<SessionInfo> {
    if (!validId(sessionId)) throw new AllSparkError('bad_id', 'invalid session id');
    const r = await this.http<{ session_id: string; members: Array<{ member_id: string; online: boolean }>; last_seq: number; acked_seq: number }>(
      'GET',
      `/v1/sessions/${encodeURIComponent(sessionId)}`,
    );
    return {
      sessionId: r.session_id,
      members: (r.members ?? []).map((m) => ({ memberId: m.member_id, online: !!m.online })),
      lastSeq: r.last_seq ?? 0,
      ackedSeq: r.acked_seq ?? 0,
    };
  }

  /** The session's members and whether each is online. */
  async members(sessionId: string): Promise<Array<{ memberId: string; online: boolean }>> {
    return (await this.getSession(sessionId)).members;
  }

  /**
   * Syncs a session from afterSeq (default: the last seq this client saw),
   * and tracks it for resume. Messages arrive as 'message' events; the
   * 'session_synced' event marks the end.
   */
  syncSession(sessionId: string, afterSeq?: number): void {
    if (!validId(sessionId)) throw new AllSparkError('bad_id', 'invalid session id');
    this.sessions.track(sessionId, afterSeq);
    if (afterSeq !== undefined) this.sessions.setCursor(sessionId, afterSeq);
    if (this.isOpen()) this.sessions.start(sessionId);
  }

  /** Sessions this client resumes, with the last seq it has: persist them to resume after a restart. */
  sessionCursors(): Array<{ sessionId: string; afterSeq: number; memberId?: string }> {
    return this.sessions.cursors();
  }

  /** Registers this node's push token. */
  async registerPushToken(platform: 'apns' | 'fcm', token: string): Promise<void> {
    await this.http('POST', '/v1/push-tokens', { platform, token });
  }

  /** Forgets one of this node's push tokens. */
  async unregisterPushToken(token: string): Promise<void> {
    await this.http('DELETE', `/v1/push-tokens/${encodeURIComponent(token)}`);
  }

  private http<T>(method: string, path: string, body?: unknown): Promise<T> {
    return request<T>(this.fetchFn, this.opts.url, this.authKey, method, path, body);
  }

  // ---- connection ----

  private isOpen(): boolean {
    return this.ws !== null && this.ws.readyState === OPEN;
  }

  private setState(state: ConnectionState, extra: { code?: number; reason?: string; delayMs?: number } = {}): void {
    if (state === this._state) return;
    const previous = this._state;
    this._state = state;
    this.emit('state', { state, previous, ...extra });
  }

  protected override onListenerError(event: keyof ClientEvents, err: unknown): void {
    if (event === 'error') return; // never loop on a throwing error listener
    this.emitError(new AllSparkError('handler_failed', `${String(event)} listener threw: ${(err as Error)?.message ?? err}`, { detail: err }));
  }

  private emitError(e: AllSparkError): void {
    this.emit('error', e);
  }

  /** dial starts one connection attempt. */
  private dial(again: boolean): void {
    const gen = ++this.gen;
    this.clearTimers();
    this.setState(again ? 'reconnecting' : 'connecting');
    void this.attempt(gen);
  }

  private async attempt(gen: number): Promise<void> {
    let info: ConnectInfo;
    try {
      info = await this.http<ConnectInfo>('GET', '/v1/connect');
      if (!info || typeof info.validation_token !== 'string' || !info.edge) {
        throw new AllSparkError('bad_frame', 'pre-connection info lacks validation_token or edge');
      }
    } catch (err) {
      if (gen !== this.gen) return;
      const e = err instanceof AllSparkError ? err : new AllSparkError('unavailable', String(err));
      this.emitError(e);
      if (e.code === 'unauthorized') {
        this.authFailed(e.message);
      } else {
        this.retryLater(undefined, e.message);
      }
      return;
    }
    if (gen !== this.gen) return;
    this.info = info;
    let Ctor: WebSocketCtor;
    try {
      Ctor = await this.wsCtor();
    } catch (err) {
      this.emitError(new AllSparkError('unavailable', `no WebSocket implementation: ${(err as Error).message}`));
      this.retryLater();
      return;
    }
    if (gen !== this.gen) return;
    const base = this.opts.wsUrl ?? (this.opts.useProxyUrl && info.edge.proxy_url ? info.edge.proxy_url : info.edge.ws_url);
    const url = base + (base.includes('?') ? '&' : '?') + 'validation_token=' + encodeURIComponent(info.validation_token);
    let ws: WebSocketLike;
    try {
      ws = new Ctor(url);
    } catch (err) {
      this.emitError(new AllSparkError('unavailable', `open websocket: ${(err as Error).message}`));
      this.retryLater();
      return;
    }
    this.ws = ws;
    try {
      ws.binaryType = 'arraybuffer';
    } catch {
      /* not supported */
    }
    ws.onopen = () => {
      if (gen !== this.gen) return;
      this.lastFrameAt = Date.now();
      this.startKeepalive(gen);
      this.sessions.reset();
      this.setState('connected');
      // Sends that were waiting for a connection go out now, in order.
      for (const p of this.inflight.values()) {
        if (!p.written) p.written = this.write(p.frame);
      }
    };
    ws.onmessage = (ev) => {
      if (gen !== this.gen) return;
      this.lastFrameAt = Date.now();
      this.onFrame(ev.data, gen);
    };
    ws.onerror = () => {
      /* onclose follows with the code */
    };
    ws.onclose = (ev) => {
      if (gen !== this.gen) return;
      this.onClose(ev.code, ev.reason);
    };
  }

  private async wsCtor(): Promise<WebSocketCtor> {
    if (this.opts.WebSocket) return this.opts.WebSocket;
    const g = (globalThis as any).WebSocket;
    if (typeof g === 'function') return g as WebSocketCtor;
    // Node 20 has no global WebSocket: use the optional `ws` package.
    const name = 'ws';
    const mod: any = await import(/* @vite-ignore */ name);
    return (mod.WebSocket ?? mod.default) as WebSocketCtor;
  }

  private onClose(code: number, reason: string): void {
    this.ws = null;
    this.clearTimers();
    this.failSends(new AllSparkError('connection_lost', `connection closed (${code}) before the edge answered`, { closeCode: code }), false);
    this.sessions.reset();
    if (code === CloseCode.AuthExpired && /^validation[ _]token/i.test(reason ?? '')) {
      // Only the short-lived validation token was refused (say the
      // connect took too long): the auth_key is fine, and the next attempt
      // gets a fresh token from /v1/connect.
      this.emitError(new AllSparkError('unauthorized', reason, { closeCode: code }));
      this.retryLater(code, reason);
      return;
    }
    if (code === CloseCode.AuthExpired) {
      this.emitError(new AllSparkError('unauthorized', reason || 'auth_key expired', { closeCode: code }));
      this.authFailed(reason, code);
      return;
    }
    if (code === CloseCode.Replaced) {
      // Another connection of this node took precedence. Coming back would
      // replace it in turn, and two instances of one node would replace
      // each other for ever: stop, and let the app decide.
      this.emitError(new AllSparkError('replaced', reason || 'replaced by another connection of this node', { closeCode: code }));
      this.gen++;
      this.clearTimers();
      this.setState('disconnected', { code, reason });
      return;
    }
    if (code === CloseCode.GoingAway || this.reconnectAfter !== null) {
      const delay = this.reconnectAfter ?? 0;
      this.reconnectAfter = null;
      this.setState('reconnecting', { code, reason, delayMs: delay });
      this.schedule(delay);
      return;
    }
    this.retryLater(code, reason);
  }

  private retryLater(code?: number, reason?: string): void {
    const delay = this.backoff.next();
    this.setState('reconnecting', { code, reason, delayMs: delay });
    this.schedule(delay);
  }

  private schedule(delay: number): void {
    const gen = ++this.gen;
    this.clearTimers();
    this.timer = setTimeout(() => {
      this.timer = null;
      if (gen === this.gen) this.dial(true);
    }, delay);
  }

  /** authFailed stops reconnecting until a new key comes from onAuthExpired or setAuthKey. */
  private authFailed(reason?: string, code?: number): void {
    this.gen++;
    this.clearTimers();
    this.waitingForKey = true;
    this.setState('disconnected', { code, reason });
    const cb = this.opts.onAuthExpired;
    if (!cb) return;
    Promise.resolve()
      .then(() => cb())
      .then(
        (key) => {
          if (this._state !== 'closed' && this.waitingForKey && typeof key === 'string' && key) this.setAuthKey(key);
        },
        (err) => this.emitError(new AllSparkError('unauthorized', `onAuthExpired failed: ${(err as Error)?.message ?? err}`)),
      );
  }

  private startKeepalive(gen: number): void {
    const every = this.opts.keepaliveMs ?? 25000;
    if (every <= 0) return;
    this.keepalive = setInterval(() => {
      if (gen !== this.gen || !this.ws) return;
      if (Date.now() - this.lastFrameAt > every * 2.5) {
        // The edge answers every ping; silence this long means the link is dead.
        const ws = this.ws;
        ws.onclose = ws.onmessage = ws.onerror = ws.onopen = null;
        try {
          ws.close(4000, 'keepalive timeout');
        } catch {
          /* ignore */
        }
        this.onClose(1006, 'keepalive timeout');
        return;
      }
      this.write('{"type":"ping"}');
    }, every);
  }

  private clearTimers(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.keepalive) clearInterval(this.keepalive);
    this.timer = this.keepalive = null;
  }

  /** Rejects sends the edge may have seen; keeps those never written (unless all). */
  private failSends(err: AllSparkError, all: boolean): void {
    for (const [id, p] of this.inflight) {
      if (all || p.written) {
        this.inflight.delete(id);
        p.reject(err);
      }
    }
  }

  private write(frame: string): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) return false;
    try {
      ws.send(frame);
      return true;
    } catch {
      return false;
    }
  }

  // ---- frames ----

  private onFrame(data: unknown, gen: number): void {
    if (typeof data !== 'string') {
      this.emitError(new AllSparkError('bad_frame', 'binary frame from the server ignored', { detail: data }));
      return;
    }
    let f: any;
    try {
      f = JSON.parse(data);
    } catch {
      this.emitError(new AllSparkError('bad_frame', 'unparsable frame from the server ignored', { detail: data }));
      return;
    }
    if (f === null || typeof f !== 'object' || Array.isArray(f)) {
      this.emitError(new AllSparkError('bad_frame', 'non-object frame from the server ignored', { detail: data }));
      return;
    }
    switch (f.type) {
      case undefined:
      case 'message':
        if (typeof f.msg_id !== 'string' || !f.msg_id) break;
        this.enqueue({ kind: 'message', raw: f });
        return;
      case 'sent':
        this.onSent(f);
        return;
      case 'sync_done':
        if (typeof f.session_id === 'string') {
          this.enqueue({ kind: 'session_synced', sessionId: f.session_id, lastSeq: num(f.last_seq), gen });
        } else {
          this.enqueue({ kind: 'inbox_synced', pending: num(f.pending), gen });
        }
        return;
      case 'presence':
        if (typeof f.session_id !== 'string' || typeof f.member_id !== 'string') break;
        this.enqueue({ kind: 'presence', raw: f });
        return;
      case 'presence_summary':
        if (typeof f.session_id !== 'string' || !f.session_id || !Number.isSafeInteger(f.online) || f.online < 0) break;
        this.enqueue({ kind: 'presence_summary', sessionId: f.session_id, online: f.online });
        return;
      case 'pong':
        return;
      case 'reconnect':
        this.reconnectAfter = Math.max(0, Math.min(num(f.after_ms), 60000));
        return;
      case 'error': {
        const code = typeof f.code === 'string' ? f.code : 'internal';
        const e = new AllSparkError(code, typeof f.message === 'string' ? f.message : undefined, { detail: f });
        const p = typeof f.id === 'string' ? this.inflight.get(f.id) : undefined;
        if (p) {
          this.inflight.delete(p.id);
          p.reject(e);
        } else if (typeof f.id === 'string' && this.sessions.failed(f.id)) {
          // a session sync was refused; reported below
        }
        this.emitError(e);
        return;
      }
      default:
        // A frame type added to the protocol after this SDK: ignored, as
        // the protocol asks, so a newer edge does not break older clients.
        if (typeof f.type === 'string' && f.type !== '') return;
    }
    this.emitError(new AllSparkError('bad_frame', 'unexpected frame from the server ignored', { detail: data }));
  }

  private onSent(f: any): void {
    if (f.status !== 'delivered' && f.status !== 'stored' && f.status !== 'rejected') {
      this.emitError(new AllSparkError('bad_frame', 'sent frame with an unknown status', { detail: f }));
      return;
    }
    // The app knows what it sent: its own session message coming back in a
    // sync is a duplicate.
    if (f.status !== 'rejected' && typeof f.msg_id === 'string' && f.msg_id) this.seen.add(f.msg_id);
    const p = typeof f.id === 'string' ? this.inflight.get(f.id) : undefined;
    if (p) {
      this.inflight.delete(p.id);
      if (f.status === 'rejected') {
        p.reject(new AllSparkError(typeof f.error?.code === 'string' ? f.error.code : 'internal', f.error?.message, { detail: f }));
      } else {
        const o: SentOutcome = { status: f.status, msgId: String(f.msg_id ?? ''), id: p.id };
        if (typeof f.seq === 'number') o.seq = f.seq;
        if (Array.isArray(f.failed)) o.failed = f.failed as TargetFailure[];
        p.resolve(o);
      }
    }
    this.emit('sent', f as SentFrame);
  }

  private enqueue(w: Work): void {
    this.work.push(w);
    if (!this.pumping) void this.pump();
  }

  /** pump hands work to the app one item at a time, in arrival order. */
  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.work.length > 0) {
        const w = this.work.shift()!;
        try {
          await this.handle(w);
        } catch (err) {
          this.emitError(new AllSparkError('internal', `SDK bug handling a frame: ${(err as Error)?.message ?? err}`, { detail: err }));
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  private async handle(w: Work): Promise<void> {
    switch (w.kind) {
      case 'message':
        return this.handleMessage(w.raw);
      case 'presence':
        this.emit('presence', { sessionId: w.raw.session_id, memberId: w.raw.member_id, online: !!w.raw.online });
        return;
      case 'presence_summary':
        this.emit('presenceSummary', { sessionId: w.sessionId, online: w.online });
        return;
      case 'inbox_synced':
        if (w.gen !== this.gen) return;
        this.backoff.reset();
        this.emit('synced', { pending: w.pending });
        this.sessions.startAll();
        return;
      case 'session_synced': {
        if (w.gen !== this.gen) return;
        const done = this.sessions.done(w.sessionId, w.lastSeq);
        if (done) this.emit('session_synced', { sessionId: w.sessionId, lastSeq: w.lastSeq });
        return;
      }
    }
  }

  private async handleMessage(f: Record<string, any>): Promise<void> {
    const msgId: string = f.msg_id;
    const broadcast = typeof f.dest_session_id === 'string' && f.member_id === undefined;
    const seq = typeof f.seq === 'number' ? f.seq : undefined;
    if (broadcast && seq !== undefined) this.sessions.saw(f.dest_session_id, seq);
    if (broadcast && !this.seen.has(msgId) && this.fromSelf(f)) {
      // Our own session message can come back in a sync before the `sent`
      // answer that names its msg_id: wait for our sends to that session.
      const waiting = [...this.inflight.values()].filter((p) => p.written && p.session === f.dest_session_id).map((p) => p.done);
      if (waiting.length > 0) await Promise.all(waiting);
    }
    if (this.seen.has(msgId)) {
      // Handled before (a replay after a lost ack): ack again, do not deliver.
      if (!broadcast) this.queueAck(msgId);
      this.emit('duplicate', { msgId });
      return;
    }
    let acked = false;
    const m: Message = {
      msgId,
      ack: () => {
        if (!this.manual || acked) return;
        acked = true;
        this.seen.add(msgId);
        if (!broadcast) this.queueAck(msgId);
        else if (seq !== undefined) this.queueSessionAck(f.dest_session_id, seq);
      },
    };
    copyFields(f, m);
    let failed = false;
    for (const fn of this.listenersOf('message')) {
      try {
        await fn(m);
      } catch (err) {
        failed = true;
        this.emitError(new AllSparkError('handler_failed', `message handler threw: ${(err as Error)?.message ?? err}`, { detail: err }));
      }
    }
    if (this.manual) return;
    if (failed) return; // not acked: it comes again at the next connection
    this.seen.add(msgId);
    if (!broadcast) this.queueAck(msgId);
    else if (seq !== undefined) this.queueSessionAck(f.dest_session_id, seq);
  }

  private fromSelf(f: Record<string, any>): boolean {
    const me = this.sessions.memberId(f.dest_session_id) ?? this.info?.node_id;
    return me !== undefined && f.src_id === me;
  }

  private queueAck(msgId: string): void {
    this.acks.push(msgId);
    this.scheduleAcks();
  }

  private queueSessionAck(sessionId: string, seq: number): void {
    if ((this.sessionAcks.get(sessionId) ?? 0) < seq) this.sessionAcks.set(sessionId, seq);
    this.scheduleAcks();
  }

  private scheduleAcks(): void {
    if (this.ackTimer) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = null;
      this.flushAcks();
    }, 0);
  }

  /** flushAcks sends the queued acks in frames of at most 1024 ids. Unsent ones are simply redelivered later. */
  private flushAcks(): void {
    if (this.ackTimer) {
      clearTimeout(this.ackTimer);
      this.ackTimer = null;
    }
    const ids = this.acks;
    this.acks = [];
    for (let i = 0; i < ids.length; i += maxAckBatch) {
      this.write(JSON.stringify({ type: 'ack', msg_ids: ids.slice(i, i + maxAckBatch) }));
    }
    for (const [sid, seq] of this.sessionAcks) this.write(JSON.stringify({ type: 'ack', session_id: sid, seq }));
    this.sessionAcks.clear();
  }
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

const fieldMap: Array<[string, keyof Message]> = [
  ['src_id', 'srcId'],
  ['src_client_id', 'srcClientId'],
  ['dest_id', 'destId'],
  ['dest_client_id', 'destClientId'],
  ['dest_session_id', 'destSessionId'],
  ['member_id', 'memberId'],
  ['seq', 'seq'],
  ['payload', 'payload'],
  ['payload1', 'payload1'],
  ['payload2', 'payload2'],
  ['ts', 'ts'],
];

function copyFields(f: Record<string, any>, m: Message): void {
  for (const [from, to] of fieldMap) {
    if (f[from] !== undefined) (m as any)[to] = f[from];
  }
}

/**
 * outgoingFrame validates a message exactly as the edge's decodeFrame and
 * CheckDest do, so a send the edge would refuse is refused here with the
 * same code.
 */
export function outgoingFrame(msg: OutgoingMessage): Record<string, unknown> {
  if (!msg || typeof msg !== 'object') throw new AllSparkError('bad_frame', 'message must be an object');
  const dests: Array<[string, unknown]> = [
    ['dest_id', msg.destId],
    ['dest_client_id', msg.destClientId],
    ['dest_session_id', msg.destSessionId],
  ];
  if (msg.memberId === '') throw new AllSparkError('bad_id', 'member_id must not be empty');
  const set = dests.filter(([, v]) => v !== undefined && v !== null);
  if (set.length === 0) throw new AllSparkError('bad_frame', 'message needs destId, destClientId or destSessionId');
  if (set.length > 1) throw new AllSparkError('bad_frame', 'only one of destId, destClientId, destSessionId may be set');
  const [key, dest] = set[0];
  if (dest === '') throw new AllSparkError('bad_id', 'destination id must not be empty');
  if (!validId(dest)) throw new AllSparkError('bad_id', 'invalid destination id');
  const frame: Record<string, unknown> = { [key]: dest };
  if (msg.memberId !== undefined && msg.memberId !== null) {
    if (key !== 'dest_session_id') throw new AllSparkError('bad_frame', 'memberId needs destSessionId');
    if (!validId(msg.memberId)) throw new AllSparkError('bad_id', 'invalid member_id');
    frame.member_id = msg.memberId;
  }
  for (const p of ['payload', 'payload1', 'payload2'] as const) {
    if (msg[p] !== undefined) frame[p] = msg[p] as Json;
  }
  return frame;
}
