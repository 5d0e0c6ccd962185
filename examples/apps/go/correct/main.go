// The example service, correct: the naive one (../naive) plus a SIGTERM sequence.
//
// On SIGTERM: /readyz answers 503 at once and every answer says `Connection: close`, while
// everything is still served for DRAIN_DELAY (default 5s: the routers learn of the pod's removal
// late); then http.Server.Shutdown closes the listener, closes idle connections and waits for the
// requests in flight (at most SHUTDOWN_TIMEOUT, default 20s), and the process exits 0 (1 when
// the timeout cut requests off). A second SIGTERM exits at once (1). Run: go run ./correct
package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

func env(name, fallback string) string {
	if value, ok := os.LookupEnv(name); ok {
		return value
	}
	return fallback
}

func duration(name, fallback string) time.Duration {
	d, err := time.ParseDuration(env(name, fallback))
	if err != nil {
		panic(name + ": " + err.Error())
	}
	return d
}

func main() {
	version, host := env("APP_VERSION", "v1"), env("HOSTNAME", "localhost")
	drainDelay, shutdownTimeout := duration("DRAIN_DELAY", "5s"), duration("SHUTDOWN_TIMEOUT", "20s")
	var draining atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			answer(w, http.StatusNotFound, map[string]any{"error": "not found"})
			return
		}
		answer(w, http.StatusOK, map[string]any{"version": version, "host": host})
	})
	mux.HandleFunc("/work", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		time.Sleep(time.Duration(ms) * time.Millisecond)
		answer(w, http.StatusOK, map[string]any{"version": version, "worked_ms": ms})
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { answer(w, http.StatusOK, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			answer(w, http.StatusServiceUnavailable, "draining")
			return
		}
		answer(w, http.StatusOK, "ready")
	})
	// While draining, every answer says `Connection: close`: the client opens its next request's
	// connection to another pod, and Go closes this one after the answer, between requests.
	// (Not SetKeepAlivesEnabled(false): it also closes the idle connections at once, under a
	// request that may be arriving on one of them; zdd check's check 6 catches that.)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			w.Header().Set("Connection", "close")
		}
		mux.ServeHTTP(w, r)
	})
	server := &http.Server{Addr: env("BIND", "0.0.0.0") + ":" + env("PORT", "8080"), Handler: handler}

	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, os.Interrupt)
	served := make(chan error, 1)
	go func() { served <- server.ListenAndServe() }()
	select {
	case err := <-served:
		panic(err)
	case <-signals:
	}
	go func() {
		<-signals
		os.Exit(1)
	}()
	draining.Store(true)
	time.Sleep(drainDelay)
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := server.Shutdown(ctx); err != nil {
		os.Exit(1)
	}
}

func answer(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
