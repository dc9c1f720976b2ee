package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/payment"
)

type api struct {
	t     *testing.T
	store *memStore
	ins   *fakeInserter
	clock *clock
	mux   *http.ServeMux
}

// newAPI mounts the handlers; requests name their merchant in X-Merchant (and X-Live: 1 for a
// live key), standing in for the API's key authentication.
func newAPI(t *testing.T) *api {
	a := &api{t: t, store: newMemStore(), ins: &fakeInserter{}, clock: newClock(), mux: http.NewServeMux()}
	h := NewHandlers(HandlersConfig{Store: a.store, Inserter: a.ins, Now: a.clock.Now})
	merchant := func(r *http.Request) (string, bool, bool) {
		id := r.Header.Get("X-Merchant")
		return id, r.Header.Get("X-Live") == "1", id != ""
	}
	h.Register(a.mux, merchant, writeTestError)
	return a
}

// writeTestError mirrors the API's error table closely enough for the tests.
func writeTestError(w http.ResponseWriter, _ *http.Request, err error) {
	status := map[payment.Kind]int{payment.Invalid: 400, payment.Unauthorized: 401, payment.NotFound: 404, payment.Conflict: 409}
	var pe *payment.Error
	code, param, s := "internal_error", "", 500
	if errors.As(err, &pe) && status[pe.Kind] != 0 {
		code, param, s = pe.Code, pe.Param, status[pe.Kind]
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(s)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "param": param}})
}

type apiError struct {
	Error struct{ Code, Param string } `json:"error"`
}

// do sends a request as merchant and decodes the answer into out (when not nil).
func (a *api) do(merchant string, live bool, method, path, body string, out any) int {
	a.t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if merchant != "" {
		r.Header.Set("X-Merchant", merchant)
	}
	if live {
		r.Header.Set("X-Live", "1")
	}
	w := httptest.NewRecorder()
	a.mux.ServeHTTP(w, r)
	if out != nil {
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			a.t.Fatalf("%s %s: decode %s: %v", method, path, w.Body, err)
		}
	}
	return w.Code
}

type endpointOut struct {
	ID                      string     `json:"id"`
	Object                  string     `json:"object"`
	URL                     string     `json:"url"`
	Events                  []string   `json:"events"`
	Secret                  *string    `json:"secret"`
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at"`
	Status                  string     `json:"status"`
	DisabledReason          string     `json:"disabled_reason"`
	Livemode                bool       `json:"livemode"`
	CreatedAt               time.Time  `json:"created_at"`
}

func (a *api) create(merchant, body string) endpointOut {
	a.t.Helper()
	var e endpointOut
	if code := a.do(merchant, false, "POST", "/v1/webhook_endpoints", body, &e); code != 200 {
		a.t.Fatalf("create %s: status %d", body, code)
	}
	return e
}

func TestCreateEndpoint(t *testing.T) {
	a := newAPI(t)
	e := a.create("mch_A", `{"url":"https://shop.example.com/hooks","events":["refund.failed","payment.succeeded","refund.failed"]}`)
	if !strings.HasPrefix(e.ID, "we_") || e.Object != "webhook_endpoint" || e.URL != "https://shop.example.com/hooks" ||
		e.Status != "enabled" || !e.CreatedAt.Equal(a.clock.Now()) || e.Livemode {
		t.Fatalf("created %+v", e)
	}
	if strings.Join(e.Events, ",") != "refund.failed,payment.succeeded" {
		t.Errorf("events: %v", e.Events)
	}
	if e.Secret == nil {
		t.Fatal("no secret at creation")
	}
	if _, err := ParseSecret(*e.Secret); err != nil {
		t.Fatalf("secret: %v", err)
	}
	stored, err := a.store.Endpoint(context.Background(), "mch_A", e.ID)
	if err != nil || stored.Secret != *e.Secret || stored.MerchantID != "mch_A" {
		t.Fatalf("stored %+v, %v", stored, err)
	}

	all := a.create("mch_A", `{"url":"http://127.0.0.1:9000/x"}`)
	if all.Events == nil || len(all.Events) != 0 {
		t.Errorf("no events given: got %v, want [] (every type)", all.Events)
	}
	var live endpointOut
	if code := a.do("mch_A", true, "POST", "/v1/webhook_endpoints", `{"url":"https://shop.example.com/live"}`, &live); code != 200 || !live.Livemode {
		t.Fatalf("live create: %d %+v", code, live)
	}
}

