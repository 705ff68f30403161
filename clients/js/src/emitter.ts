/** A tiny typed event emitter whose emit never throws. */
export class Emitter<Events extends Record<string, unknown>> {
  private readonly listeners = new Map<keyof Events, Set<(ev: any) => unknown>>();

  on<K extends keyof Events>(event: K, fn: (ev: Events[K]) => unknown): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn);
    return () => this.off(event, fn);
  }

  off<K extends keyof Events>(event: K, fn: (ev: Events[K]) => unknown): void {
    this.listeners.get(event)?.delete(fn);
  }

  protected listenersOf<K extends keyof Events>(event: K): Array<(ev: Events[K]) => unknown> {
    return [...(this.listeners.get(event) ?? [])];
  }

  /** emit calls every listener; one that throws is reported through onListenerError. */
  protected emit<K extends keyof Events>(event: K, ev: Events[K]): void {
    for (const fn of this.listenersOf(event)) {
      try {
        const r = fn(ev);
        if (r && typeof (r as Promise<unknown>).then === 'function') {
          (r as Promise<unknown>).then(undefined, (err) => this.onListenerError(event, err));
        }
      } catch (err) {
        this.onListenerError(event, err);
      }
    }
  }

  protected onListenerError(_event: keyof Events, _err: unknown): void {}
}
