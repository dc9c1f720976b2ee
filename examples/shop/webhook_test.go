package shop

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/webhook"
)

// The shop verifies signatures with its own few lines, as a merchant would. These tests check
// them against Hutong's real signer, so the two cannot drift apart unnoticed.

func newKey(t testing.TB) (string, []byte) {
	t.Helper()
	secret := webhook.NewSecret()
	key, err := parseWebhookSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := webhook.ParseSecret(secret)
	if err != nil || !bytes.Equal(key, theirs) {
		t.Fatalf("parseWebhookSecret = %x, webhook.ParseSecret = %x (%v)", key, theirs, err)
	}
	return secret, key
}

func TestVerifyWebhookAcceptsHutongSignatures(t *testing.T) {
	_, key := newKey(t)
	_, other := newKey(t)
	now := time.Unix(1_780_000_000, 0)
	body := []byte(`{"id":"evt_1","type":"payment.succeeded","data":{}}`)

	if err := verifyWebhook(key, webhook.Sign([][]byte{key}, "evt_1", now, body), body, now); err != nil {
		t.Errorf("signed by Hutong with our key: %v", err)
	}
	// During a secret rotation Hutong signs with both secrets; either one must do.
	both := webhook.Sign([][]byte{other, key}, "evt_1", now, body)
	if err := verifyWebhook(key, both, body, now); err != nil {
		t.Errorf("rotation, new secret second: %v", err)
	}
	// The timestamp may be up to five minutes off either way.
	if err := verifyWebhook(key, webhook.Sign([][]byte{key}, "evt_1", now.Add(-4*time.Minute), body), body, now); err != nil {
		t.Errorf("4 minutes old: %v", err)
	}
	if err := verifyWebhook(key, webhook.Sign([][]byte{key}, "evt_1", now.Add(4*time.Minute), body), body, now); err != nil {
		t.Errorf("4 minutes ahead: %v", err)
	}
}

func TestVerifyWebhookRefuses(t *testing.T) {
	_, key := newKey(t)
	_, other := newKey(t)
	now := time.Unix(1_780_000_000, 0)
	body := []byte(`{"id":"evt_1","type":"payment.succeeded","data":{}}`)
	good := func() http.Header { return webhook.Sign([][]byte{key}, "evt_1", now, body) }
	cases := map[string]struct {
		h    http.Header
		body []byte
	}{
		"other secret":   {webhook.Sign([][]byte{other}, "evt_1", now, body), body},
		"body changed":   {good(), []byte(`{"id":"evt_1","type":"payment.succeeded","data":{"x":1}}`)},
		"too old":        {webhook.Sign([][]byte{key}, "evt_1", now.Add(-6*time.Minute), body), body},
		"too far ahead":  {webhook.Sign([][]byte{key}, "evt_1", now.Add(6*time.Minute), body), body},
		"no id":          {del(good(), "webhook-id"), body},
		"no timestamp":   {del(good(), "webhook-timestamp"), body},
		"no signature":   {del(good(), "webhook-signature"), body},
		"id changed":     {set(good(), "webhook-id", "evt_2"), body},
		"other version":  {set(good(), "webhook-signature", strings.Replace(good().Get("webhook-signature"), "v1,", "v1a,", 1)), body},
		"signed +stamp":  {signedWith(key, "evt_1", "+"+strconv.FormatInt(now.Unix(), 10), body), body},
		"not a number":   {signedWith(key, "evt_1", "soon", body), body},
		"bare signature": {set(good(), "webhook-signature", strings.TrimPrefix(good().Get("webhook-signature"), "v1,")), body},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if err := verifyWebhook(key, c.h, c.body, now); err == nil {
				t.Error("accepted")
			}
			// Hutong's own verifier agrees.
			if err := webhook.Verify([][]byte{key}, c.h, c.body, now); err == nil {
				t.Error("webhook.Verify accepted it: the case is wrong")
			}
		})
	}
}

func del(h http.Header, k string) http.Header    { h.Del(k); return h }
func set(h http.Header, k, v string) http.Header { h.Set(k, v); return h }

// signedWith signs with an arbitrary timestamp text, which webhook.Sign cannot produce.
func signedWith(key []byte, id, ts string, body []byte) http.Header {
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", ts)
	h.Set("webhook-signature", "v1,"+macFor(key, id+"."+ts+".", body))
	return h
}

func TestParseWebhookSecretRefuses(t *testing.T) {
	for _, s := range []string{"", "whsec_", "sk_test_abc", "whsec_!!!", "WHSEC_AAAA"} {
		if _, err := parseWebhookSecret(s); err == nil {
			t.Errorf("parseWebhookSecret(%q) accepted", s)
		}
	}
}

// testShop is a Shop that knows order o (paying with payment pay_1) and holds key.
func testShop(t testing.TB, key []byte, now time.Time) (*Shop, *Order) {
	s := New(Config{APIBaseURL: "http://127.0.0.1:1", APIKey: "sk_test_x", PublicURL: "http://shop.example", Now: func() time.Time { return now }})
	s.key = key
	o := &Order{ID: newOrderID(), Product: Catalog[0], PaymentID: "pay_1", PaymentStatus: "pending", CreatedAt: now}
	s.addOrder(o)
	return s, o
}

