// Command edge runs an AllSpark edge. With ALLSPARK_NATS_URL unset it also
// runs an embedded NATS server with JetStream, so `go run ./cmd/edge` is a
// complete single-box deployment.
//
//	edge                                   serve (default)
//	edge token --node ID [--client ID] [--ttl 24h] [--create-secret]   print a development auth_key
//	edge nats-credentials [--backend | --service]    print the embedded NATS's URLs with credentials
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "edge:", err)
		os.Exit(1)
	}
}

const usage = "usage: edge [serve] | edge token --node ID [--client ID] [--ttl 24h] [--create-secret] | edge nats-credentials [--backend | --service]\n" +
	"Configuration is environment only: see .env.example. `edge token --help` describes token."

func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "token":
			return runToken(args[1:], getenv, stdout)
		case "nats-credentials":
			return runNATSCredentials(args[1:], getenv, stdout)
		case "serve":
			args = args[1:]
			if len(args) == 1 && isHelp(args[0]) {
				fmt.Fprintln(stdout, usage)
				return nil
			}
		case "-h", "-help", "--help", "help":
			fmt.Fprintln(stdout, usage)
			return nil
		default:
			return fmt.Errorf("unknown command %q (want serve, token or nats-credentials)", args[0])
		}
	}
	if len(args) > 0 {
		return fmt.Errorf("serve takes no arguments; configure with ALLSPARK_* variables")
	}
	return serve(ctx, getenv, stdout)
}
