package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/fakewallet"
	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

func TestCreatePaymentEveryChannel(t *testing.T) {
	e := newEnv(t)
	_, sk := e.merchant(false)
	for _, tc := range []struct {
		provider payment.Provider
		channel  payment.Channel
		payer    map[string]any
		action   string
	}{
		{payment.WeChatPay, payment.ChannelQR, nil, payment.ActionQRCode},
		{payment.WeChatPay, payment.ChannelH5, nil, payment.ActionRedirect},
		{payment.WeChatPay, payment.ChannelMiniProgram, map[string]any{"openid": "o-buyer"}, payment.ActionWeChatJSAPI},
		{payment.WeChatPay, payment.ChannelApp, nil, payment.ActionApp},
		{payment.Alipay, payment.ChannelQR, nil, payment.ActionQRCode},
		{payment.Alipay, payment.ChannelWeb, nil, payment.ActionRedirect},
		{payment.Alipay, payment.ChannelMiniProgram, map[string]any{"buyer_id": "2088000000000001"}, payment.ActionAlipayTrade},
		{payment.Alipay, payment.ChannelApp, nil, payment.ActionApp},
	} {
		body := map[string]any{"amount": 1234, "description": "两杯龙井", "reference": "ord-1", "provider": tc.provider, "channel": tc.channel,
			"metadata": map[string]string{"table": "7"}}
		if tc.payer != nil {
			body["payer"] = tc.payer
		}
		p := e.createPayment(sk, body)
		if p.Status != payment.StatusPending || p.Amount != 1234 || p.Currency != "CNY" || p.Provider != tc.provider || p.Channel != tc.channel ||
			p.Livemode || p.Metadata["table"] != "7" || !strings.HasPrefix(p.ID, "pay_") || p.CheckoutURL != "https://pay.example.test/checkout/"+p.ID {
			t.Fatalf("%s %s: got %+v", tc.provider, tc.channel, p)
		}
		if p.NextAction == nil || p.NextAction.Type != tc.action {
			t.Fatalf("%s %s: next action %+v, want %s", tc.provider, tc.channel, p.NextAction, tc.action)
		}
		wallet := e.wechat
		if tc.provider == payment.Alipay {
			wallet = e.alipay
		}
		want := wallet.NextAction(gateway.PaymentRequest{OutTradeNo: p.ProviderRef.OutTradeNo, Channel: tc.channel,
			Payer: payment.Payer{OpenID: "o-buyer"}})
		if p.NextAction.QRCode != want.QRCode || p.NextAction.URL != want.URL || p.NextAction.TradeNo != want.TradeNo || p.NextAction.OrderString != want.OrderString {
			t.Fatalf("%s %s: next action %+v, want the wallet's %+v", tc.provider, tc.channel, p.NextAction, want)
		}
		got := e.do(req{method: "GET", path: "/v1/payments/" + p.ID, secret: sk}).payment(t)
		if got.ID != p.ID || got.NextAction == nil || got.NextAction.Type != tc.action {
			t.Fatalf("retrieved %+v, want the created payment", got)
		}
	}

	// Without provider and channel the buyer chooses at checkout: no order is placed yet.
	calls := e.wechat.Calls(fakewallet.OpCreatePayment)
	p := e.createPayment(sk, map[string]any{"amount": 500, "description": "tea", "expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
	if p.NextAction != nil || p.Provider != "" || p.Status != payment.StatusPending {
		t.Fatalf("checkout payment: %+v", p)
	}
	if d := time.Until(p.ExpiresAt); d < 59*time.Minute || d > 61*time.Minute {
		t.Fatalf("expires_at %s, want the requested hour", p.ExpiresAt)
	}
	if e.wechat.Calls(fakewallet.OpCreatePayment) != calls {
		t.Fatal("a checkout payment called the wallet")
	}

	// A live key makes live payments.
	_, live := e.merchant(true)
	if p := e.createPayment(live, qrPayment(100)); !p.Livemode {
		t.Fatal("live key created a test payment")
	}
}

func TestStrictInput(t *testing.T) {
	e := newEnv(t)
	_, sk := e.merchant(false)
	valid := `{"amount":100,"currency":"CNY","description":"tea","provider":"wechatpay","channel":"qr"}`
	for _, tc := range []struct {
		name, body, param, code string
	}{
		{"unknown field", `{"amount":100,"description":"tea","colour":"red"}`, "colour", "parameter_unknown"},
		{"field in other case", `{"AMOUNT":100,"description":"tea"}`, "AMOUNT", "parameter_unknown"},
		{"nested unknown field", `{"amount":100,"description":"tea","payer":{"openid":"o","nick":"x"}}`, "payer.nick", "parameter_unknown"},
		{"duplicate field", `{"amount":100,"amount":1,"description":"tea"}`, "amount", "parameter_invalid"},
		{"amount as string", `{"amount":"100","description":"tea"}`, "amount", "parameter_invalid"},
		{"fractional amount", `{"amount":1.5,"description":"tea"}`, "amount", "parameter_invalid"},
		{"exponent amount", `{"amount":1e2,"description":"tea"}`, "amount", "parameter_invalid"},
		{"zero amount", `{"amount":0,"description":"tea"}`, "amount", "parameter_invalid"},
		{"negative amount", `{"amount":-1,"description":"tea"}`, "amount", "parameter_invalid"},
		{"missing amount", `{"description":"tea"}`, "amount", "parameter_invalid"},
		{"amount above the maximum", `{"amount":10000000001,"description":"tea"}`, "amount", "parameter_invalid"},
		{"amount beyond int64", `{"amount":99999999999999999999,"description":"tea"}`, "amount", "parameter_invalid"},
		{"amount overflowing float", `{"amount":1e400,"description":"tea"}`, "amount", "parameter_invalid"},
		{"currency USD", `{"amount":100,"currency":"USD","description":"tea"}`, "currency", "parameter_invalid"},
		{"currency lower case", `{"amount":100,"currency":"cny","description":"tea"}`, "currency", "parameter_invalid"},
		{"missing description", `{"amount":100}`, "description", "parameter_invalid"},
		{"oversized reference", `{"amount":100,"description":"tea","reference":"` + strings.Repeat("r", 65) + `"}`, "reference", "parameter_invalid"},
		{"oversized description", `{"amount":100,"description":"` + strings.Repeat("茶", 128) + `"}`, "description", "parameter_invalid"},
		{"bad expires_at", `{"amount":100,"description":"tea","expires_at":"tomorrow"}`, "expires_at", "parameter_invalid"},
		{"numeric expires_at", `{"amount":100,"description":"tea","expires_at":1767225600}`, "expires_at", "parameter_invalid"},
		{"expires_at too soon", `{"amount":100,"description":"tea","expires_at":"` + time.Now().Add(10*time.Second).UTC().Format(time.RFC3339) + `"}`, "expires_at", "parameter_invalid"},
		{"metadata value not a string", `{"amount":100,"description":"tea","metadata":{"n":1}}`, "metadata", "parameter_invalid"},
		{"unknown provider", `{"amount":100,"description":"tea","provider":"paypal","channel":"qr"}`, "provider", "parameter_invalid"},
		{"unsupported channel", `{"amount":100,"description":"tea","provider":"wechatpay","channel":"web"}`, "channel", "parameter_invalid"},
		{"miniprogram without payer", `{"amount":100,"description":"tea","provider":"wechatpay","channel":"miniprogram"}`, "payer", "parameter_invalid"},
		{"bad return_url", `{"amount":100,"description":"tea","return_url":"javascript:alert(1)"}`, "return_url", "parameter_invalid"},
		{"trailing data", valid + `{}`, "body", "body_invalid"},
		{"trailing garbage", valid + ` x`, "body", "body_invalid"},
		{"array body", `[` + valid + `]`, "body", "body_invalid"},
		{"null body", `null`, "body", "body_invalid"},
		{"empty body", ``, "body", "body_invalid"},
		{"invalid JSON", `{"amount":100,`, "body", "body_invalid"},
		{"oversized body", `{"amount":100,"description":"tea","metadata":{"k":"` + strings.Repeat("x", 70<<10) + `"}}`, "body", "body_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := e.do(req{method: "POST", path: "/v1/payments", secret: sk, body: tc.body})
			if res.status != http.StatusBadRequest {
				t.Fatalf("status %d %s, want 400", res.status, res.body)
			}
			got := res.apiError(t)
			if got.Type != "invalid_request_error" || got.Param != tc.param || got.Code != tc.code || got.Message == "" {
				t.Fatalf("error %+v, want param %q code %q", got, tc.param, tc.code)
			}
		})
	}
	// Nothing was created by the refused requests, and the wallet never heard of them.
	var l list[*payment.Payment]
	e.do(req{method: "GET", path: "/v1/payments", secret: sk}).decode(t, &l)
	if len(l.Data) != 0 || e.wechat.Calls(fakewallet.OpCreatePayment) != 0 {
		t.Fatalf("refused requests created %d payments, %d wallet calls", len(l.Data), e.wechat.Calls(fakewallet.OpCreatePayment))
	}
	if res := e.do(req{method: "POST", path: "/v1/payments", secret: sk, body: valid}); res.status != http.StatusOK {
		t.Fatalf("valid request: %d %s", res.status, res.body)
	}
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t)
	merchantID, sk := e.merchant(false)
	revoked := e.key(merchantID, false)
	keys, err := e.store.ListAPIKeys(context.Background(), merchantID)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.HasPrefix(revoked, k.Prefix) && strings.HasPrefix(k.Prefix, "sk_test_") && !strings.HasPrefix(sk, k.Prefix) {
			if err := e.store.RevokeAPIKey(context.Background(), k.ID, e.clock.Now().Add(-time.Second)); err != nil {
				t.Fatal(err)
			}
		}
	}
	unknown := "sk_test_" + payment.RandomString(40)
	for _, tc := range []struct {
		name, header, code string
	}{
		{"missing", "", "api_key_missing"},
		{"basic scheme", "Basic dXNlcjpwYXNz", "api_key_invalid"},
		{"no scheme", sk, "api_key_invalid"},
		{"malformed key", "Bearer sk_test_short", "api_key_invalid"},
		{"publishable-looking key", "Bearer pk_test_" + payment.RandomString(40), "api_key_invalid"},
		{"unknown key", "Bearer " + unknown, "api_key_invalid"},
		{"revoked key", "Bearer " + revoked, "api_key_revoked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, rq := range []req{
				{method: "GET", path: "/v1/payments"},
				{method: "POST", path: "/v1/payments", body: qrPayment(100)},
				{method: "GET", path: "/v1/events"},
			} {
				rq.header = map[string]string{}
				if tc.header != "" {
					rq.header["Authorization"] = tc.header
				}
				res := e.do(rq)
				if res.status != http.StatusUnauthorized {
					t.Fatalf("%s %s: status %d, want 401", rq.method, rq.path, res.status)
				}
				if got := res.apiError(t); got.Type != "authentication_error" || got.Code != tc.code {
					t.Fatalf("error %+v, want authentication_error %s", got, tc.code)
				}
				if !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer") {
					t.Fatalf("no WWW-Authenticate challenge")
				}
			}
		})
	}
	if e.wechat.Calls(fakewallet.OpCreatePayment) != 0 {
		t.Fatal("an unauthenticated request reached the wallet")
	}
	if res := e.do(req{method: "GET", path: "/v1/payments", secret: sk}); res.status != http.StatusOK {
		t.Fatalf("valid key: %d %s", res.status, res.body)
	}
	// Public routes need no key.
	for _, path := range []string{"/healthz", "/metrics", "/openapi.json"} {
		if res := e.do(req{method: "GET", path: path}); res.status != http.StatusOK {
			t.Fatalf("%s: %d", path, res.status)
		}
	}
}

