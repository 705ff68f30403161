import type { AllSparkError } from './errors.js';
import type { BackoffOptions } from './backoff.js';

/** A JSON value, as carried by payload, payload1 and payload2. */
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** A minimal WebSocket constructor: the browser's, Node 22's, or the `ws` package's. */
export interface WebSocketLike {
  readonly readyState: number;
  binaryType?: string;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: any) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketCtor = new (url: string) => WebSocketLike;

export interface ConnectOptions {
  /** The edge's base HTTP URL, e.g. `http://127.0.0.1:8080`. */
  url: string;
  /** The auth_key (a JWT your backend minted for this node). */
  authKey: string;
  /**
   * Called when the edge refuses the key (401) or closes with 4001. Return
   * a new key to reconnect with it. Without it (or when it throws) the
   * client stays disconnected until setAuthKey() is called.
   */
  onAuthExpired?: () => string | Promise<string>;
  /** 'auto' (default): ack each message after the handlers return. 'manual': call message.ack(). */
  ackMode?: 'auto' | 'manual';
  /** How many msg_ids to remember for dropping duplicates (default 10000). */
  dedupSize?: number;
  /** Reconnect backoff. */
  backoff?: BackoffOptions;
  /** Use the edge's proxy_url instead of ws_url when it has one. */
  useProxyUrl?: boolean;
  /** Replace the websocket URL from pre-connection info (tests, port mapping). */
  wsUrl?: string;
  /** The WebSocket implementation (default: globalThis.WebSocket, else the `ws` package). */
  WebSocket?: WebSocketCtor;
  /** fetch implementation (default: globalThis.fetch). */
  fetch?: typeof fetch;
  /** Sessions to resume at connect: id and the last seq the app has (0 for all history). */
  sessions?: Array<{ sessionId: string; afterSeq?: number; memberId?: string }>;
  /** Send a ping this often and drop a connection silent for 2.5x as long (default 25000; 0 disables). */
  keepaliveMs?: number;
  /** Page size of session syncs (default 1000, the edge's maximum). */
  syncLimit?: number;
  /** Do not open the connection until open() is called. */
  lazy?: boolean;
}

/** A message as the app receives it. */
export interface Message {
  msgId: string;
  srcId?: string;
  srcClientId?: string;
  destId?: string;
  destClientId?: string;
  destSessionId?: string;
  memberId?: string;
  seq?: number;
  payload?: Json;
  payload1?: Json;
  payload2?: Json;
  /** Unix milliseconds when the edge accepted it. */
  ts?: number;
  /** In manual ack mode: acknowledge it (idempotent). In auto mode: a no-op. */
  ack(): void;
}

/** What to send: exactly one destination. */
export interface OutgoingMessage {
  destId?: string;
  destClientId?: string;
  destSessionId?: string;
  /** With destSessionId: only this member (e.g. an anonymous alias). */
  memberId?: string;
  payload?: Json;
  payload1?: Json;
  payload2?: Json;
}

/** A send the edge accepted. */
export interface SentOutcome {
  status: 'delivered' | 'stored';
  msgId: string;
  /** The client-side correlation id. */
  id: string;
  /** A session message's seq in the history. */
  seq?: number;
  /**
   * A partial outcome (`dest_client_id`): the targets whose copy was neither
   * acknowledged nor stored, with why. Absent when every copy arrived.
   */
  failed?: TargetFailure[];
}

/** One target of a partial outcome. */
export interface TargetFailure {
  node: string;
  code: 'inbox_full' | 'unavailable' | 'overloaded' | (string & {});
}

/** The raw `sent` frame, as the 'sent' event reports it. */
export interface SentFrame {
  type: 'sent';
  id?: string;
  msg_id?: string;
  status: 'delivered' | 'stored' | 'rejected';
  error?: { code: string; message?: string };
  seq?: number;
  failed?: TargetFailure[];
}

export interface PresenceEvent {
  sessionId: string;
  memberId: string;
  online: boolean;
}

/**
 * How many named members of a large session are online. A session with more
 * members than the edge's ALLSPARK_PRESENCE_MAX_MEMBERS (default 100) gets
 * these instead of `presence` events: at most one per summary interval and
 * only when the count changed, and one when this node connects or joins. The
 * count is approximate (a node on two edges counts twice; the members of an
 * edge that died count until it is considered dead); anonymous members are
 * never counted.
 */
export interface PresenceSummaryEvent {
  sessionId: string;
  online: number;
}

export type ConnectionState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'disconnected' | 'closed';

export interface StateEvent {
  state: ConnectionState;
  previous: ConnectionState;
  /** For disconnected/reconnecting: the close code and reason, when known. */
  code?: number;
  reason?: string;
  /** For reconnecting: the delay before the next attempt. */
  delayMs?: number;
}

export interface ClientEvents extends Record<string, unknown> {
  message: Message;
  presence: PresenceEvent;
  /** The online count of a session too large for per-member presence. */
  presenceSummary: PresenceSummaryEvent;
  sent: SentFrame;
  state: StateEvent;
  error: AllSparkError;
  /** The inbox replay is over: every pending message has been handed to the app. */
  synced: { pending: number };
  /** A message the app already handled arrived again (a replay after a lost ack); it was acked and dropped. */
  duplicate: { msgId: string };
  /** A session sync reached the session's newest message. */
  session_synced: { sessionId: string; lastSeq: number };
}

export interface SessionInfo {
  sessionId: string;
  members: Array<{ memberId: string; online: boolean }>;
  lastSeq: number;
  ackedSeq: number;
}
