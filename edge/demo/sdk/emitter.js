/** A tiny typed event emitter whose emit never throws. */
export class Emitter {
    listeners = new Map();
    on(event, fn) {
        let set = this.listeners.get(event);
        if (!set)
            this.listeners.set(event, (set = new Set()));
        set.add(fn);
        return () => this.off(event, fn);
    }
    off(event, fn) {
        this.listeners.get(event)?.delete(fn);
    }
    listenersOf(event) {
        return [...(this.listeners.get(event) ?? [])];
    }
    /** emit calls every listener; one that throws is reported through onListenerError. */
    emit(event, ev) {
        for (const fn of this.listenersOf(event)) {
            try {
                const r = fn(ev);
                if (r && typeof r.then === 'function') {
                    r.then(undefined, (err) => this.onListenerError(event, err));
                }
            }
            catch (err) {
                this.onListenerError(event, err);
            }
        }
    }
    onListenerError(_event, _err) { }
}