func TestMerchantIsolation(t *testing.T) {
	e := newEnv(t)
	_, skA := e.merchant(false)
	_, skB := e.merchant(false)
	paidA := e.paidPayment(skA, 1000)
	pendingA := e.createPayment(skA, qrPayment(200))
	refundA := e.do(req{method: "POST", path: "/v1/refunds", secret: skA, body: map[string]any{"payment_id": paidA.ID, "amount": 100}}).refund(t)
	if refundA.Status != payment.RefundSucceeded {
		t.Fatalf("refund %+v", refundA)
	}
	e.do(req{method: "POST", path: "/v1/payments/" + pendingA.ID + "/cancel", secret: skA})

	for _, rq := range []req{
		{method: "GET", path: "/v1/payments/" + paidA.ID},
		{method: "POST", path: "/v1/payments/" + pendingA.ID + "/cancel"},
		{method: "POST", path: "/v1/refunds", body: map[string]any{"payment_id": paidA.ID, "amount": 100}},
		{method: "GET", path: "/v1/refunds/" + refundA.ID},
	} {
		rq.secret = skB
		res := e.do(rq)
		if res.status != http.StatusNotFound || res.apiError(t).Code != "resource_missing" {
			t.Fatalf("B: %s %s → %d %s, want 404", rq.method, rq.path, res.status, res.body)
		}
	}
	// B may not page from A's objects either.
	if res := e.do(req{method: "GET", path: "/v1/payments?starting_after=" + paidA.ID, secret: skB}); res.status != http.StatusBadRequest {
		t.Fatalf("B paging from A's payment: %d", res.status)
	}
	var pl list[*payment.Payment]
	e.do(req{method: "GET", path: "/v1/payments?limit=100", secret: skB}).decode(t, &pl)
	var el list[*payment.Event]
	e.do(req{method: "GET", path: "/v1/events?limit=100", secret: skB}).decode(t, &el)
	if len(pl.Data) != 0 || len(el.Data) != 0 {
		t.Fatalf("B sees %d payments and %d events of A", len(pl.Data), len(el.Data))
	}
	pB := e.createPayment(skB, qrPayment(300))
	e.do(req{method: "GET", path: "/v1/payments?limit=100", secret: skA}).decode(t, &pl)
	for _, p := range pl.Data {
		if p.ID == pB.ID {
			t.Fatal("A's list shows B's payment")
		}
	}
	if len(pl.Data) != 2 {
		t.Fatalf("A lists %d payments, want 2", len(pl.Data))
	}
	// Nothing of A's changed through B's attempts.
	got := e.do(req{method: "GET", path: "/v1/payments/" + paidA.ID, secret: skA}).payment(t)
	if got.AmountRefunded != 100 {
		t.Fatalf("A's payment refunded %d, want 100", got.AmountRefunded)
	}

	// A live key of A does not see or touch A's test payments.
	liveA := e.key(merchantIDOf(t, e, skA), true)
	for _, rq := range []req{
		{method: "GET", path: "/v1/payments/" + paidA.ID},
		{method: "POST", path: "/v1/refunds", body: map[string]any{"payment_id": paidA.ID}},
	} {
		rq.secret = liveA
		if res := e.do(rq); res.status != http.StatusNotFound {
			t.Fatalf("live key: %s %s → %d, want 404", rq.method, rq.path, res.status)
		}
	}
}

