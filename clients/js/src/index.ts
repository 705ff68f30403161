export { connect, AllSparkClient, outgoingFrame } from './client.js';
export { AllSparkError, CloseCode, type ErrorCode } from './errors.js';
export { validId, MaxIDLen } from './ids.js';
export { SeenSet } from './dedup.js';
export { Backoff, type BackoffOptions } from './backoff.js';
export type { ConnectInfo } from './http.js';
export type {
  ClientEvents,
  ConnectOptions,
  ConnectionState,
  Json,
  Message,
  OutgoingMessage,
  PresenceEvent,
  PresenceSummaryEvent,
  SentFrame,
  SentOutcome,
  TargetFailure,
  SessionInfo,
  StateEvent,
  WebSocketCtor,
  WebSocketLike,
} from './types.js';
