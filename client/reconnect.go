package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/allspark-rt/allspark"
)

// errUnauthorized marks a refused auth_key (HTTP 401 or close code 4001).
var errUnauthorized = errors.New("unauthorized")

// supervise connects, waits for the connection to end, and reconnects
// until Close.
func (c *Client) supervise() {
	defer c.wg.Done()
	defer close(c.done)
	attempt := 0
	state := Connecting
	var lastErr error
	for {
		c.emitState(StateChange{State: state})
		w, err := c.connect(c.ctx)
		if err == nil {
			err = c.serve(w)
			if err == nil {
				attempt = 0
			}
		}
		if c.stopped() {
			c.reportFirst(ErrClosed)
			return
		}
		delay := c.backoff(attempt)
		attempt++
		code := 0
		if w != nil {
			var reconnect time.Duration
			code, reconnect, lastErr = w.endState()
			c.emitState(StateChange{State: Disconnected, Err: lastErr, CloseCode: code})
			switch {
			case reconnect >= 0:
				delay = reconnect
			case code == allspark.CloseGoingAway:
				delay = 0
			}
		} else {
			lastErr = err
			c.emit(event{err: err})
		}
		if code == allspark.CloseReplaced {
			c.emitState(StateChange{State: Disconnected, Err: ErrReplaced, CloseCode: code})
			c.reportFirst(ErrReplaced)
			return
		}
		if code == allspark.CloseAuthExpired || errors.Is(err, errUnauthorized) {
			if !c.refreshKey() {
				c.emitState(StateChange{State: Disconnected, Err: ErrUnauthorized, CloseCode: code})
				c.reportFirst(fmt.Errorf("connect: %w: %w", ErrUnauthorized, lastErr))
				if !c.waitForKey() {
					return
				}
				delay = 0
			}
		}
		state = Reconnecting
		if delay > 0 && !c.sleep(delay) {
			return
		}
	}
}

func (c *Client) stopped() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

func (c *Client) reportFirst(err error) {
	select {
	case c.first <- err:
	default:
	}
}

// backoff is the delay before attempt n+1: exponential from MinBackoff,
// capped at MaxBackoff, with full jitter over its upper half so clients
// dropped together do not come back together.
func (c *Client) backoff(n int) time.Duration {
	d := c.cfg.MinBackoff << min(n, 20)
	if d <= 0 || d > c.cfg.MaxBackoff {
		d = c.cfg.MaxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

func (c *Client) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.stop:
		return false
	}
}

// refreshKey asks RefreshKey for a new auth_key.
func (c *Client) refreshKey() bool {
	if c.cfg.RefreshKey == nil {
		return false
	}
	key, err := c.cfg.RefreshKey(c.ctx)
	if err != nil || key == "" {
		if err == nil {
			err = errors.New("RefreshKey returned an empty key")
		}
		c.emit(event{err: fmt.Errorf("refresh auth_key: %w", err)})
		return false
	}
	c.mu.Lock()
	c.key = key
	c.mu.Unlock()
	return true
}

// waitForKey waits for SetAuthKey; false when the client is closed.
func (c *Client) waitForKey() bool {
	select {
	case <-c.keyCh:
		return true
	case <-c.stop:
		return false
	}
}

// connect fetches pre-connection info from the first base URL that
// answers and opens the websocket.
func (c *Client) connect(ctx context.Context) (*wsConn, error) {
	c.mu.Lock()
	key := c.key
	c.mu.Unlock()
	var errs []error
	for _, base := range append([]string{c.cfg.URL}, c.cfg.Fallbacks...) {
		info, err := c.connectInfo(ctx, base, key)
		if err != nil {
			if errors.Is(err, errUnauthorized) {
				return nil, err
			}
			errs = append(errs, err)
			continue
		}
		u, err := wsURLFor(base, c.cfg.Direct, info)
		if err != nil {
			return nil, err
		}
		w, err := c.dial(ctx, u, key)
		if err != nil {
			if errors.Is(err, errUnauthorized) {
				return nil, err
			}
			errs = append(errs, err)
			continue
		}
		c.mu.Lock()
		c.base = base
		c.mu.Unlock()
		return w, nil
	}
	return nil, errors.Join(errs...)
}

// serve runs one connection until it ends. It returns nil when the
// connection caught up (sync_done) before ending.
func (c *Client) serve(w *wsConn) error {
	c.mu.Lock()
	c.cur = w
	close(c.up)
	c.mu.Unlock()
	c.wg.Add(2)
	go w.writeLoop()
	go func() {
		defer c.wg.Done()
		w.ws.ReadLoop()
	}()
	var err error
	select {
	case <-w.synced: // the dispatcher reports the first connection, after the replay's messages
		c.resumeSessions(w)
	case <-w.done:
		err = errors.New("connection ended before sync_done")
	}
	<-w.done
	c.mu.Lock()
	c.cur = nil
	c.up = make(chan struct{})
	c.mu.Unlock()
	return err
}