// merchantIDOf finds the merchant of a key through the API's log-free path: the store.
func merchantIDOf(t *testing.T, e *testEnv, secret string) string {
	t.Helper()
	k, err := e.store.APIKeyByHash(context.Background(), hashOf(secret))
	if err != nil {
		t.Fatal(err)
	}
	return k.MerchantID
}

func TestIdempotentReplay(t *testing.T) {
	e := newEnv(t)
	_, sk := e.merchant(false)
	_, other := e.merchant(false)
	key := map[string]string{"Idempotency-Key": "order-42-attempt"}
	body := qrPayment(4200)
	first := e.do(req{method: "POST", path: "/v1/payments", secret: sk, body: body, header: key})
	if first.status != http.StatusOK || first.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first: %d replayed=%q", first.status, first.header.Get("Idempotent-Replayed"))
	}
	for range 3 {
		again := e.do(req{method: "POST", path: "/v1/payments", secret: sk, body: body, header: key})
		if again.status != first.status || string(again.body) != string(first.body) || again.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay: %d %q replayed=%q; want the first response byte for byte", again.status, again.body, again.header.Get("Idempotent-Replayed"))
		}
		if again.header.Get("X-Request-Id") == first.header.Get("X-Request-Id") {
			t.Fatal("a replay reused the first request's id")
		}
	}
	if n := e.wechat.Calls(fakewallet.OpCreatePayment); n != 1 {
		t.Fatalf("wallet called %d times, want 1", n)
	}
	var l list[*payment.Payment]
	e.do(req{method: "GET", path: "/v1/payments", secret: sk}).decode(t, &l)
	if len(l.Data) != 1 {
		t.Fatalf("%d payments, want 1", len(l.Data))
	}

	// Same key, different body: 422.
	changed := qrPayment(4300)
	res := e.do(req{method: "POST", path: "/v1/payments", secret: sk, body: changed, header: key})
	if res.status != http.StatusUnprocessableEntity || res.apiError(t).Type != "idempotency_error" || res.apiError(t).Code != codeIdempotencyReused {
		t.Fatalf("different body: %d %s, want 422 idempotency_error", res.status, res.body)
	}
	// Same key on another path: 422 too (the path is part of the request).
	res = e.do(req{method: "POST", path: "/v1/refunds", secret: sk, body: body, header: key})
	if res.status != http.StatusUnprocessableEntity {
		t.Fatalf("same key on another route: %d %s, want 422", res.status, res.body)
	}
	// Keys are per merchant: another merchant's identical key is its own.
	res = e.do(req{method: "POST", path: "/v1/payments", secret: other, body: body, header: key})
	if res.status != http.StatusOK || res.header.Get("Idempotent-Replayed") != "" || res.payment(t).ID == first.payment(t).ID {
		t.Fatalf("other merchant, same key: %d replayed=%q", res.status, res.header.Get("Idempotent-Replayed"))
	}

	// Keys are per mode: the same merchant's live key with the same key and body is a new request.
	live := e.key(merchantIDOf(t, e, sk), true)
	res = e.do(req{method: "POST", path: "/v1/payments", secret: live, body: body, header: key})
	if res.status != http.StatusOK || res.header.Get("Idempotent-Replayed") != "" || !res.payment(t).Livemode {
		t.Fatalf("live key, same idempotency key: %d replayed=%q %s", res.status, res.header.Get("Idempotent-Replayed"), res.body)
	}

	// 4xx answers are stored and replayed.
	bad := map[string]any{"amount": 0, "description": "tea"}
	k400 := map[string]string{"Idempotency-Key": "bad-amount"}
	r1 := e.do(req{method: "POST", path: "/v1/payments", secret: sk, body: bad, header: k400})
	r2 := e.do(req{method: "POST", path: "/v1/payments", secret: sk, body: bad, header: k400})
	if r1.status != http.StatusBadRequest || r2.status != http.StatusBadRequest || string(r1.body) != string(r2.body) || r2.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("4xx replay: %d/%d replayed=%q", r1.status, r2.status, r2.header.Get("Idempotent-Replayed"))
	}

	// 5xx answers are not stored: a retry with the same key runs again.
	e.wechat.SetError(fakewallet.OpCreatePayment, fakewallet.Refused("SYSTEMERROR", "system busy"))
	k502 := map[string]string{"Idempotency-Key": "wallet-down"}
	res = e.do(req{method: "POST", path: "/v1/payments", secret: sk, body: qrPayment(700), header: k502})
	if res.status != http.StatusBadGateway || res.apiError(t).ProviderCode != "SYSTEMERROR" || res.apiError(t).Type != "provider_error" {
		t.Fatalf("wallet refusal: %d %s, want 502 with the provider code", res.status, res.body)
	}
	e.wechat.SetError(fakewallet.OpCreatePayment, nil)
	res = e.do(req{method: "POST", path: "/v1/payments", secret: sk, body: qrPayment(700), header: k502})
	if res.status != http.StatusOK || res.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("retry after 502: %d replayed=%q, want a fresh 200", res.status, res.header.Get("Idempotent-Replayed"))
	}
	// A 500 (failing store at finish time is not one: the response is sent, the key freed).
	e.store.fail("APIKeyByHash", nil)

	// Key length limit.
	res = e.do(req{method: "POST", path: "/v1/payments", secret: sk, body: body, header: map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}})
	if res.status != http.StatusBadRequest || res.apiError(t).Param != "Idempotency-Key" {
		t.Fatalf("long key: %d %s", res.status, res.body)
	}
	res = e.do(req{method: "POST", path: "/v1/payments", secret: sk, body: body, header: map[string]string{"Idempotency-Key": strings.Repeat("k", 255)}})
	if res.status != http.StatusOK {
		t.Fatalf("255-character key: %d %s", res.status, res.body)
	}
}

