package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hutong-pay/hutong/internal/payment"
	"github.com/hutong-pay/hutong/internal/reqbody"
)

// HandlersConfig configures Handlers.
type HandlersConfig struct {
	Store    Store
	Inserter Inserter // enqueues redeliveries
	// Livemode means the node runs live wallets: every URL is checked as a live one, whatever
	// the key's mode.
	Livemode bool
	// RotationOverlap is how long the previous secret keeps signing after a rotation; default 24 h.
	RotationOverlap time.Duration
	// MaxEndpoints bounds a merchant's endpoints (and so one event's fan-out); default 16.
	MaxEndpoints int
	Now          func() time.Time
}

// Handlers serves the merchant API's webhook endpoints.
type Handlers struct {
	store        Store
	inserter     Inserter
	livemode     bool
	overlap      time.Duration
	maxEndpoints int
	now          func() time.Time
}

// NewHandlers returns the webhook handlers.
func NewHandlers(cfg HandlersConfig) *Handlers {
	h := &Handlers{store: cfg.Store, inserter: cfg.Inserter, livemode: cfg.Livemode, overlap: cfg.RotationOverlap,
		maxEndpoints: cfg.MaxEndpoints, now: cfg.Now}
	if h.overlap <= 0 {
		h.overlap = 24 * time.Hour
	}
	if h.maxEndpoints <= 0 {
		h.maxEndpoints = 16
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h
}

// caller is the authenticated merchant of a request.
type caller struct {
	merchantID string
	livemode   bool // the API key's mode
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, c caller) error

// Register mounts the routes on mux. merchant authenticates a request (ok false answers 401);
// writeErr writes an error response (the API's one error table).
func (h *Handlers) Register(mux *http.ServeMux, merchant func(*http.Request) (merchantID string, livemode bool, ok bool),
	writeErr func(http.ResponseWriter, *http.Request, error)) {
	wrap := func(f handlerFunc) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, live, ok := merchant(r)
			if !ok || id == "" {
				writeErr(w, r, &payment.Error{Kind: payment.Unauthorized, Code: "unauthorized", Message: "a valid API key is required"})
				return
			}
			if err := f(w, r, caller{merchantID: id, livemode: live}); err != nil {
				writeErr(w, r, err)
			}
		})
	}
	for _, rt := range h.routes() {
		mux.Handle(rt.pattern, wrap(rt.handler))
	}
}

type route struct {
	pattern string
	handler handlerFunc
}

func (h *Handlers) routes() []route {
	return []route{
		{"POST /v1/webhook_endpoints", h.create},
		{"GET /v1/webhook_endpoints", h.list},
		{"GET /v1/webhook_endpoints/{id}", h.get},
		{"DELETE /v1/webhook_endpoints/{id}", h.delete},
		{"POST /v1/webhook_endpoints/{id}/rotate_secret", h.rotate},
		{"GET /v1/events/{id}/deliveries", h.deliveries},
		{"POST /v1/events/{id}/redeliver", h.redeliver},
	}
}

// Routes returns the patterns Register mounts, for the API document's tests.
func Routes() []string {
	var out []string
	for _, rt := range (&Handlers{}).routes() {
		out = append(out, rt.pattern)
	}
	return out
}

// EndpointView is an endpoint as the API shows it. Secret is set only in the answers to
// creation and rotation.
type EndpointView struct {
	ID                      string              `json:"id"`
	Object                  string              `json:"object"`
	URL                     string              `json:"url"`
	Events                  []payment.EventType `json:"events"` // [] means every event type
	Secret                  string              `json:"secret,omitempty"`
	PreviousSecretExpiresAt *time.Time          `json:"previous_secret_expires_at,omitempty"`
	Status                  string              `json:"status"` // enabled | disabled
	DisabledReason          string              `json:"disabled_reason,omitempty"`
	Livemode                bool                `json:"livemode"`
	CreatedAt               time.Time           `json:"created_at"`
}

func endpointView(e *Endpoint, withSecret bool, now time.Time) EndpointView {
	v := EndpointView{ID: e.ID, Object: "webhook_endpoint", URL: e.URL, Events: e.Events, Status: "enabled",
		DisabledReason: e.DisabledReason, Livemode: e.Livemode, CreatedAt: e.CreatedAt}
	if v.Events == nil {
		v.Events = []payment.EventType{}
	}
	if e.Disabled {
		v.Status = "disabled"
	}
	if withSecret {
		v.Secret = e.Secret
	}
	if e.PreviousSecret != "" && now.Before(e.PreviousSecretExpiresAt) {
		t := e.PreviousSecretExpiresAt
		v.PreviousSecretExpiresAt = &t
	}
	return v
}

