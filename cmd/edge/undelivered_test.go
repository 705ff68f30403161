package main

import "testing"

// The all-in-one edge with neither push credentials nor lifecycle events
// keeps no undelivered events (nobody would read them) unless asked; a
// cluster edge keeps them for the push workers it cannot see.
func TestUndeliveredEventsDefault(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want bool
	}{
		{"all-in-one without push or lifecycle events", map[string]string{"ALLSPARK_EVENTS": "false"}, false},
		{"all-in-one with lifecycle events (message.stored)", map[string]string{}, true},
		{"all-in-one, asked for", map[string]string{"ALLSPARK_EVENTS": "false", "ALLSPARK_UNDELIVERED_EVENTS": "true"}, true},
		{"cluster edge", map[string]string{"ALLSPARK_NATS_URL": "nats://127.0.0.1:1", "ALLSPARK_AUTH_SECRET": "0123456789abcdef0123"}, true},
		{"cluster edge, turned off", map[string]string{"ALLSPARK_NATS_URL": "nats://127.0.0.1:1", "ALLSPARK_AUTH_SECRET": "0123456789abcdef0123", "ALLSPARK_UNDELIVERED_EVENTS": "false"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.env["ALLSPARK_DATA_DIR"] = t.TempDir()
			cfg, err := loadConfig(envOf(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.UndeliveredEvents != tc.want {
				t.Fatalf("UndeliveredEvents = %v, want %v", cfg.UndeliveredEvents, tc.want)
			}
		})
	}
}