func TestIdempotentRefundAndCancel(t *testing.T) {
	e := newEnv(t)
	_, sk := e.merchant(false)
	p := e.paidPayment(sk, 1000)
	key := map[string]string{"Idempotency-Key": "refund-1"}
	body := map[string]any{"payment_id": p.ID, "amount": 300, "reason": "broken cup"}
	r1 := e.do(req{method: "POST", path: "/v1/refunds", secret: sk, body: body, header: key})
	r2 := e.do(req{method: "POST", path: "/v1/refunds", secret: sk, body: body, header: key})
	if r1.status != http.StatusOK || string(r1.body) != string(r2.body) || r2.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("refund replay: %d %d", r1.status, r2.status)
	}
	if got := e.do(req{method: "GET", path: "/v1/payments/" + p.ID, secret: sk}).payment(t); got.AmountRefunded != 300 {
		t.Fatalf("amount refunded %d, want 300 (one refund)", got.AmountRefunded)
	}
	if n := e.wechat.Calls(fakewallet.OpRefund); n != 1 {
		t.Fatalf("wallet refund calls %d, want 1", n)
	}

	pending := e.createPayment(sk, qrPayment(100))
	ck := map[string]string{"Idempotency-Key": "cancel-1"}
	c1 := e.do(req{method: "POST", path: "/v1/payments/" + pending.ID + "/cancel", secret: sk, header: ck})
	c2 := e.do(req{method: "POST", path: "/v1/payments/" + pending.ID + "/cancel", secret: sk, header: ck})
	if c1.status != http.StatusOK || string(c1.body) != string(c2.body) || c2.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("cancel replay: %d %d %q", c1.status, c2.status, c2.header.Get("Idempotent-Replayed"))
	}
	if n := e.wechat.Calls(fakewallet.OpClosePayment); n != 1 {
		t.Fatalf("wallet close calls %d, want 1", n)
	}
}