// AttemptView is a delivery attempt as the API shows it.
type AttemptView struct {
	ID              string     `json:"id"`
	Object          string     `json:"object"`
	Event           string     `json:"event"`
	WebhookEndpoint string     `json:"webhook_endpoint"`
	Attempt         int        `json:"attempt"`
	Status          string     `json:"status"` // succeeded | failed
	StatusCode      int        `json:"status_code,omitempty"`
	Error           string     `json:"error,omitempty"`
	DurationMS      int64      `json:"duration_ms"`
	CreatedAt       time.Time  `json:"created_at"`
	NextAttemptAt   *time.Time `json:"next_attempt_at,omitempty"`
}

func attemptView(a *Attempt) AttemptView {
	v := AttemptView{ID: a.ID, Object: "webhook_attempt", Event: a.EventID, WebhookEndpoint: a.EndpointID, Attempt: a.Number,
		Status: "failed", StatusCode: a.StatusCode, Error: a.Error, DurationMS: a.Duration.Milliseconds(), CreatedAt: a.At}
	if a.Succeeded() {
		v.Status = "succeeded"
	}
	if !a.NextAttemptAt.IsZero() {
		t := a.NextAttemptAt
		v.NextAttemptAt = &t
	}
	return v
}

// ListView is a list as the API shows it.
type ListView[T any] struct {
	Object  string `json:"object"`
	Data    []T    `json:"data"`
	HasMore bool   `json:"has_more"`
}

func (h *Handlers) create(w http.ResponseWriter, r *http.Request, c caller) error {
	var in struct {
		URL    string
		Events []string
	}
	if err := reqbody.Read(w, r, maxBody, map[string]reqbody.Param{
		"url":    {Dst: &in.URL, Want: "a string"},
		"events": {Dst: &in.Events, Want: "an array of strings"},
	}); err != nil {
		return err
	}
	if err := ValidateURL(in.URL, c.livemode || h.livemode); err != nil {
		return err
	}
	events, err := ValidateEvents(in.Events)
	if err != nil {
		return err
	}
	existing, err := h.store.ListEndpoints(r.Context(), c.merchantID)
	if err != nil {
		return fmt.Errorf("webhook: create endpoint: %w", err)
	}
	if len(existing) >= h.maxEndpoints {
		return payment.Errorf(payment.Conflict, "endpoint_limit", "a merchant may have at most %d webhook endpoints; delete one first", h.maxEndpoints)
	}
	now := h.now()
	ep := &Endpoint{ID: payment.NewID("we"), MerchantID: c.merchantID, Livemode: c.livemode, URL: in.URL, Events: events,
		Secret: NewSecret(), CreatedAt: now}
	if err := h.store.CreateEndpoint(r.Context(), ep); err != nil {
		return fmt.Errorf("webhook: create endpoint: %w", err)
	}
	return writeJSON(w, http.StatusOK, endpointView(ep, true, now))
}