func postWebhook(s *Shop, h http.Header, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", "/shop/webhooks", bytes.NewReader(body))
	for k, v := range h {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

func eventBody(t testing.TB, typ, paymentID, reference, status string) []byte {
	b, err := json.Marshal(map[string]any{"id": "evt_x", "type": typ, "timestamp": time.Now(),
		"data": map[string]any{"id": paymentID, "object": "payment", "reference": reference, "status": status, "amount": 6800}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWebhookMarksOrderPaidOnce(t *testing.T) {
	_, key := newKey(t)
	now := time.Unix(1_780_000_000, 0)
	s, o := testShop(t, key, now)
	body := eventBody(t, "payment.succeeded", "pay_1", o.ID, "succeeded")
	for i := range 2 { // a redelivery changes nothing and is acknowledged again
		w := postWebhook(s, webhook.Sign([][]byte{key}, "evt_x", now, body), body)
		if w.Code != http.StatusNoContent {
			t.Fatalf("delivery %d: status %d %s", i+1, w.Code, w.Body)
		}
		got, _ := s.Order(o.ID)
		if got.State() != "paid" || got.Source != sourceWebhook {
			t.Fatalf("delivery %d: order %s via %q, want paid via webhook", i+1, got.State(), got.Source)
		}
	}
	// A later, contradicting message never moves a final order.
	body = eventBody(t, "payment.canceled", "pay_1", o.ID, "canceled")
	if w := postWebhook(s, webhook.Sign([][]byte{key}, "evt_y", now, body), body); w.Code != http.StatusNoContent {
		t.Fatalf("status %d", w.Code)
	}
	if got, _ := s.Order(o.ID); got.State() != "paid" {
		t.Errorf("order is %s after a late cancel, want paid", got.State())
	}
}

func TestWebhookIgnoresOtherPayments(t *testing.T) {
	_, key := newKey(t)
	now := time.Unix(1_780_000_000, 0)
	s, o := testShop(t, key, now)
	for name, body := range map[string][]byte{
		"other payment id": eventBody(t, "payment.succeeded", "pay_2", o.ID, "succeeded"),
		"unknown order":    eventBody(t, "payment.succeeded", "pay_1", "T"+strings.Repeat("A", 20), "succeeded"),
		"refund event":     []byte(`{"id":"evt_r","type":"refund.succeeded","data":{"id":"re_1","payment_id":"pay_1","status":"succeeded"}}`),
	} {
		w := postWebhook(s, webhook.Sign([][]byte{key}, "evt_x", now, body), body)
		if w.Code/100 != 2 {
			t.Errorf("%s: status %d, want 2xx (acknowledged, nothing to do)", name, w.Code)
		}
		if got, _ := s.Order(o.ID); got.State() != "awaiting_payment" {
			t.Errorf("%s: order became %s", name, got.State())
		}
	}
}

func TestWebhookRefusedWithoutValidSignature(t *testing.T) {
	_, key := newKey(t)
	_, other := newKey(t)
	now := time.Unix(1_780_000_000, 0)
	s, o := testShop(t, key, now)
	body := eventBody(t, "payment.succeeded", "pay_1", o.ID, "succeeded")
	if w := postWebhook(s, webhook.Sign([][]byte{other}, "evt_x", now, body), body); w.Code != http.StatusBadRequest {
		t.Errorf("forged: status %d, want 400", w.Code)
	}
	if w := postWebhook(s, http.Header{}, body); w.Code != http.StatusBadRequest {
		t.Errorf("unsigned: status %d, want 400", w.Code)
	}
	bad := []byte(`{"type":"payment.succeeded","data":[]}`)
	if w := postWebhook(s, webhook.Sign([][]byte{key}, "evt_x", now, bad), bad); w.Code != http.StatusBadRequest {
		t.Errorf("signed but malformed: status %d, want 400", w.Code)
	}
	if got, _ := s.Order(o.ID); got.State() != "awaiting_payment" {
		t.Errorf("order became %s", got.State())
	}
	// Before the shop has a secret it cannot check anything: Hutong must retry later.
	s.key = nil
	if w := postWebhook(s, webhook.Sign([][]byte{key}, "evt_x", now, body), body); w.Code != http.StatusServiceUnavailable {
		t.Errorf("no secret yet: status %d, want 503", w.Code)
	}
}

// FuzzServeWebhook posts arbitrary webhooks: the handler never panics, refuses whatever is not
// signed with the shop's key, and changes an order only for a verified event about its payment.
func FuzzServeWebhook(f *testing.F) {
	f.Add([]byte(`{"id":"evt_1","type":"payment.succeeded","data":{"id":"pay_1","reference":"REF","status":"succeeded"}}`), "evt_1", "", true)
	f.Add([]byte(`{"type":"payment.failed","data":{"id":"pay_1","reference":"REF","status":"failed"}}`), "msg", "v1,AAAA", false)
	f.Add([]byte(`{"type":"payment.","data":null}`), "a.b", "", true)
	f.Add([]byte(`not json`), "", "v2,x v1,y", true)
	f.Fuzz(func(t *testing.T, body []byte, id, sig string, sign bool) {
		key := bytes.Repeat([]byte{7}, 32)
		now := time.Unix(1_780_000_000, 0)
		s, o := testShop(t, key, now)
		body = bytes.ReplaceAll(body, []byte("REF"), []byte(o.ID))
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
		h.Set("webhook-signature", sig)
		signed := sign && id != ""
		if signed {
			h.Set("webhook-signature", "v1,"+macFor(key, id+"."+h.Get("webhook-timestamp")+".", body))
		}
		w := postWebhook(s, h, body)
		if !signed && w.Code/100 == 2 {
			t.Fatalf("unsigned webhook accepted: %d", w.Code)
		}
		got, _ := s.Order(o.ID)
		if got.State() != "awaiting_payment" && (!signed || w.Code/100 != 2) {
			t.Fatalf("order changed to %s by a refused webhook (status %d)", got.State(), w.Code)
		}
	})
}

func macFor(key []byte, prefix string, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(prefix))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