func TestCreateEndpointRejects(t *testing.T) {
	a := newAPI(t)
	cases := []struct {
		name, body string
		live       bool
		code       string
		param      string
	}{
		{"no url", `{}`, false, "parameter_invalid", "url"},
		{"empty body", ``, false, "parameter_invalid", "url"},
		{"bad scheme", `{"url":"ftp://x.example.com"}`, false, "parameter_invalid", "url"},
		{"url not a string", `{"url":42}`, false, "parameter_invalid", "url"},
		{"live http", `{"url":"http://shop.example.com/hooks"}`, true, "parameter_invalid", "url"},
		{"live private ip", `{"url":"https://10.0.0.8/hooks"}`, true, "parameter_invalid", "url"},
		{"live metadata ip", `{"url":"https://169.254.169.254/"}`, true, "parameter_invalid", "url"},
		{"unknown event", `{"url":"https://x.example.com","events":["payment.created"]}`, false, "parameter_invalid", "events"},
		{"events not an array", `{"url":"https://x.example.com","events":"payment.succeeded"}`, false, "parameter_invalid", "events"},
		{"unknown field", `{"url":"https://x.example.com","enabled":true}`, false, "parameter_unknown", "enabled"},
		{"wrong case", `{"URL":"https://x.example.com"}`, false, "parameter_unknown", "URL"},
		{"duplicate key", `{"url":"https://x.example.com","url":"https://y.example.com"}`, false, "parameter_invalid", "url"},
		{"trailing data", `{"url":"https://x.example.com"} {}`, false, "body_invalid", "body"},
		{"not an object", `["https://x.example.com"]`, false, "body_invalid", "body"},
		{"broken json", `{"url":`, false, "body_invalid", "body"},
		{"too large", `{"url":"https://x.example.com/` + strings.Repeat("a", 70<<10) + `"}`, false, "body_too_large", "body"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var e apiError
			if code := a.do("mch_A", tc.live, "POST", "/v1/webhook_endpoints", tc.body, &e); code != 400 {
				t.Fatalf("status %d, want 400", code)
			}
			if e.Error.Code != tc.code || e.Error.Param != tc.param {
				t.Fatalf("error %+v, want code %s param %s", e.Error, tc.code, tc.param)
			}
		})
	}
	if eps, _ := a.store.ListEndpoints(context.Background(), "mch_A"); len(eps) != 0 {
		t.Fatalf("%d endpoints created by rejected requests", len(eps))
	}
}

func TestEndpointLimit(t *testing.T) {
	a := newAPI(t)
	for range 16 {
		a.create("mch_A", `{"url":"https://x.example.com"}`)
	}
	var e apiError
	if code := a.do("mch_A", false, "POST", "/v1/webhook_endpoints", `{"url":"https://x.example.com"}`, &e); code != 409 || e.Error.Code != "endpoint_limit" {
		t.Fatalf("17th endpoint: %d %+v", code, e)
	}
	a.create("mch_B", `{"url":"https://x.example.com"}`) // the limit is per merchant
}

