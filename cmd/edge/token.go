package main

import (
	"errors"
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
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: edge token --node ID [--client ID] [--ttl 24h] [--create-secret]\n"+
			"Prints an auth_key signed with ALLSPARK_AUTH_SECRET, or with the development secret the\n"+
			"all-in-one edge keeps in ALLSPARK_DATA_DIR.")
		fs.PrintDefaults()
	}
	node := fs.String("node", "", "node id (required)")
	client := fs.String("client", "", "client id (default: the node id)")
	ttl := fs.Duration("ttl", 24*time.Hour, "validity")
	create := fs.Bool("create-secret", false, "generate the development secret in ALLSPARK_DATA_DIR if there is none yet\n(by default only the edge generates it, so a wrong data dir is an error)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // usage was printed; asking for it is not a failure
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("token: unexpected argument %q", fs.Arg(0))
	}
	if *node == "" {
		return fmt.Errorf("token: --node is required")
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	secret, err := authSecret(cfg, *create, nil)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	keys, err := newKeys(cfg, secret, nil)
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
