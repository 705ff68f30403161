package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// MaxDevicesPerClient bounds a client's node list; the least recently seen
// node is forgotten first.
const MaxDevicesPerClient = 64

// Devices records which nodes belong to a client, so a message to
// dest_client_id reaches every device, including offline ones (whose copies
// go to their inboxes). One KV value per client keeps a send to one read;
// a connect writes only when the node is new or not seen for a day.
type Devices struct {
	kv     jetstream.KeyValue
	now    func() time.Time
	forget time.Duration // nodes not seen this long drop out
}

type deviceList struct {
	Nodes map[string]int64 `json:"nodes"` // node id -> last seen, Unix seconds
}

// refreshAfter is how stale a node's last-seen may get before a connect
// rewrites it. It trades precision of forgetting for write volume.
const refreshAfter = 24 * time.Hour

// OpenDevices creates or binds the devices bucket. Nodes unseen for forget
// are dropped (use the inbox retention: after that nothing waits for them).
func OpenDevices(ctx context.Context, js jetstream.JetStream, bucket string, replicas int, forget time.Duration, now func() time.Time) (*Devices, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "AllSpark client -> nodes",
		History:     1,
		TTL:         forget,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("open devices bucket: %w", err)
	}
	return &Devices{kv: kv, now: now, forget: forget}, nil
}

// Add records that nodeID belongs to clientID.
func (d *Devices) Add(ctx context.Context, clientID, nodeID string) error {
	err := UpdateKV(ctx, d.kv, Token(clientID), func(cur []byte) ([]byte, error) {
		list := decodeDevices(cur)
		now := d.now()
		if seen, ok := list.Nodes[nodeID]; ok && now.Sub(time.Unix(seen, 0)) < refreshAfter {
			return nil, ErrNoChange
		}
		list.Nodes[nodeID] = now.Unix()
		d.prune(&list, now)
		return json.Marshal(list)
	})
	if err != nil {
		return fmt.Errorf("record device of client: %w", err)
	}
	return nil
}

// Nodes lists clientID's nodes, or none if the client is unknown.
func (d *Devices) Nodes(ctx context.Context, clientID string) ([]string, error) {
	list, err := d.get(ctx, Token(clientID))
	if err != nil {
		return nil, err
	}
	now := d.now()
	out := make([]string, 0, len(list.Nodes))
	for n, seen := range list.Nodes {
		if now.Sub(time.Unix(seen, 0)) <= d.forget {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (d *Devices) get(ctx context.Context, key string) (deviceList, error) {
	e, err := d.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return decodeDevices(nil), nil
	case err != nil:
		return deviceList{}, fmt.Errorf("read device list: %w", err)
	}
	return decodeDevices(e.Value()), nil
}

// decodeDevices reads a stored list; an absent or corrupt one is empty
// (and will be overwritten).
func decodeDevices(b []byte) deviceList {
	var list deviceList
	if len(b) > 0 {
		_ = json.Unmarshal(b, &list)
	}
	if list.Nodes == nil {
		list.Nodes = map[string]int64{}
	}
	return list
}

func (d *Devices) prune(list *deviceList, now time.Time) {
	for n, seen := range list.Nodes {
		if now.Sub(time.Unix(seen, 0)) > d.forget {
			delete(list.Nodes, n)
		}
	}
	for len(list.Nodes) > MaxDevicesPerClient {
		oldest, at := "", int64(1<<62)
		for n, seen := range list.Nodes {
			if seen < at || (seen == at && n < oldest) {
				oldest, at = n, seen
			}
		}
		delete(list.Nodes, oldest)
	}
}
