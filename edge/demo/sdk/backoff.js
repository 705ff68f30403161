/**
 * Backoff is exponential with full jitter: attempt n waits a random time
 * in [0, min(max, initial*factor^n)], so clients dropped together by a dead
 * edge do not come back together.
 */
export class Backoff {
    random;
    attempt = 0;
    initial;
    max;
    factor;
    constructor(opts = {}, random = Math.random) {
        this.random = random;
        this.initial = opts.initialMs ?? 250;
        this.max = opts.maxMs ?? 15000;
        this.factor = opts.factor ?? 2;
    }
    next() {
        const ceiling = Math.min(this.max, this.initial * Math.pow(this.factor, this.attempt));
        this.attempt++;
        return Math.round(this.random() * ceiling);
    }
    reset() {
        this.attempt = 0;
    }
    get attempts() {
        return this.attempt;
    }
}
