/**
 * Error codes. The server's codes are the catalog in codes.go (see
 * docs/PROTOCOL.md); the client-side ones say what the SDK itself decided.
 */
export type ErrorCode =
  | 'bad_frame'
  | 'unknown_type'
  | 'bad_id'
  | 'too_large'
  | 'rate_limited'
  | 'not_member'
  | 'unavailable'
  | 'offline'
  | 'inbox_full'
  | 'unauthorized'
  | 'not_found'
  | 'conflict'
  | 'forbidden'
  | 'bad_request'
  | 'internal'
  | 'overloaded'
  | 'busy'
  | 'method_not_allowed'
  /** Client side: the edge closed the connection with 4011; the client does not reconnect. */
  | 'replaced'
  /** Client side: the connection ended before the edge answered this send; its outcome is unknown. */
  | 'connection_lost'
  /** Client side: the client was closed. */
  | 'closed'
  /** Client side: the app's message handler threw; the message was not acked. */
  | 'handler_failed'
  | (string & {});

/** An error with a machine-readable code. */
export class AllSparkError extends Error {
  readonly code: ErrorCode;
  /** HTTP status, when the error came from an HTTP answer. */
  readonly status?: number;
  /** Websocket close code, when the error came from a close. */
  readonly closeCode?: number;
  /** The frame or value the error is about, when there is one. */
  readonly detail?: unknown;

  constructor(code: ErrorCode, message?: string, opts: { status?: number; closeCode?: number; detail?: unknown } = {}) {
    super(message ? `${code}: ${message}` : code);
    this.name = 'AllSparkError';
    this.code = code;
    this.status = opts.status;
    this.closeCode = opts.closeCode;
    this.detail = opts.detail;
  }
}

/** Websocket close codes an edge sends (codes.go). */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  TooLarge: 1009,
  TryAgain: 1013,
  AuthExpired: 4001,
  RateLimited: 4008,
  SlowConsumer: 4009,
  Replaced: 4011,
} as const;
