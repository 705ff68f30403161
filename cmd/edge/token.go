package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/allspark-rt/allspark/auth"
)

// runToken prints an auth_key signed with the edge's secret, as an
// application backend would mint one.
func runToken(args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stdout)
	node := fs.String("node", "", "node id (required)")
	client := fs.String("client", "", "client id (default: the node id)")
	ttl := fs.Duration("ttl", 24*time.Hour, "validity")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *node == "" {
		return fmt.Errorf("token: --node is required")
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	secret, err := authSecret(cfg, nil)
	if err != nil {
		return err
	}
	keys, err := auth.NewKeys(secret, time.Now)
	if err != nil {
		return err
	}
	tok, err := keys.MintAuthKey(auth.Identity{NodeID: *node, ClientID: *client}, *ttl)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}