func TestIdempotencyConcurrentSameKey(t *testing.T) {
	e := newEnv(t)
	_, sk := e.merchant(false)
	const n = 8
	others := make(chan int, n)
	e.wechat.SetHook(fakewallet.OpCreatePayment, func(ctx context.Context) error {
		// Hold the first request at the wallet until every other one has been answered.
		for range n - 1 {
			select {
			case <-others:
			case <-time.After(10 * time.Second):
				return errors.New("the other requests did not finish")
			}
		}
		return nil
	})
	body := qrPayment(900)
	statuses := make(chan *response, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			res, err := e.send(req{method: "POST", path: "/v1/payments", secret: sk, body: body, header: map[string]string{"Idempotency-Key": "same"}})
			if err != nil {
				t.Error(err)
				return
			}
			if res.status != http.StatusOK {
				others <- res.status
			}
			statuses <- res
		})
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for res := range statuses {
		count[res.status]++
		if err := e.check(req{method: "POST", path: "/v1/payments"}, res); err != nil {
			t.Error(err)
		}
		if res.status == http.StatusConflict {
			if got := res.apiError(t); got.Type != "idempotency_error" || got.Code != codeIdempotencyInFlight {
				t.Fatalf("409 error %+v", got)
			}
		}
	}
	if count[http.StatusOK] != 1 || count[http.StatusConflict] != n-1 {
		t.Fatalf("statuses %v, want one 200 and %d 409", count, n-1)
	}
	if calls := e.wechat.Calls(fakewallet.OpCreatePayment); calls != 1 {
		t.Fatalf("wallet called %d times, want 1", calls)
	}
	// Once finished, the key replays.
	e.wechat.SetHook(fakewallet.OpCreatePayment, nil)
	res := e.do(req{method: "POST", path: "/v1/payments", secret: sk, body: body, header: map[string]string{"Idempotency-Key": "same"}})
	if res.status != http.StatusOK || res.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("after: %d replayed=%q", res.status, res.header.Get("Idempotent-Replayed"))
	}
}

func TestIdempotencyPurgeAndStale(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.IdempotencyStaleAfter = time.Minute })
	_, sk := e.merchant(false)
	key := map[string]string{"Idempotency-Key": "old"}
	e.do(req{method: "POST", path: "/v1/payments", secret: sk, body: qrPayment(100), header: key})

	n, err := PurgeIdempotency(context.Background(), e.store, e.clock.Now().Add(23*time.Hour))
	if err != nil || n != 0 {
		t.Fatalf("purge before 24h: %d %v, want nothing", n, err)
	}
	if res := e.do(req{method: "POST", path: "/v1/payments", secret: sk, body: qrPayment(200), header: key}); res.status != http.StatusUnprocessableEntity {
		t.Fatalf("key reused within 24h: %d, want 422", res.status)
	}
	n, err = PurgeIdempotency(context.Background(), e.store, e.clock.Now().Add(IdempotencyTTL+time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("purge after 24h: %d %v, want 1", n, err)
	}
	if res := e.do(req{method: "POST", path: "/v1/payments", secret: sk, body: qrPayment(200), header: key}); res.status != http.StatusOK || res.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("key after purge: %d, want a fresh 200", res.status)
	}

	// A claim left in flight by a dead process is taken over once stale.
	merchantID := merchantIDOf(t, e, sk)
	orphan, err := json.Marshal(qrPayment(300))
	if err != nil {
		t.Fatal(err)
	}
	hash := requestHash("POST", "/v1/payments", orphan)
	if _, created, err := e.store.BeginIdempotent(context.Background(), merchantID, "test:orphan", hash, e.clock.Now(), time.Minute); err != nil || !created {
		t.Fatalf("claim: %v", err)
	}
	if res := e.do(req{method: "POST", path: "/v1/payments", secret: sk, body: orphan, header: map[string]string{"Idempotency-Key": "orphan"}}); res.status != http.StatusConflict {
		t.Fatalf("fresh orphan claim: %d, want 409", res.status)
	}
	e.clock.Advance(2 * time.Minute)
	if res := e.do(req{method: "POST", path: "/v1/payments", secret: sk, body: orphan, header: map[string]string{"Idempotency-Key": "orphan"}}); res.status != http.StatusOK {
		t.Fatalf("stale orphan claim: %d %s, want 200", res.status, res.body)
	}
}

func TestConcurrentRefundsNeverOverRefund(t *testing.T) {
	e := newEnv(t)
	_, sk := e.merchant(false)
	p := e.paidPayment(sk, 100)
	const n = 20
	results := make(chan *response, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			res, err := e.send(req{method: "POST", path: "/v1/refunds", secret: sk, body: map[string]any{"payment_id": p.ID, "amount": 10}})
			if err != nil {
				t.Error(err)
				return
			}
			results <- res
		})
	}
	wg.Wait()
	close(results)
	ok, refused := 0, 0
	for res := range results {
		if err := e.check(req{method: "POST", path: "/v1/refunds"}, res); err != nil {
			t.Error(err)
		}
		switch res.status {
		case http.StatusOK:
			if r := res.refund(t); r.Status != payment.RefundSucceeded || r.Amount != 10 {
				t.Fatalf("refund %+v", r)
			}
			ok++
		case http.StatusBadRequest:
			if got := res.apiError(t); got.Code != "amount_too_large" || got.Param != "amount" {
				t.Fatalf("refusal %+v", got)
			}
			refused++
		default:
			t.Fatalf("status %d %s", res.status, res.body)
		}
	}
	if ok != 10 || refused != 10 {
		t.Fatalf("%d refunds succeeded and %d were refused, want 10 and 10", ok, refused)
	}
	got := e.do(req{method: "GET", path: "/v1/payments/" + p.ID, secret: sk}).payment(t)
	if got.AmountRefunded != 100 {
		t.Fatalf("amount refunded %d, want 100", got.AmountRefunded)
	}
	if calls := e.wechat.Calls(fakewallet.OpRefund); calls != 10 {
		t.Fatalf("wallet refund calls %d, want 10", calls)
	}
}

