/** Backoff options: delays in milliseconds. */
export interface BackoffOptions {
  /** First delay ceiling (default 250). */
  initialMs?: number;
  /** Largest delay ceiling (default 15000). */
  maxMs?: number;
  /** Ceiling growth per attempt (default 2). */
  factor?: number;
}

/**
 * Backoff is exponential with full jitter: attempt n waits a random time
 * in [0, min(max, initial*factor^n)], so clients dropped together by a dead
 * edge do not come back together.
 */
export class Backoff {
  private attempt = 0;
  private readonly initial: number;
  private readonly max: number;
  private readonly factor: number;
  constructor(opts: BackoffOptions = {}, private readonly random: () => number = Math.random) {
    this.initial = opts.initialMs ?? 250;
    this.max = opts.maxMs ?? 15000;
    this.factor = opts.factor ?? 2;
  }
  next(): number {
    const ceiling = Math.min(this.max, this.initial * Math.pow(this.factor, this.attempt));
    this.attempt++;
    return Math.round(this.random() * ceiling);
  }
  reset(): void {
    this.attempt = 0;
  }
  get attempts(): number {
    return this.attempt;
  }
}
