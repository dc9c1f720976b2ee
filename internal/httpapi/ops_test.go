package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/fakewallet"
	"github.com/hutong-pay/hutong/internal/payment"
	"github.com/hutong-pay/hutong/internal/webhook"
)

func TestHealthz(t *testing.T) {
	e := newEnv(t)
	res := e.do(req{method: "GET", path: "/healthz"})
	if res.status != http.StatusOK || !strings.Contains(string(res.body), `"ok"`) {
		t.Fatalf("healthz: %d %s", res.status, res.body)
	}
	e.store.fail("Merchant", errors.New("sqlite: database is locked"))
	res = e.do(req{method: "GET", path: "/healthz"})
	if res.status != http.StatusServiceUnavailable || !strings.Contains(string(res.body), `"unavailable"`) {
		t.Fatalf("healthz with a failing store: %d %s", res.status, res.body)
	}
	if !strings.Contains(e.logs.String(), "database is locked") {
		t.Fatal("the health failure is not logged")
	}
}

func TestInternalErrorsAreNotShown(t *testing.T) {
	e := newEnv(t)
	_, sk := e.merchant(false)
	e.store.fail("APIKeyByHash", errors.New("disk on fire at /var/lib/hutong/hutong.db"))
	res := e.do(req{method: "GET", path: "/v1/payments", secret: sk, header: map[string]string{"X-Request-Id": "req-internal-1"}})
	if res.status != http.StatusInternalServerError {
		t.Fatalf("status %d", res.status)
	}
	got := res.apiError(t)
	if got.Type != "api_error" || got.Code != "internal_error" || got.Message != "internal error" || strings.Contains(string(res.body), "disk") {
		t.Fatalf("client sees %s", res.body)
	}
	var logged bool
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, "disk on fire") && strings.Contains(line, "req-internal-1") {
			logged = true
		}
	}
	if !logged {
		t.Fatalf("the internal error is not logged in full with the request id:\n%s", e.logs.String())
	}
}

func TestErrorTable(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		typ    string
	}{
		{payment.InvalidParam("amount", "bad"), 400, "invalid_request_error"},
		{&payment.Error{Kind: payment.Unauthorized, Code: "x", Message: "m"}, 401, "authentication_error"},
		{payment.ErrNotFound("payment", "pay_1"), 404, "invalid_request_error"},
		{payment.Errorf(payment.Conflict, "payment_state", "m"), 409, "conflict_error"},
		{&payment.Error{Kind: payment.Conflict, Code: codeIdempotencyInFlight, Message: "m"}, 409, "idempotency_error"},
		{&payment.Error{Kind: payment.Unprocessable, Code: codeIdempotencyReused, Message: "m"}, 422, "idempotency_error"},
		{&payment.Error{Kind: payment.ProviderError, Code: "provider_error", ProviderCode: "ORDERPAID", Message: "m"}, 502, "provider_error"},
		{payment.Errorf(payment.Internal, "event_state", "secret detail"), 500, "api_error"},
		{&payment.Error{Kind: "weird", Code: "x", Message: "secret detail"}, 500, "api_error"},
		{errors.New("secret detail"), 500, "api_error"},
		{context.DeadlineExceeded, 500, "api_error"},
		{wrapErr(payment.ErrNotFound("refund", "re_1")), 404, "invalid_request_error"},
	} {
		status, env, _ := envelopeFor(tc.err)
		if status != tc.status || env.Error.Type != tc.typ {
			t.Errorf("%v: %d %s, want %d %s", tc.err, status, env.Error.Type, tc.status, tc.typ)
		}
		if status == 500 && (env.Error.Message != "internal error" || env.Error.Code != "internal_error") {
			t.Errorf("%v: 500 shows %+v", tc.err, env.Error)
		}
		if env.Error.Code == "" || env.Error.Message == "" {
			t.Errorf("%v: empty code or message", tc.err)
		}
	}
	// The wallet's code travels to the client.
	_, env, _ := envelopeFor(&payment.Error{Kind: payment.ProviderError, Code: "provider_error", ProviderCode: "ACQ.TRADE_HAS_SUCCESS", Message: "m"})
	if env.Error.ProviderCode != "ACQ.TRADE_HAS_SUCCESS" {
		t.Fatalf("provider code lost: %+v", env.Error)
	}
}