func TestRefunds(t *testing.T) {
	e := newEnv(t)
	_, sk := e.merchant(false)
	p := e.paidPayment(sk, 1000)

	for _, tc := range []struct {
		name  string
		body  any
		param string
	}{
		{"zero amount", map[string]any{"payment_id": p.ID, "amount": 0}, "amount"},
		{"negative amount", map[string]any{"payment_id": p.ID, "amount": -5}, "amount"},
		{"string amount", `{"payment_id":"` + p.ID + `","amount":"5"}`, "amount"},
		{"too much", map[string]any{"payment_id": p.ID, "amount": 1001}, "amount"},
		{"missing payment", map[string]any{"amount": 5}, "payment_id"},
		{"unknown field", map[string]any{"payment_id": p.ID, "amount": 5, "refund_all": true}, "refund_all"},
		{"long reason", map[string]any{"payment_id": p.ID, "amount": 5, "reason": strings.Repeat("r", 81)}, "reason"},
	} {
		res := e.do(req{method: "POST", path: "/v1/refunds", secret: sk, body: tc.body})
		if res.status != http.StatusBadRequest || res.apiError(t).Param != tc.param {
			t.Fatalf("%s: %d %s, want 400 naming %s", tc.name, res.status, res.body, tc.param)
		}
	}
	res := e.do(req{method: "POST", path: "/v1/refunds", secret: sk, body: map[string]any{"payment_id": "pay_nope", "amount": 5}})
	if res.status != http.StatusNotFound || res.apiError(t).Param != "payment_id" {
		t.Fatalf("unknown payment: %d %s", res.status, res.body)
	}
	pending := e.createPayment(sk, qrPayment(100))
	res = e.do(req{method: "POST", path: "/v1/refunds", secret: sk, body: map[string]any{"payment_id": pending.ID}})
	if res.status != http.StatusConflict || res.apiError(t).Code != "payment_not_refundable" {
		t.Fatalf("refund of pending payment: %d %s", res.status, res.body)
	}

	// A refusal by the wallet is a failed refund whose amount becomes refundable again.
	e.wechat.SetError(fakewallet.OpRefund, fakewallet.Refused("NOT_ENOUGH", "insufficient balance"))
	failed := e.do(req{method: "POST", path: "/v1/refunds", secret: sk, body: map[string]any{"payment_id": p.ID, "amount": 400}}).refund(t)
	if failed.Status != payment.RefundFailed || failed.FailureCode != "NOT_ENOUGH" {
		t.Fatalf("refused refund %+v", failed)
	}
	e.wechat.SetError(fakewallet.OpRefund, nil)

	// No amount: everything still refundable.
	res = e.do(req{method: "POST", path: "/v1/refunds", secret: sk, body: map[string]any{"payment_id": p.ID, "metadata": map[string]string{"ticket": "T-1"}}})
	full := res.refund(t)
	if full.Amount != 1000 || full.Status != payment.RefundSucceeded || full.PaymentID != p.ID || full.Metadata["ticket"] != "T-1" || !strings.HasPrefix(full.ID, "re_") {
		t.Fatalf("full refund: %d %s", res.status, res.body)
	}
	got := e.do(req{method: "GET", path: "/v1/refunds/" + full.ID, secret: sk}).refund(t)
	if got.ID != full.ID || got.Status != payment.RefundSucceeded || got.SucceededAt == nil {
		t.Fatalf("retrieved %+v", got)
	}
	if res := e.do(req{method: "GET", path: "/v1/refunds/" + failed.ID, secret: sk}); res.refund(t).Status != payment.RefundFailed {
		t.Fatalf("failed refund retrieved as %s", res.body)
	}
	if res := e.do(req{method: "GET", path: "/v1/refunds/re_nope", secret: sk}); res.status != http.StatusNotFound {
		t.Fatalf("unknown refund: %d", res.status)
	}
	if res := e.do(req{method: "POST", path: "/v1/refunds", secret: sk, body: map[string]any{"payment_id": p.ID, "amount": 1}}); res.status != http.StatusBadRequest {
		t.Fatalf("refund of a fully refunded payment: %d %s", res.status, res.body)
	}
}

func TestCancel(t *testing.T) {
	e := newEnv(t)
	_, sk := e.merchant(false)
	p := e.createPayment(sk, qrPayment(100))
	res := e.do(req{method: "POST", path: "/v1/payments/" + p.ID + "/cancel", secret: sk, body: `{"reason":"requested_by_customer"}`})
	got := res.payment(t)
	if res.status != http.StatusOK || got.Status != payment.StatusCanceled || got.CancelReason != "requested_by_customer" || got.NextAction != nil {
		t.Fatalf("cancel: %d %+v", res.status, got)
	}
	if o, _ := e.wechat.Order(p.ProviderRef.OutTradeNo); o.State != gateway.WalletClosed {
		t.Fatalf("order at the wallet is %s, want closed", o.State)
	}
	// Canceling again answers the canceled payment.
	if res := e.do(req{method: "POST", path: "/v1/payments/" + p.ID + "/cancel", secret: sk}); res.status != http.StatusOK || res.payment(t).Status != payment.StatusCanceled {
		t.Fatalf("second cancel: %d %s", res.status, res.body)
	}
	// Default reason.
	p2 := e.createPayment(sk, qrPayment(100))
	if got := e.do(req{method: "POST", path: "/v1/payments/" + p2.ID + "/cancel", secret: sk, body: `{}`}).payment(t); got.CancelReason != "requested_by_merchant" {
		t.Fatalf("default reason %q", got.CancelReason)
	}
	// Bad input.
	for _, body := range []string{`{"reason":"expired"}`, `{"reason":"x"}`, `{"why":"x"}`, `[]`} {
		if res := e.do(req{method: "POST", path: "/v1/payments/" + p2.ID + "/cancel", secret: sk, body: body}); res.status != http.StatusBadRequest {
			t.Fatalf("cancel body %s: %d", body, res.status)
		}
	}
	// Succeeded payments cannot be canceled.
	paid := e.paidPayment(sk, 100)
	res = e.do(req{method: "POST", path: "/v1/payments/" + paid.ID + "/cancel", secret: sk})
	if res.status != http.StatusConflict || res.apiError(t).Code != "payment_state" || res.apiError(t).Type != "conflict_error" {
		t.Fatalf("cancel succeeded: %d %s", res.status, res.body)
	}
	// Paid at the wallet but not yet known here: the close discovers it; 409 and the payment succeeds.
	p3 := e.createPayment(sk, qrPayment(100))
	if _, err := e.wechat.Pay(p3.ProviderRef.OutTradeNo); err != nil {
		t.Fatal(err)
	}
	res = e.do(req{method: "POST", path: "/v1/payments/" + p3.ID + "/cancel", secret: sk})
	if res.status != http.StatusConflict {
		t.Fatalf("cancel of a payment paid meanwhile: %d %s", res.status, res.body)
	}
	if got := e.do(req{method: "GET", path: "/v1/payments/" + p3.ID, secret: sk}).payment(t); got.Status != payment.StatusSucceeded {
		t.Fatalf("payment paid meanwhile is %s, want succeeded", got.Status)
	}
	// The wallet cannot be reached: 502 and the payment stays pending.
	p4 := e.createPayment(sk, qrPayment(100))
	e.wechat.SetError(fakewallet.OpClosePayment, fakewallet.ErrUnavailable)
	res = e.do(req{method: "POST", path: "/v1/payments/" + p4.ID + "/cancel", secret: sk})
	if res.status != http.StatusBadGateway || res.apiError(t).Code != "provider_unavailable" {
		t.Fatalf("cancel with wallet down: %d %s", res.status, res.body)
	}
	if strings.Contains(string(res.body), "deadline") {
		t.Fatalf("502 leaks the cause: %s", res.body)
	}
	e.wechat.SetError(fakewallet.OpClosePayment, nil)
	if got := e.do(req{method: "GET", path: "/v1/payments/" + p4.ID, secret: sk}).payment(t); got.Status != payment.StatusPending {
		t.Fatalf("payment after failed close is %s", got.Status)
	}
	if res := e.do(req{method: "POST", path: "/v1/payments/pay_nope/cancel", secret: sk}); res.status != http.StatusNotFound {
		t.Fatalf("cancel unknown: %d", res.status)
	}
}

