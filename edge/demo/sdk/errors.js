/** An error with a machine-readable code. */
export class AllSparkError extends Error {
    code;
    /** HTTP status, when the error came from an HTTP answer. */
    status;
    /** Websocket close code, when the error came from a close. */
    closeCode;
    /** The frame or value the error is about, when there is one. */
    detail;
    constructor(code, message, opts = {}) {
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
};
