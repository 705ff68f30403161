/**
 * SeenSet remembers the last `capacity` msg_ids, oldest forgotten first.
 * Delivery is at-least-once; this is what turns it into exactly-once for
 * the app, across reconnects, in bounded memory.
 */
export class SeenSet {
    capacity;
    ids = new Map();
    constructor(capacity) {
        this.capacity = capacity;
        if (!(capacity >= 1))
            throw new RangeError('dedup capacity must be at least 1');
    }
    has(id) {
        return this.ids.has(id);
    }
    add(id) {
        if (this.ids.has(id))
            return;
        this.ids.set(id, true);
        if (this.ids.size > this.capacity) {
            const oldest = this.ids.keys().next().value;
            this.ids.delete(oldest);
        }
    }
    get size() {
        return this.ids.size;
    }
}