func wrapErr(err error) error { return errors.Join(errors.New("context"), err) }

func TestRequestIDAndLogs(t *testing.T) {
	e := newEnv(t)
	merchantID, sk := e.merchant(false)
	res := e.do(req{method: "POST", path: "/v1/payments", secret: sk, body: map[string]any{"amount": 100, "description": "body-marker-7f3a",
		"provider": "wechatpay", "channel": "qr"}, header: map[string]string{"X-Request-Id": "client-req-123"}})
	if res.header.Get("X-Request-Id") != "client-req-123" {
		t.Fatalf("request id %q, want the client's", res.header.Get("X-Request-Id"))
	}
	for _, bad := range []string{"has space", strings.Repeat("x", 129), "quote\"", "new\nline"} {
		r, err := http.NewRequest("GET", e.srv.URL+"/healthz", nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Header["X-Request-Id"] = []string{bad}
		resp, err := e.srv.Client().Do(r)
		if err != nil {
			continue // the client itself refused the header
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Request-Id"); got == bad || !strings.HasPrefix(got, "req_") {
			t.Fatalf("request id for %q: %q, want a fresh one", bad, got)
		}
	}
	generated := e.do(req{method: "GET", path: "/healthz"}).header.Get("X-Request-Id")
	if !strings.HasPrefix(generated, "req_") || len(generated) != 28 {
		t.Fatalf("generated request id %q", generated)
	}

	var line map[string]any
	for _, l := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(l, "client-req-123") && strings.Contains(l, `"msg":"http request"`) {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if line == nil {
		t.Fatalf("no request log line:\n%s", e.logs.String())
	}
	if line["merchant_id"] != merchantID || line["route"] != "/v1/payments" || line["status"] != float64(200) || line["method"] != "POST" || line["duration"] == nil {
		t.Fatalf("log line %v", line)
	}
	if strings.Contains(e.logs.String(), "body-marker-7f3a") {
		t.Fatal("the request body reached the logs")
	}
}

func TestPanicRecoveryAndUnknownRoutes(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Extra = func(mux *http.ServeMux) {
			mux.HandleFunc("GET /checkout/{id}", func(w http.ResponseWriter, r *http.Request) {
				if r.PathValue("id") == "boom" {
					panic("checkout exploded")
				}
				w.Header().Set("Content-Type", "text/html")
				_, _ = w.Write([]byte("<p>checkout</p>"))
			})
		}
	})
	res := e.do(req{method: "GET", path: "/checkout/pay_1"})
	if res.status != http.StatusOK || string(res.body) != "<p>checkout</p>" || res.header.Get("X-Request-Id") == "" {
		t.Fatalf("extra route: %d %s", res.status, res.body)
	}
	res = e.do(req{method: "GET", path: "/checkout/boom"})
	if res.status != http.StatusInternalServerError || res.apiError(t).Code != "internal_error" || strings.Contains(string(res.body), "exploded") {
		t.Fatalf("panic: %d %s", res.status, res.body)
	}
	if !strings.Contains(e.logs.String(), "checkout exploded") || !strings.Contains(e.logs.String(), "goroutine") {
		t.Fatal("the panic and its stack are not logged")
	}
	// The server survived.
	if res := e.do(req{method: "GET", path: "/healthz"}); res.status != http.StatusOK {
		t.Fatalf("after panic: %d", res.status)
	}

	res = e.do(req{method: "GET", path: "/v2/nothing"})
	if res.status != http.StatusNotFound || res.apiError(t).Code != "route_not_found" || !strings.HasPrefix(res.header.Get("Content-Type"), "application/json") {
		t.Fatalf("unknown route: %d %s", res.status, res.body)
	}
	res = e.do(req{method: "DELETE", path: "/v1/payments"})
	if res.status != http.StatusMethodNotAllowed || res.apiError(t).Code != "method_not_allowed" || !strings.Contains(res.header.Get("Allow"), "POST") {
		t.Fatalf("wrong method: %d %s allow=%q", res.status, res.body, res.header.Get("Allow"))
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	_, sk := e.merchant(false)
	e.createPayment(sk, qrPayment(100))
	e.createPayment(sk, qrPayment(100))
	c := e.createPayment(sk, map[string]any{"amount": 100, "description": "tea"})
	e.do(req{method: "POST", path: "/v1/payments/" + c.ID + "/cancel", secret: sk})
	e.do(req{method: "GET", path: "/v1/payments/pay_missing", secret: sk})
	e.do(req{method: "GET", path: "/no/such/route"})
	res := e.do(req{method: "GET", path: "/metrics"})
	text := string(res.body)
	for _, want := range []string{
		`hutong_http_requests_total{method="POST",route="/v1/payments",status="200"} 3`,
		`hutong_http_requests_total{method="GET",route="/v1/payments/{id}",status="404"} 1`,
		`hutong_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`hutong_http_request_duration_seconds_count{route="/v1/payments"} 3`,
		`hutong_payments_created_total{channel="qr",provider="wechatpay"} 2`,
		`hutong_payments_created_total{channel="none",provider="none"} 1`,
		`hutong_status_transitions_total{from="pending",object="payment",to="canceled"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(text, "pay_missing") {
		t.Error("an object id became a label value")
	}
	// Two handlers may share one registry.
	_ = New(Config{Service: e.svc, Store: e.store, Metrics: e.reg})
}

func TestOpenAPIServed(t *testing.T) {
	e := newEnv(t)
	res := e.do(req{method: "GET", path: "/openapi.json"})
	if res.status != http.StatusOK || string(res.body) != string(openAPIDoc) {
		t.Fatalf("openapi.json: %d", res.status)
	}
}

// TestOpenAPIWalk drives every documented response of every route with real requests; each
// answer is validated against the document as it arrives (see testEnv.do), and at the end
// every documented (route, status) must have been produced.
func TestOpenAPIWalk(t *testing.T) {
	e := newEnv(t)
	_, sk := e.merchant(false)
	ok := func(method, path string, body any) *response {
		t.Helper()
		return e.do(req{method: method, path: path, secret: sk, body: body})
	}
	withKey := func(method, path, key string, body any) *response {
		t.Helper()
		return e.do(req{method: method, path: path, secret: sk, body: body, header: map[string]string{"Idempotency-Key": key}})
	}

	// Successes, each shape: pending with next action, checkout-only, succeeded, canceled, refunded.
	pending := ok("POST", "/v1/payments", map[string]any{"amount": 100, "description": "tea", "provider": "wechatpay", "channel": "miniprogram",
		"payer": map[string]any{"openid": "o-1", "client_ip": "127.0.0.1"}, "return_url": "https://shop.example/done", "customer": "cus_1"}).payment(t)
	ok("POST", "/v1/payments", map[string]any{"amount": 100, "description": "tea"})
	ok("POST", "/v1/payments", map[string]any{"amount": 100, "description": "tea", "provider": "alipay", "channel": "app"})
	paid := e.paidPayment(sk, 1000)
	ok("POST", "/v1/refunds", map[string]any{"payment_id": paid.ID, "amount": 100})
	e.wechat.SetRefundsPending(true)
	pendingRefund := ok("POST", "/v1/refunds", map[string]any{"payment_id": paid.ID, "amount": 100}).refund(t)
	e.wechat.SetRefundsPending(false)
	ok("GET", "/v1/refunds/"+pendingRefund.ID, nil)
	ok("POST", "/v1/payments/"+pending.ID+"/cancel", nil)
	ok("GET", "/v1/payments/"+pending.ID, nil)
	ok("GET", "/v1/payments?limit=100", nil)
	ok("GET", "/v1/events?limit=100", nil)
	e.do(req{method: "GET", path: "/healthz"})
	e.do(req{method: "GET", path: "/metrics"})
	e.do(req{method: "GET", path: "/openapi.json"})

	// Webhooks: endpoints, their secrets, an event's deliveries and redelivery.
	var ep struct{ ID string }
	ok("POST", "/v1/webhook_endpoints", map[string]any{"url": "http://127.0.0.1:9/hooks", "events": []string{"payment.succeeded", "payment.canceled"}}).decode(t, &ep)
	var doomed struct{ ID string }
	ok("POST", "/v1/webhook_endpoints", map[string]any{"url": "http://127.0.0.1:9/old"}).decode(t, &doomed)
	var disabled struct{ ID string }
	ok("POST", "/v1/webhook_endpoints", map[string]any{"url": "http://127.0.0.1:9/gone"}).decode(t, &disabled)
	if err := e.sql.DisableEndpoint(context.Background(), disabled.ID, "the endpoint answered 410 Gone", e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	ok("POST", "/v1/webhook_endpoints", map[string]any{"url": "http://127.0.0.1:9/one-too-many"}) // 409: the limit
	ok("GET", "/v1/webhook_endpoints", nil)
	ok("GET", "/v1/webhook_endpoints/"+ep.ID, nil)
	ok("POST", "/v1/webhook_endpoints/"+ep.ID+"/rotate_secret", nil)
	ok("GET", "/v1/webhook_endpoints/"+ep.ID, nil) // with previous_secret_expires_at
	ok("DELETE", "/v1/webhook_endpoints/"+doomed.ID, nil)
	var events struct{ Data []struct{ ID, Type string } }
	ok("GET", "/v1/events?type=payment.succeeded", nil).decode(t, &events)
	if len(events.Data) == 0 {
		t.Fatal("no payment.succeeded event")
	}
	evt := events.Data[0].ID
	if err := e.sql.RecordAttempt(context.Background(), &webhook.Attempt{ID: payment.NewID("wha"), EventID: evt, EndpointID: ep.ID,
		MerchantID: merchantIDOf(t, e, sk), Number: 1, StatusCode: 500, Error: "receiver answered 500 Internal Server Error",
		Duration: time.Millisecond, At: e.clock.Now(), NextAttemptAt: e.clock.Now().Add(5 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	ok("GET", "/v1/events/"+evt+"/deliveries", nil)
	ok("POST", "/v1/events/"+evt+"/redeliver", nil)
	ok("POST", "/v1/events/"+evt+"/redeliver", map[string]any{"endpoint": ep.ID})
	ok("POST", "/v1/webhook_endpoints", map[string]any{"url": "ftp://127.0.0.1/hooks"}) // 400
	ok("POST", "/v1/webhook_endpoints/"+ep.ID+"/rotate_secret", `{"secret":"mine"}`)    // 400
	ok("POST", "/v1/events/"+evt+"/redeliver", `{"endpoint":7}`)                        // 400
	ok("POST", "/v1/events/"+evt+"/redeliver", map[string]any{"endpoint": disabled.ID}) // 409
	for _, path := range []string{"/v1/webhook_endpoints/we_nope", "/v1/events/evt_nope/deliveries"} {
		ok("GET", path, nil)
	}
	ok("DELETE", "/v1/webhook_endpoints/"+doomed.ID, nil)
	ok("POST", "/v1/webhook_endpoints/we_nope/rotate_secret", nil)
	ok("POST", "/v1/events/evt_nope/redeliver", nil)

	// Customers: a login, the same identity refused for another customer, a refused code, a
	// wallet that does not answer, a read and a miss.
	var buyer, other struct{ ID string }
	ok("POST", "/v1/customers/login", map[string]any{"provider": "wechatpay", "code": "buyer1"}).decode(t, &buyer)
	ok("POST", "/v1/customers/login", map[string]any{"provider": "wechatpay", "code": "buyer2"}).decode(t, &other)
	ok("POST", "/v1/customers/login", map[string]any{"provider": "wechatpay", "code": "buyer1", "customer": other.ID}) // 409
	ok("POST", "/v1/customers/login", map[string]any{"provider": "wechatpay", "code": "bad"})                          // 400
	ok("POST", "/v1/customers/login", map[string]any{"provider": "wechatpay", "code": "busy"})                         // 502
	ok("GET", "/v1/customers/"+buyer.ID, nil)
	ok("GET", "/v1/customers/cus_nope", nil) // 404

	// 400s.
	ok("POST", "/v1/payments", `{"amount":"1"}`)
	ok("GET", "/v1/payments?limit=1000", nil)
	ok("POST", "/v1/payments/"+paid.ID+"/cancel", `{"reason":"because"}`)
	ok("POST", "/v1/refunds", `{"payment_id":1}`)
	ok("GET", "/v1/events?type=nope", nil)
	// 401s.
	for _, rt := range documentedRoutes() {
		if rt.auth {
			method, path, _ := strings.Cut(rt.pattern, " ")
			e.do(req{method: method, path: strings.ReplaceAll(path, "{id}", "x")})
		}
	}
	// 404s.
	ok("GET", "/v1/payments/pay_nope", nil)
	ok("POST", "/v1/payments/pay_nope/cancel", nil)
	ok("POST", "/v1/refunds", map[string]any{"payment_id": "pay_nope"})
	ok("GET", "/v1/refunds/re_nope", nil)
	// 409s: state conflicts and keys in flight.
	ok("POST", "/v1/payments/"+paid.ID+"/cancel", nil)
	ok("POST", "/v1/refunds", map[string]any{"payment_id": pending.ID})
	merchantID := merchantIDOf(t, e, sk)
	inFlight := func(path string, body string) {
		if _, _, err := e.store.BeginIdempotent(context.Background(), merchantID, "test:held-"+path, requestHash("POST", path, []byte(body)), e.clock.Now(), IdempotencyTTL); err != nil {
			t.Fatal(err)
		}
		withKey("POST", path, "held-"+path, body)
	}
	inFlight("/v1/payments", `{"amount":1,"description":"x"}`)
	// 422s.
	for _, path := range []string{"/v1/payments", "/v1/payments/" + pending.ID + "/cancel", "/v1/refunds"} {
		withKey("POST", path, "reused-"+path, `{}`)
		withKey("POST", path, "reused-"+path, `{"reason":"duplicate"}`)
	}
	// 502s.
	e.wechat.SetError(fakewallet.OpCreatePayment, fakewallet.Refused("SYSTEMERROR", "busy"))
	ok("POST", "/v1/payments", qrPayment(100))
	e.wechat.SetError(fakewallet.OpCreatePayment, nil)
	p := e.createPayment(sk, qrPayment(100))
	e.wechat.SetError(fakewallet.OpClosePayment, fakewallet.ErrUnavailable)
	ok("POST", "/v1/payments/"+p.ID+"/cancel", nil)
	e.wechat.SetError(fakewallet.OpClosePayment, nil)
	// 500s and 503.
	e.store.fail("APIKeyByHash", errors.New("injected"))
	for _, rt := range documentedRoutes() {
		if rt.auth {
			method, path, _ := strings.Cut(rt.pattern, " ")
			ok(method, strings.ReplaceAll(path, "{id}", "x"), `{}`)
		}
	}
	e.store.fail("APIKeyByHash", nil)
	e.store.fail("Merchant", errors.New("injected"))
	e.do(req{method: "GET", path: "/healthz"})
	e.store.fail("Merchant", nil)

	for _, s := range e.doc.documentedStatuses() {
		if !e.seen[s] {
			t.Errorf("documented response %s was never produced", s)
		}
	}
}

func TestExtraAPIRoutesAreAuthenticated(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.ExtraAPI = func(mux *http.ServeMux, writeError func(http.ResponseWriter, *http.Request, error)) {
			mux.HandleFunc("GET /v1/things/{id}", func(w http.ResponseWriter, r *http.Request) {
				merchantID, live, ok := Merchant(r)
				if !ok {
					t.Error("handler ran unauthenticated")
				}
				if r.PathValue("id") == "missing" {
					writeError(w, r, payment.ErrNotFound("thing", "missing"))
					return
				}
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(map[string]any{"merchant": merchantID, "livemode": live})
			})
		}
	})
	merchantID, sk := e.merchant(true)
	if res := e.do(req{method: "GET", path: "/v1/things/1"}); res.status != http.StatusUnauthorized || res.apiError(t).Code != "api_key_missing" {
		t.Fatalf("no key: %d %s", res.status, res.body)
	}
	res := e.do(req{method: "GET", path: "/v1/things/1", secret: sk})
	var got struct {
		Merchant string
		Livemode bool
	}
	res.decode(t, &got)
	if res.status != http.StatusOK || got.Merchant != merchantID || !got.Livemode {
		t.Fatalf("with key: %d %s", res.status, res.body)
	}
	if res := e.do(req{method: "GET", path: "/v1/things/missing", secret: sk}); res.status != http.StatusNotFound || res.apiError(t).Code != "resource_missing" {
		t.Fatalf("error through writeError: %d %s", res.status, res.body)
	}
	if !strings.Contains(string(e.do(req{method: "GET", path: "/metrics"}).body), `route="/v1/things/{id}"`) {
		t.Fatal("extra route not labelled in metrics")
	}
}