func TestListGetDeleteEndpoints(t *testing.T) {
	a := newAPI(t)
	e1 := a.create("mch_A", `{"url":"https://one.example.com"}`)
	e2 := a.create("mch_A", `{"url":"https://two.example.com"}`)
	a.create("mch_B", `{"url":"https://b.example.com"}`)

	var list struct {
		Object  string        `json:"object"`
		Data    []endpointOut `json:"data"`
		HasMore bool          `json:"has_more"`
	}
	if code := a.do("mch_A", false, "GET", "/v1/webhook_endpoints", "", &list); code != 200 || list.Object != "list" || len(list.Data) != 2 {
		t.Fatalf("list: %d %+v", code, list)
	}
	if list.Data[0].ID != e1.ID || list.Data[1].ID != e2.ID {
		t.Errorf("list order: %s, %s", list.Data[0].ID, list.Data[1].ID)
	}
	for _, e := range list.Data {
		if e.Secret != nil {
			t.Errorf("list shows the secret of %s", e.ID)
		}
	}
	var got endpointOut
	if code := a.do("mch_A", false, "GET", "/v1/webhook_endpoints/"+e1.ID, "", &got); code != 200 || got.ID != e1.ID || got.Secret != nil {
		t.Fatalf("get: %d %+v", code, got)
	}
	var del struct {
		ID      string `json:"id"`
		Deleted bool   `json:"deleted"`
	}
	if code := a.do("mch_A", false, "DELETE", "/v1/webhook_endpoints/"+e1.ID, "", &del); code != 200 || !del.Deleted || del.ID != e1.ID {
		t.Fatalf("delete: %d %+v", code, del)
	}
	if code := a.do("mch_A", false, "GET", "/v1/webhook_endpoints/"+e1.ID, "", nil); code != 404 {
		t.Fatalf("get after delete: %d", code)
	}
	if code := a.do("mch_A", false, "DELETE", "/v1/webhook_endpoints/"+e1.ID, "", nil); code != 404 {
		t.Fatalf("second delete: %d", code)
	}
}

func TestRotateSecret(t *testing.T) {
	a := newAPI(t)
	e := a.create("mch_A", `{"url":"https://one.example.com"}`)
	var r endpointOut
	if code := a.do("mch_A", false, "POST", "/v1/webhook_endpoints/"+e.ID+"/rotate_secret", "", &r); code != 200 {
		t.Fatalf("rotate: %d", code)
	}
	if r.Secret == nil || *r.Secret == *e.Secret {
		t.Fatal("rotation did not show a new secret")
	}
	if r.PreviousSecretExpiresAt == nil || !r.PreviousSecretExpiresAt.Equal(a.clock.Now().Add(24*time.Hour)) {
		t.Fatalf("previous_secret_expires_at: %v", r.PreviousSecretExpiresAt)
	}
	stored, _ := a.store.Endpoint(context.Background(), "mch_A", e.ID)
	if stored.Secret != *r.Secret || stored.PreviousSecret != *e.Secret {
		t.Fatal("the store does not hold the new secret with the old one as previous")
	}
	if code := a.do("mch_A", false, "POST", "/v1/webhook_endpoints/"+e.ID+"/rotate_secret", `{}`, nil); code != 200 {
		t.Fatalf("rotate with {}: %d", code)
	}
	var bad apiError
	if code := a.do("mch_A", false, "POST", "/v1/webhook_endpoints/"+e.ID+"/rotate_secret", `{"secret":"whsec_mine"}`, &bad); code != 400 || bad.Error.Code != "parameter_unknown" {
		t.Fatalf("rotate with a parameter: %d %+v", code, bad)
	}
	a.clock.Add(25 * time.Hour)
	var later endpointOut
	a.do("mch_A", false, "GET", "/v1/webhook_endpoints/"+e.ID, "", &later)
	if later.PreviousSecretExpiresAt != nil {
		t.Fatal("an expired previous secret is still shown as signing")
	}
}

