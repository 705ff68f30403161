package main

import (
	"context"
	"strings"
	"testing"
)

// Asking for help is not a failure: usage goes to stdout and the command
// succeeds (main exits 0 when run returns nil).
func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"token", "--help"}, {"token", "-h"}, {"--help"}, {"help"}, {"serve", "--help"}} {
		var out strings.Builder
		if err := run(context.Background(), args, envOf(nil), &out); err != nil {
			t.Errorf("%v: %v", args, err)
		}
		if !strings.Contains(out.String(), "usage: edge") {
			t.Errorf("%v printed %q, want usage", args, out.String())
		}
	}
	var out strings.Builder
	_ = run(context.Background(), []string{"token", "--help"}, envOf(nil), &out)
	for _, flag := range []string{"-node", "-client", "-ttl", "-create-secret"} {
		if !strings.Contains(out.String(), flag) {
			t.Errorf("token usage does not describe %s:\n%s", flag, out.String())
		}
	}
}

func TestTokenRejectsStrayArguments(t *testing.T) {
	err := run(context.Background(), []string{"token", "--node", "a", "extra"}, envOf(nil), &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "extra") {
		t.Fatalf("err = %v", err)
	}
}
