interface Tracked {
  memberId?: string;
  /** Every message with seq <= cursor has been handed to the app. */
  cursor: number;
  /** The running sync: its after_seq, correlation id and the seqs seen since it was sent. */
  sync: { after: number; id: string; seqs: number[] } | null;
}

/**
 * SessionTracker keeps, per joined session, the seq up to which the app has
 * every message, and drives the `sync` frames that fill the gap after a
 * (re)connection, page by page.
 *
 * seq is a cursor, not a count (it is not contiguous), so a page is known
 * to be complete only when its last seq reaches the sync_done's last_seq.
 */
export class SessionTracker {
  private readonly sessions = new Map<string, Tracked>();
  private nextId = 0;

  constructor(
    private readonly limit: number,
    private readonly write: (frame: string) => boolean,
  ) {}

  track(sessionId: string, afterSeq?: number, memberId?: string): void {
    const t = this.sessions.get(sessionId);
    if (t) {
      if (memberId) t.memberId = memberId;
      return;
    }
    this.sessions.set(sessionId, { memberId, cursor: afterSeq ?? 0, sync: null });
  }

  memberId(sessionId: string): string | undefined {
    return this.sessions.get(sessionId)?.memberId;
  }

  untrack(sessionId: string): void {
    this.sessions.delete(sessionId);
  }

  setCursor(sessionId: string, seq: number): void {
    const t = this.sessions.get(sessionId);
    if (t) t.cursor = seq;
  }

  cursors(): Array<{ sessionId: string; afterSeq: number; memberId?: string }> {
    return [...this.sessions].map(([sessionId, t]) => ({ sessionId, afterSeq: t.cursor, memberId: t.memberId }));
  }

  /** reset forgets running syncs: the connection they ran on is gone. */
  reset(): void {
    for (const t of this.sessions.values()) t.sync = null;
  }

  startAll(): void {
    for (const id of this.sessions.keys()) this.start(id);
  }

  /** start sends a sync from the session's cursor, unless one is running. */
  start(sessionId: string): void {
    const t = this.sessions.get(sessionId);
    if (!t || t.sync) return;
    this.page(sessionId, t, t.cursor);
  }

  private page(sessionId: string, t: Tracked, after: number): void {
    const id = `sync-${++this.nextId}`;
    t.sync = { after, id, seqs: [] };
    if (!this.write(JSON.stringify({ type: 'sync', id, session_id: sessionId, after_seq: after, limit: this.limit }))) {
      t.sync = null;
    }
  }

  /** saw records a session message handed to the app. */
  saw(sessionId: string, seq: number): void {
    const t = this.sessions.get(sessionId);
    if (!t) return;
    if (t.sync) {
      t.sync.seqs.push(seq);
    } else if (seq > t.cursor) {
      // Live, after this connection's sync completed: nothing is missing before it.
      t.cursor = seq;
    }
  }

  /**
   * done handles a session sync_done. It reports whether the session is
   * now caught up; otherwise it asked for the next page.
   */
  done(sessionId: string, lastSeq: number): boolean {
    const t = this.sessions.get(sessionId);
    if (!t || !t.sync) return false;
    const { after, seqs } = t.sync;
    let pageMax = after;
    for (const s of seqs) if (s <= lastSeq && s > pageMax) pageMax = s;
    if (pageMax > after && pageMax < lastSeq) {
      this.page(sessionId, t, pageMax);
      return false;
    }
    // Caught up (or the rest of the range was trimmed from the history).
    let max = Math.max(t.cursor, lastSeq);
    for (const s of seqs) if (s > max) max = s;
    t.cursor = max;
    t.sync = null;
    return true;
  }

  /** failed handles an error frame for a sync; it reports whether id was one. */
  failed(id: string): boolean {
    for (const t of this.sessions.values()) {
      if (t.sync?.id === id) {
        t.sync = null;
        return true;
      }
    }
    return false;
  }
}