func (h *Handlers) list(w http.ResponseWriter, r *http.Request, c caller) error {
	eps, err := h.store.ListEndpoints(r.Context(), c.merchantID)
	if err != nil {
		return fmt.Errorf("webhook: list endpoints: %w", err)
	}
	now := h.now()
	out := ListView[EndpointView]{Object: "list", Data: make([]EndpointView, 0, len(eps))}
	for _, e := range eps {
		if e.Livemode == c.livemode {
			out.Data = append(out.Data, endpointView(e, false, now))
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

// endpoint returns the caller's endpoint id, of the caller's mode: a test key cannot see or
// change a live endpoint, nor the other way round.
func (h *Handlers) endpoint(r *http.Request, c caller, id string) (*Endpoint, error) {
	ep, err := h.store.Endpoint(r.Context(), c.merchantID, id)
	if err != nil {
		return nil, err
	}
	if ep.Livemode != c.livemode {
		return nil, payment.ErrNotFound("webhook endpoint", id)
	}
	return ep, nil
}

// event returns the caller's event id, of the caller's mode.
func (h *Handlers) event(r *http.Request, c caller, id string) (*payment.Event, error) {
	ev, err := h.store.Event(r.Context(), c.merchantID, id)
	if err != nil {
		return nil, err
	}
	if ev.Livemode != c.livemode {
		return nil, payment.ErrNotFound("event", id)
	}
	return ev, nil
}

func (h *Handlers) get(w http.ResponseWriter, r *http.Request, c caller) error {
	ep, err := h.endpoint(r, c, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, endpointView(ep, false, h.now()))
}

func (h *Handlers) delete(w http.ResponseWriter, r *http.Request, c caller) error {
	id := r.PathValue("id")
	if _, err := h.endpoint(r, c, id); err != nil {
		return err
	}
	if err := h.store.DeleteEndpoint(r.Context(), c.merchantID, id); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, DeletedView{id, "webhook_endpoint", true})
}

func (h *Handlers) rotate(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := reqbody.Read(w, r, maxBody, nil); err != nil {
		return err
	}
	now := h.now()
	if _, err := h.endpoint(r, c, r.PathValue("id")); err != nil {
		return err
	}
	ep, err := h.store.RotateSecret(r.Context(), c.merchantID, r.PathValue("id"), NewSecret(), now.Add(h.overlap))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, endpointView(ep, true, now))
}

func (h *Handlers) deliveries(w http.ResponseWriter, r *http.Request, c caller) error {
	ev, err := h.event(r, c, r.PathValue("id"))
	if err != nil {
		return err
	}
	as, err := h.store.ListAttempts(r.Context(), ev.ID)
	if err != nil {
		return fmt.Errorf("webhook: list attempts of %s: %w", ev.ID, err)
	}
	out := ListView[AttemptView]{Object: "list", Data: make([]AttemptView, 0, len(as))}
	for _, a := range as {
		if a.MerchantID == c.merchantID {
			out.Data = append(out.Data, attemptView(a))
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

func (h *Handlers) redeliver(w http.ResponseWriter, r *http.Request, c caller) error {
	var in struct{ Endpoint string }
	if err := reqbody.Read(w, r, maxBody, map[string]reqbody.Param{"endpoint": {Dst: &in.Endpoint, Want: "a string"}}); err != nil {
		return err
	}
	ev, err := h.event(r, c, r.PathValue("id"))
	if err != nil {
		return err
	}
	if in.Endpoint != "" {
		ep, err := h.endpoint(r, c, in.Endpoint)
		if payment.IsNotFound(err) {
			return &payment.Error{Kind: payment.NotFound, Code: "resource_missing", Param: "endpoint",
				Message: fmt.Sprintf("no such webhook endpoint: %s", truncate(in.Endpoint, 64))}
		}
		if err != nil {
			return err
		}
		if ep.Disabled {
			return &payment.Error{Kind: payment.Conflict, Code: "endpoint_disabled", Param: "endpoint",
				Message: fmt.Sprintf("webhook endpoint %s is disabled", ep.ID)}
		}
		if !ep.Subscribes(ev.Type) {
			return payment.InvalidParam("endpoint", "webhook endpoint %s is not subscribed to %s", ep.ID, ev.Type)
		}
	}
	if h.inserter == nil {
		return errors.New("webhook: redeliver: no inserter configured")
	}
	ids, err := enqueue(r.Context(), h.store, h.inserter, ev, in.Endpoint, payment.NewID("rd"))
	if err != nil {
		return err
	}
	if ids == nil {
		ids = []string{}
	}
	return writeJSON(w, http.StatusOK, RedeliveryView{"redelivery", ev.ID, ids})
}

// DeletedView answers a deletion.
type DeletedView struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Deleted bool   `json:"deleted"`
}

// RedeliveryView answers a redelivery: the endpoints the event is queued for again.
type RedeliveryView struct {
	Object           string   `json:"object"`
	Event            string   `json:"event"`
	WebhookEndpoints []string `json:"webhook_endpoints"`
}

// CreateEndpointRequest is POST /v1/webhook_endpoints' body (for the API document; create
// decodes it strictly by hand).
type CreateEndpointRequest struct {
	URL    string   `json:"url"`
	Events []string `json:"events"`
}

// RedeliverRequest is POST /v1/events/{id}/redeliver's optional body.
type RedeliverRequest struct {
	Endpoint string `json:"endpoint"`
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("webhook: encode response: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store") // creation and rotation answers carry a secret
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return nil
}

// maxBody bounds a request body; ours are a URL and a short list.
const maxBody = 64 << 10
