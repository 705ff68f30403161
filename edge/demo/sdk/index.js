export { connect, AllSparkClient, outgoingFrame } from './client.js';
export { AllSparkError, CloseCode } from './errors.js';
export { validId, MaxIDLen } from './ids.js';
export { SeenSet } from './dedup.js';
export { Backoff } from './backoff.js';