func TestHandlersIsolateMerchants(t *testing.T) {
	a := newAPI(t)
	eA := a.create("mch_A", `{"url":"https://a.example.com"}`)
	a.store.addEvent(&payment.Event{ID: "evt_A", MerchantID: "mch_A", Type: payment.EventPaymentSucceeded, Data: json.RawMessage(`{}`)})
	_ = a.store.RecordAttempt(context.Background(), &Attempt{ID: "wha_1", EventID: "evt_A", EndpointID: eA.ID, MerchantID: "mch_A", Number: 1, StatusCode: 200})

	for _, req := range []struct{ method, path, body string }{
		{"GET", "/v1/webhook_endpoints/" + eA.ID, ""},
		{"DELETE", "/v1/webhook_endpoints/" + eA.ID, ""},
		{"POST", "/v1/webhook_endpoints/" + eA.ID + "/rotate_secret", ""},
		{"GET", "/v1/events/evt_A/deliveries", ""},
		{"POST", "/v1/events/evt_A/redeliver", ""},
	} {
		var e apiError
		if code := a.do("mch_B", false, req.method, req.path, req.body, &e); code != 404 || e.Error.Code != "resource_missing" {
			t.Errorf("mch_B %s %s: %d %+v, want 404", req.method, req.path, code, e)
		}
	}
	var list struct{ Data []endpointOut }
	if a.do("mch_B", false, "GET", "/v1/webhook_endpoints", "", &list); len(list.Data) != 0 {
		t.Errorf("mch_B lists %d endpoints", len(list.Data))
	}
	// mch_B cannot point a redelivery of its own event at mch_A's endpoint either.
	a.store.addEvent(&payment.Event{ID: "evt_B", MerchantID: "mch_B", Type: payment.EventPaymentSucceeded, Data: json.RawMessage(`{}`)})
	var e apiError
	if code := a.do("mch_B", false, "POST", "/v1/events/evt_B/redeliver", `{"endpoint":"`+eA.ID+`"}`, &e); code != 404 || e.Error.Param != "endpoint" {
		t.Errorf("redeliver to another's endpoint: %d %+v", code, e)
	}
	if n := len(a.ins.deliveries()); n != 0 {
		t.Errorf("%d deliveries enqueued by another merchant", n)
	}
	stored, err := a.store.Endpoint(context.Background(), "mch_A", eA.ID)
	if err != nil || stored.Secret != *eA.Secret {
		t.Error("mch_A's endpoint changed")
	}
	if code := a.do("", false, "GET", "/v1/webhook_endpoints", "", &e); code != 401 {
		t.Errorf("no key: %d", code)
	}
}

func TestDeliveriesList(t *testing.T) {
	a := newAPI(t)
	ctx := context.Background()
	a.store.addEvent(&payment.Event{ID: "evt_A", MerchantID: "mch_A", Type: payment.EventPaymentSucceeded, Data: json.RawMessage(`{}`)})
	t0 := a.clock.Now()
	_ = a.store.RecordAttempt(ctx, &Attempt{ID: "wha_1", EventID: "evt_A", EndpointID: "we_1", MerchantID: "mch_A", Number: 1,
		StatusCode: 500, Error: "receiver answered 500 Internal Server Error", Duration: 42 * time.Millisecond, At: t0, NextAttemptAt: t0.Add(5 * time.Second)})
	_ = a.store.RecordAttempt(ctx, &Attempt{ID: "wha_2", EventID: "evt_A", EndpointID: "we_1", MerchantID: "mch_A", Number: 2,
		StatusCode: 200, Duration: 7 * time.Millisecond, At: t0.Add(5 * time.Second)})
	var list struct {
		Data []struct {
			ID              string     `json:"id"`
			Object          string     `json:"object"`
			Event           string     `json:"event"`
			WebhookEndpoint string     `json:"webhook_endpoint"`
			Attempt         int        `json:"attempt"`
			Status          string     `json:"status"`
			StatusCode      int        `json:"status_code"`
			Error           string     `json:"error"`
			DurationMS      int64      `json:"duration_ms"`
			CreatedAt       time.Time  `json:"created_at"`
			NextAttemptAt   *time.Time `json:"next_attempt_at"`
		} `json:"data"`
	}
	if code := a.do("mch_A", false, "GET", "/v1/events/evt_A/deliveries", "", &list); code != 200 || len(list.Data) != 2 {
		t.Fatalf("deliveries: %d %+v", code, list)
	}
	first, second := list.Data[0], list.Data[1]
	if first.Object != "webhook_attempt" || first.Event != "evt_A" || first.WebhookEndpoint != "we_1" || first.Attempt != 1 ||
		first.Status != "failed" || first.StatusCode != 500 || first.DurationMS != 42 || first.NextAttemptAt == nil ||
		!first.NextAttemptAt.Equal(t0.Add(5*time.Second)) || first.Error == "" {
		t.Errorf("first attempt: %+v", first)
	}
	if second.Status != "succeeded" || second.NextAttemptAt != nil || second.Error != "" {
		t.Errorf("second attempt: %+v", second)
	}
	if code := a.do("mch_A", false, "GET", "/v1/events/evt_missing/deliveries", "", nil); code != 404 {
		t.Errorf("unknown event: %d", code)
	}
}