func TestListPagination(t *testing.T) {
	e := newEnv(t)
	_, sk := e.merchant(false)
	created := map[string]bool{}
	var order []string
	for i := range 25 {
		body := qrPayment(int64(100 + i))
		body["reference"] = fmt.Sprintf("ref-%d", i%3)
		p := e.createPayment(sk, body)
		created[p.ID] = true
		order = append(order, p.ID)
	}
	var all []*payment.Payment
	path := "/v1/payments?limit=7"
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		var l list[*payment.Payment]
		e.do(req{method: "GET", path: path, secret: sk}).decode(t, &l)
		if l.Object != "list" || l.URL != "/v1/payments" || len(l.Data) > 7 {
			t.Fatalf("page %+v", l)
		}
		all = append(all, l.Data...)
		if !l.HasMore {
			break
		}
		path = "/v1/payments?limit=7&starting_after=" + l.Data[len(l.Data)-1].ID
	}
	if len(all) != 25 {
		t.Fatalf("paged %d payments, want 25", len(all))
	}
	seen := map[string]bool{}
	for i, p := range all {
		if seen[p.ID] || !created[p.ID] {
			t.Fatalf("duplicate or foreign payment %s", p.ID)
		}
		seen[p.ID] = true
		if i > 0 && p.CreatedAt.After(all[i-1].CreatedAt) {
			t.Fatalf("not newest first at %d", i)
		}
	}
	if all[0].ID != order[24] || all[24].ID != order[0] {
		t.Fatalf("first/last %s/%s, want newest %s first and oldest %s last", all[0].ID, all[24].ID, order[24], order[0])
	}

	var l list[*payment.Payment]
	e.do(req{method: "GET", path: "/v1/payments?limit=100&reference=ref-1", secret: sk}).decode(t, &l)
	if len(l.Data) != 8 || l.HasMore {
		t.Fatalf("reference filter: %d (more %v), want 8", len(l.Data), l.HasMore)
	}
	for _, p := range l.Data {
		if p.Reference != "ref-1" {
			t.Fatalf("reference filter let %q through", p.Reference)
		}
	}
	e.do(req{method: "POST", path: "/v1/payments/" + order[3] + "/cancel", secret: sk})
	e.do(req{method: "GET", path: "/v1/payments?status=canceled", secret: sk}).decode(t, &l)
	if len(l.Data) != 1 || l.Data[0].ID != order[3] {
		t.Fatalf("status filter: %+v", l.Data)
	}
	e.do(req{method: "GET", path: "/v1/payments", secret: sk}).decode(t, &l)
	if len(l.Data) != 10 || !l.HasMore {
		t.Fatalf("default page: %d (more %v), want 10 and more", len(l.Data), l.HasMore)
	}

	for _, tc := range []struct{ query, param string }{
		{"limit=0", "limit"}, {"limit=101", "limit"}, {"limit=abc", "limit"}, {"limit=1.5", "limit"},
		{"status=paid", "status"}, {"starting_after=pay_nope", "starting_after"}, {"sort=asc", "sort"},
		{"limit=5&limit=6", "limit"},
	} {
		res := e.do(req{method: "GET", path: "/v1/payments?" + tc.query, secret: sk})
		if res.status != http.StatusBadRequest || res.apiError(t).Param != tc.param {
			t.Fatalf("%s: %d %s, want 400 naming %s", tc.query, res.status, res.body, tc.param)
		}
	}
}

