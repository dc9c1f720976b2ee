// Package httpapi is Hutong's merchant API: the /v1 JSON endpoints, their middleware (request
// ids, logging, metrics, panic recovery, body limits, API key authentication, idempotency), the
// one table from error kinds to HTTP statuses, and the OpenAPI document that describes it all.
package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

// Config wires the API.
type Config struct {
	Service *gateway.Service
	Store   gateway.Store // API keys and idempotency records
	Logger  *slog.Logger
	// Metrics receives the API's collectors and is served at /metrics. Nil means a fresh registry
	// with the Go and process collectors.
	Metrics *prometheus.Registry
	Now     func() time.Time
	// Extra mounts more routes on the same mux (wallet notifications, checkout pages). They get
	// request ids, logging, metrics, panic recovery and the body limit, but no API key auth.
	Extra func(mux *http.ServeMux)
	// ExtraAPI mounts more merchant API routes, such as the webhook endpoints. Every route it
	// mounts under /v1/ is authenticated before its handler runs (a missing, unknown or revoked
	// key is answered 401 here); the handler learns the caller with Merchant(r) and should answer
	// errors with writeError, the API's one error table.
	ExtraAPI func(mux *http.ServeMux, writeError func(w http.ResponseWriter, r *http.Request, err error))
	// IdempotencyStaleAfter is how long an idempotency key may stay in flight before a retry may
	// take it over (the first request's process is presumed dead). Default 5 minutes: well above
	// any wallet call's timeout, so a slow first request is never run twice.
	IdempotencyStaleAfter time.Duration
}

// IdempotencyTTL is how long idempotency records are kept; PurgeIdempotency deletes older ones.
const IdempotencyTTL = 24 * time.Hour

type api struct {
	svc        *gateway.Service
	store      gateway.Store
	log        *slog.Logger
	now        func() time.Time
	staleAfter time.Duration
	metrics    *metrics
	gatherer   prometheus.Gatherer
	mux        *http.ServeMux
	own        map[string]bool // the patterns of routes()
}

// New returns the API's handler.
func New(cfg Config) http.Handler { return newAPI(cfg) }

func newAPI(cfg Config) *api {
	a := &api{svc: cfg.Service, store: cfg.Store, log: cfg.Logger, now: cfg.Now, staleAfter: cfg.IdempotencyStaleAfter}
	if a.store == nil && a.svc != nil {
		a.store = a.svc.Store()
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.staleAfter <= 0 {
		a.staleAfter = 5 * time.Minute
	}
	reg := cfg.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	a.metrics = newMetrics(reg)
	a.gatherer = reg

	a.mux = http.NewServeMux()
	a.own = map[string]bool{}
	for _, rt := range a.routes() {
		a.own[rt.pattern] = true
		h := a.handle(rt.handler)
		if rt.idempotent {
			h = a.idempotent(h)
		}
		if rt.auth {
			h = a.authenticate(h)
		}
		a.mux.Handle(rt.pattern, h)
	}
	if cfg.Extra != nil {
		cfg.Extra(a.mux)
	}
	if cfg.ExtraAPI != nil {
		cfg.ExtraAPI(a.mux, a.writeError)
	}
	return a
}

// foreignV1 reports whether pattern is a /v1/ route that another package mounted: it is
// authenticated at dispatch, so that nothing under /v1/ is ever served without a key.
func (a *api) foreignV1(pattern string) bool {
	if !strings.HasPrefix(routeLabel(pattern), "/v1/") {
		return false
	}
	return !a.own[pattern]
}

// Merchant returns the merchant and mode of the API key that authenticated r, for handlers
// mounted with Config.ExtraAPI. ok is false when r was not authenticated.
func Merchant(r *http.Request) (merchantID string, livemode bool, ok bool) {
	k := keyFrom(r.Context())
	if k == nil {
		return "", false, false
	}
	return k.MerchantID, k.Livemode, true
}

// route is one endpoint of the API.
type route struct {
	pattern    string
	handler    handlerFunc
	auth       bool // needs an API key
	idempotent bool // honours Idempotency-Key
}

// routes is the API's route table; the OpenAPI test checks it against the document.
func (a *api) routes() []route {
	return []route{
		{pattern: "POST /v1/payments", handler: a.createPayment, auth: true, idempotent: true},
		{pattern: "GET /v1/payments", handler: a.listPayments, auth: true},
		{pattern: "GET /v1/payments/{id}", handler: a.getPayment, auth: true},
		{pattern: "POST /v1/payments/{id}/cancel", handler: a.cancelPayment, auth: true, idempotent: true},
		{pattern: "POST /v1/refunds", handler: a.createRefund, auth: true, idempotent: true},
		{pattern: "GET /v1/refunds/{id}", handler: a.getRefund, auth: true},
		{pattern: "GET /v1/events", handler: a.listEvents, auth: true},
		{pattern: "GET /healthz", handler: a.healthz},
		{pattern: "GET /metrics", handler: a.serveMetrics},
		{pattern: "GET /openapi.json", handler: a.serveOpenAPI},
	}
}

// handlerFunc is an endpoint; an error it returns becomes the response.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (a *api) handle(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			a.writeError(w, r, err)
		}
	})
}

// writeJSON answers with v. An encoding failure is a bug, answered as an internal error.
func (a *api) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		a.log.LogAttrs(r.Context(), slog.LevelError, "encode response", slog.String("request_id", requestIDFrom(r.Context())), slog.String("err", err.Error()))
		status, body = http.StatusInternalServerError, []byte(`{"error":{"type":"api_error","code":"internal_error","message":"internal error"}}`)
	}
	body = append(body, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (a *api) healthz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	// The store has no ping; looking up a merchant that cannot exist touches the database and
	// answers "not found" when it is reachable.
	_, err := a.store.Merchant(ctx, "mer_healthz_probe")
	if err != nil && !payment.IsNotFound(err) {
		a.log.LogAttrs(r.Context(), slog.LevelError, "health check failed", slog.String("request_id", requestIDFrom(r.Context())), slog.String("err", err.Error()))
		a.writeJSON(w, r, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
		return nil
	}
	a.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (a *api) serveMetrics(w http.ResponseWriter, r *http.Request) error {
	promhttp.HandlerFor(a.gatherer, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	return nil
}

// routeLabel is the path part of a mux pattern ("/v1/payments/{id}"), a bounded label value.
func routeLabel(pattern string) string {
	if pattern == "" {
		return "unmatched"
	}
	if _, path, ok := strings.Cut(pattern, " "); ok {
		return path
	}
	return pattern
}