func TestRedeliver(t *testing.T) {
	a := newAPI(t)
	ctx := context.Background()
	a.store.addEvent(&payment.Event{ID: "evt_A", MerchantID: "mch_A", Type: payment.EventPaymentSucceeded, Data: json.RawMessage(`{}`)})
	all := a.create("mch_A", `{"url":"https://all.example.com"}`)
	refunds := a.create("mch_A", `{"url":"https://refunds.example.com","events":["refund.succeeded"]}`)
	gone := a.create("mch_A", `{"url":"https://gone.example.com"}`)
	_ = a.store.DisableEndpoint(ctx, gone.ID, "the endpoint answered 410 Gone", a.clock.Now())

	var out struct {
		Object           string   `json:"object"`
		Event            string   `json:"event"`
		WebhookEndpoints []string `json:"webhook_endpoints"`
	}
	if code := a.do("mch_A", false, "POST", "/v1/events/evt_A/redeliver", "", &out); code != 200 {
		t.Fatalf("redeliver: %d", code)
	}
	if out.Event != "evt_A" || len(out.WebhookEndpoints) != 1 || out.WebhookEndpoints[0] != all.ID {
		t.Fatalf("redeliver answered %+v; want only %s", out, all.ID)
	}
	d := a.ins.deliveries()
	if len(d) != 1 || d[0].EndpointID != all.ID || d[0].EventID != "evt_A" || d[0].Redelivery == "" {
		t.Fatalf("enqueued %+v", d)
	}
	// A second redelivery is a different job, not a duplicate of the first.
	a.do("mch_A", false, "POST", "/v1/events/evt_A/redeliver", `{"endpoint":"`+all.ID+`"}`, &out)
	d = a.ins.deliveries()
	if len(d) != 2 || d[1].EndpointID != all.ID || d[1].Redelivery == d[0].Redelivery {
		t.Fatalf("second redelivery enqueued %+v", d)
	}

	for _, tc := range []struct {
		body   string
		status int
		code   string
	}{
		{`{"endpoint":"` + refunds.ID + `"}`, 400, "parameter_invalid"}, // not subscribed
		{`{"endpoint":"` + gone.ID + `"}`, 409, "endpoint_disabled"},
		{`{"endpoint":"we_nope"}`, 404, "resource_missing"},
		{`{"endpoints":["x"]}`, 400, "parameter_unknown"},
	} {
		var e apiError
		if code := a.do("mch_A", false, "POST", "/v1/events/evt_A/redeliver", tc.body, &e); code != tc.status || e.Error.Code != tc.code {
			t.Errorf("redeliver %s: %d %+v, want %d %s", tc.body, code, e, tc.status, tc.code)
		}
	}
	if n := len(a.ins.deliveries()); n != 2 {
		t.Fatalf("%d deliveries enqueued, want still 2", n)
	}
	a.ins.err = errors.New("queue unavailable")
	if code := a.do("mch_A", false, "POST", "/v1/events/evt_A/redeliver", "", nil); code != 500 {
		t.Fatalf("enqueue failure: %d, want 500", code)
	}
}

