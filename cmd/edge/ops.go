package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// startOps serves the operator's endpoints on ALLSPARK_OPS_LISTEN, away
// from the public listener: /metrics, /healthz, and net/http/pprof when
// ALLSPARK_PPROF=true. The deprecated ALLSPARK_PPROF_LISTEN still serves
// pprof on a listener of its own. stop closes them all.
func startOps(n NetConfig, metrics http.Handler, log *slog.Logger) (addr string, stop func(), err error) {
	var servers []*http.Server
	var done []chan struct{}
	stop = func() {
		for _, s := range servers {
			_ = s.Close()
		}
		for _, d := range done {
			<-d
		}
	}
	serve := func(name, listen string, h http.Handler) (string, error) {
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return "", fmt.Errorf("%s=%s: %w", name, listen, err)
		}
		s := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
		d := make(chan struct{})
		servers, done = append(servers, s), append(done, d)
		go func() {
			defer close(d)
			if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Warn("ops listener stopped", "listener", name, "err", err)
			}
		}()
		return ln.Addr().String(), nil
	}
	if n.OpsListen != "off" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metrics)
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"status":"ok"}`+"\n")
		})
		if n.Pprof {
			pprofRoutes(mux)
		}
		if addr, err = serve("ALLSPARK_OPS_LISTEN", n.OpsListen, mux); err != nil {
			stop()
			return "", nil, err
		}
		log.Info("ops listening", "addr", addr, "pprof", n.Pprof)
	} else if n.Pprof {
		log.Warn("ALLSPARK_PPROF=true has no effect with ALLSPARK_OPS_LISTEN=off")
	}
	if n.PprofListen != "" {
		log.Warn("ALLSPARK_PPROF_LISTEN is deprecated: set ALLSPARK_PPROF=true to serve pprof on ALLSPARK_OPS_LISTEN")
		mux := http.NewServeMux()
		pprofRoutes(mux)
		paddr, err := serve("ALLSPARK_PPROF_LISTEN", n.PprofListen, mux)
		if err != nil {
			stop()
			return "", nil, err
		}
		log.Info("pprof listening", "addr", paddr)
	}
	return addr, stop, nil
}

func pprofRoutes(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}