// TestListFullPage checks has_more on a page of the maximum size.
func TestListFullPage(t *testing.T) {
	e := newEnv(t)
	_, sk := e.merchant(false)
	var wg sync.WaitGroup
	for range 101 {
		wg.Go(func() {
			if res, err := e.send(req{method: "POST", path: "/v1/payments", secret: sk, body: qrPayment(100)}); err != nil || res.status != http.StatusOK {
				t.Errorf("create: %v", err)
			}
		})
	}
	wg.Wait()
	var l list[*payment.Payment]
	e.do(req{method: "GET", path: "/v1/payments?limit=100", secret: sk}).decode(t, &l)
	if len(l.Data) != 100 || !l.HasMore {
		t.Fatalf("limit=100 of 101: %d payments, has_more %v; want 100 and true", len(l.Data), l.HasMore)
	}
	e.do(req{method: "GET", path: "/v1/payments?limit=100&starting_after=" + l.Data[99].ID, secret: sk}).decode(t, &l)
	if len(l.Data) != 1 || l.HasMore {
		t.Fatalf("second page: %d, has_more %v; want 1 and false", len(l.Data), l.HasMore)
	}
}

func TestEvents(t *testing.T) {
	e := newEnv(t)
	_, sk := e.merchant(false)
	paid := e.paidPayment(sk, 500)
	canceled := e.createPayment(sk, qrPayment(100))
	e.do(req{method: "POST", path: "/v1/payments/" + canceled.ID + "/cancel", secret: sk})
	refund := e.do(req{method: "POST", path: "/v1/refunds", secret: sk, body: map[string]any{"payment_id": paid.ID, "amount": 200}}).refund(t)

	var l list[*payment.Event]
	e.do(req{method: "GET", path: "/v1/events", secret: sk}).decode(t, &l)
	if len(l.Data) != 3 || l.HasMore || l.URL != "/v1/events" {
		t.Fatalf("events: %d (more %v)", len(l.Data), l.HasMore)
	}
	want := []payment.EventType{payment.EventRefundSucceeded, payment.EventPaymentCanceled, payment.EventPaymentSucceeded}
	for i, ev := range l.Data {
		if ev.Type != want[i] || ev.Object != "event" || !strings.HasPrefix(ev.ID, "evt_") {
			t.Fatalf("event %d: %+v, want %s", i, ev, want[i])
		}
	}
	var data struct{ ID string }
	if err := json.Unmarshal(l.Data[0].Data, &data); err != nil || data.ID != refund.ID {
		t.Fatalf("refund event data %s", l.Data[0].Data)
	}

	e.do(req{method: "GET", path: "/v1/events?type=payment.canceled", secret: sk}).decode(t, &l)
	if len(l.Data) != 1 || l.Data[0].Type != payment.EventPaymentCanceled {
		t.Fatalf("type filter: %+v", l.Data)
	}
	e.do(req{method: "GET", path: "/v1/events?limit=2", secret: sk}).decode(t, &l)
	if len(l.Data) != 2 || !l.HasMore {
		t.Fatalf("page 1: %d more %v", len(l.Data), l.HasMore)
	}
	first := l.Data
	l = list[*payment.Event]{} // decoding into l again would reuse first's array
	e.do(req{method: "GET", path: "/v1/events?limit=2&starting_after=" + first[1].ID, secret: sk}).decode(t, &l)
	if len(l.Data) != 1 || l.HasMore || l.Data[0].ID == first[0].ID || l.Data[0].ID == first[1].ID {
		t.Fatalf("page 2 after %s, %s: %+v more %v", first[0].ID, first[1].ID, l.Data[0], l.HasMore)
	}
	for _, q := range []string{"type=payment.paid", "limit=0", "starting_after=evt_nope", "kind=x"} {
		if res := e.do(req{method: "GET", path: "/v1/events?" + q, secret: sk}); res.status != http.StatusBadRequest {
			t.Fatalf("%s: %d %s", q, res.status, res.body)
		}
	}
}

// A merchant's test key and live key see separate worlds: lists, refunds and events of the other
// mode are not found.
func TestModesDoNotLeak(t *testing.T) {
	e := newEnv(t)
	merchantID, testKey := e.merchant(false)
	liveKey := e.key(merchantID, true)
	live := e.paidPayment(liveKey, 500)
	test := e.paidPayment(testKey, 300)
	var liveRefund, testRefund payment.Refund
	e.do(req{method: "POST", path: "/v1/refunds", secret: liveKey, body: map[string]any{"payment_id": live.ID, "amount": 100}}).decode(t, &liveRefund)
	e.do(req{method: "POST", path: "/v1/refunds", secret: testKey, body: map[string]any{"payment_id": test.ID, "amount": 100}}).decode(t, &testRefund)
	if !liveRefund.Livemode || testRefund.Livemode {
		t.Fatalf("refund modes: live %v, test %v", liveRefund.Livemode, testRefund.Livemode)
	}
	for _, c := range []struct {
		key              string
		own, other       string
		ownPay, otherPay string
	}{{testKey, testRefund.ID, liveRefund.ID, test.ID, live.ID}, {liveKey, liveRefund.ID, testRefund.ID, live.ID, test.ID}} {
		if res := e.do(req{method: "GET", path: "/v1/refunds/" + c.other, secret: c.key}); res.status != http.StatusNotFound {
			t.Fatalf("refund of the other mode: %d %s", res.status, res.body)
		}
		if res := e.do(req{method: "GET", path: "/v1/refunds/" + c.own, secret: c.key}); res.status != http.StatusOK {
			t.Fatalf("own refund: %d %s", res.status, res.body)
		}
		var payments list[*payment.Payment]
		e.do(req{method: "GET", path: "/v1/payments", secret: c.key}).decode(t, &payments)
		if len(payments.Data) != 1 || payments.Data[0].ID != c.ownPay {
			t.Fatalf("payments: %+v, want only %s", payments.Data, c.ownPay)
		}
		var events list[*payment.Event]
		e.do(req{method: "GET", path: "/v1/events", secret: c.key}).decode(t, &events)
		if len(events.Data) != 2 { // the payment's success and its refund's
			t.Fatalf("%d events, want 2 of this mode", len(events.Data))
		}
		for _, ev := range events.Data {
			if strings.Contains(string(ev.Data), c.otherPay) {
				t.Fatalf("event %s of the other mode listed", ev.ID)
			}
		}
	}
}