func TestEndpointCreatedThroughTheAPIReceivesSignedDeliveries(t *testing.T) {
	rc := newReceiver(t, http.StatusOK)
	a := newAPI(t)
	e := a.create("mch_A", `{"url":"`+rc.srv.URL+`/hook","events":["payment.succeeded"]}`)
	a.store.addEvent(&payment.Event{ID: "evt_A", MerchantID: "mch_A", Type: payment.EventPaymentSucceeded, Data: json.RawMessage(`{"id":"pay_1"}`)})
	d := NewDispatcher(DispatcherConfig{Store: a.store, Now: a.clock.Now})
	out, err := d.Deliver(context.Background(), "evt_A", e.ID, 1)
	if err != nil || out.Result != Delivered {
		t.Fatalf("got %+v, %v", out, err)
	}
	r := rc.requests()[0]
	if err := Verify([][]byte{mustKey(t, *e.Secret)}, r.header, r.body, a.clock.Now()); err != nil {
		t.Fatalf("the secret shown at creation does not verify: %v", err)
	}
}

// A key sees and changes only the endpoints and events of its own mode.
func TestHandlersSeparateModes(t *testing.T) {
	a := newAPI(t)
	test := a.create("mch_A", `{"url":"http://127.0.0.1:9000/test"}`)
	var live endpointOut
	if code := a.do("mch_A", true, "POST", "/v1/webhook_endpoints", `{"url":"https://shop.example.com/live"}`, &live); code != 200 {
		t.Fatalf("live create: %d", code)
	}
	for _, mode := range []struct {
		live       bool
		own, other string
	}{{false, test.ID, live.ID}, {true, live.ID, test.ID}} {
		var list struct{ Data []endpointOut }
		a.do("mch_A", mode.live, "GET", "/v1/webhook_endpoints", "", &list)
		if len(list.Data) != 1 || list.Data[0].ID != mode.own {
			t.Fatalf("live=%v list: %+v, want only %s", mode.live, list.Data, mode.own)
		}
		for _, req := range [][2]string{
			{"GET", "/v1/webhook_endpoints/" + mode.other},
			{"POST", "/v1/webhook_endpoints/" + mode.other + "/rotate_secret"},
			{"DELETE", "/v1/webhook_endpoints/" + mode.other},
		} {
			if code := a.do("mch_A", mode.live, req[0], req[1], "", nil); code != 404 {
				t.Errorf("live=%v %s %s: %d, want 404", mode.live, req[0], req[1], code)
			}
		}
	}
	if _, err := a.store.Endpoint(context.Background(), "mch_A", live.ID); err != nil {
		t.Fatalf("a test key deleted the live endpoint: %v", err)
	}
	a.store.addEvent(&payment.Event{ID: "evt_live", MerchantID: "mch_A", Livemode: true, Type: payment.EventPaymentSucceeded, Data: json.RawMessage(`{}`)})
	if code := a.do("mch_A", false, "GET", "/v1/events/evt_live/deliveries", "", nil); code != 404 {
		t.Fatalf("a test key listed a live event's deliveries: %d", code)
	}
	if code := a.do("mch_A", false, "POST", "/v1/events/evt_live/redeliver", "", nil); code != 404 {
		t.Fatalf("a test key redelivered a live event: %d", code)
	}
	var out struct {
		WebhookEndpoints []string `json:"webhook_endpoints"`
	}
	if code := a.do("mch_A", true, "POST", "/v1/events/evt_live/redeliver", "", &out); code != 200 || len(out.WebhookEndpoints) != 1 || out.WebhookEndpoints[0] != live.ID {
		t.Fatalf("live redelivery: %d %+v, want only the live endpoint", code, out)
	}
}
