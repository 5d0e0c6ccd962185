// The example service, naive: Go's net/http with its defaults.
//
// GET / (the version and host), GET /work?ms=N (answers after N ms), GET /healthz and GET /readyz
// (always 200). Listens on $BIND:$PORT (default 0.0.0.0:8080). Run: go run ./naive
//
// Nothing here handles SIGTERM, so its default action applies: the process dies at once, with
// whatever requests it was serving.
package main

import (
	"encoding/json"
	"net/http"
	"os"
	"strconv"
	"time"
)

func env(name, fallback string) string {
	if value, ok := os.LookupEnv(name); ok {
		return value
	}
	return fallback
}

func main() {
	version, host := env("APP_VERSION", "v1"), env("HOSTNAME", "localhost")
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			answer(w, http.StatusNotFound, map[string]any{"error": "not found"})
			return
		}
		answer(w, http.StatusOK, map[string]any{"version": version, "host": host})
	})
	http.HandleFunc("/work", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		time.Sleep(time.Duration(ms) * time.Millisecond)
		answer(w, http.StatusOK, map[string]any{"version": version, "worked_ms": ms})
	})
	ok := func(w http.ResponseWriter, r *http.Request) { answer(w, http.StatusOK, "ok") }
	http.HandleFunc("/healthz", ok)
	http.HandleFunc("/readyz", ok)
	if err := http.ListenAndServe(env("BIND", "0.0.0.0")+":"+env("PORT", "8080"), nil); err != nil {
		panic(err)
	}
}

func answer(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
