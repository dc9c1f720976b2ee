package httpapi

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/hutong-pay/hutong/internal/payment"
)

func TestDecodeJSON(t *testing.T) {
	var in createPaymentBody
	err := decodeJSON([]byte(` {"amount":100,"description":"tea","payer":{"openid":"o"},"metadata":{"AMOUNT":"x","a.b":"y"}} `+"\n"), &in)
	if err != nil {
		t.Fatalf("valid body: %v", err)
	}
	if in.Amount != 100 || in.Payer == nil || in.Payer.OpenID != "o" || in.Metadata["AMOUNT"] != "x" {
		t.Fatalf("decoded %+v", in)
	}
	for body, param := range map[string]string{
		`{"payer":{"OpenID":"o"}}`:              "payer.OpenID",
		`{"payer":{"openid":"o","openid":"p"}}`: "payer.openid",
		`{"metadata":{"k":"a","k":"b"}}`:        "metadata",
		`{"metadata":{"k":["a"]}}`:              "metadata",
		`{"payer":"o"}`:                         "payer",
		`{"description":7}`:                     "description",
		`{"amount":true}`:                       "amount",
		`{"amount":null,"x":1}`:                 "x",
		`{"amount":100}{"amount":1}`:            "body",
		`{"amount":100}]`:                       "body",
		"\xff":                                  "body",
	} {
		var in createPaymentBody
		err := decodeJSON([]byte(body), &in)
		var pe *payment.Error
		if !errors.As(err, &pe) || pe.Kind != payment.Invalid || pe.Param != param {
			t.Errorf("%s: %v, want a 400 naming %s", body, err, param)
		}
	}
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"amount":100,"currency":"CNY","description":"tea","provider":"wechatpay","channel":"qr"}`,
		`{"amount":1.5}`, `{"amount":"100"}`, `{"payer":{"openid":"o"}}`, `{"metadata":{"k":"v"}}`,
		`{"expires_at":"2026-01-02T03:04:05Z"}`, `[]`, `null`, `{"a":{"b":[1,{"c":2}]}}`, `{} x`, `{"amount":1e400}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var in createPaymentBody
		err := decodeJSON(body, &in)
		if err != nil {
			var pe *payment.Error
			if !errors.As(err, &pe) || pe.Kind != payment.Invalid || pe.Param == "" || pe.Message == "" {
				t.Fatalf("%q: error %v is not a 400 naming a parameter", body, err)
			}
			return
		}
		// Accepted input is one JSON object, and nothing in it was unknown: re-encoding what was
		// decoded and decoding that again gives the same value.
		if !json.Valid(body) || !strings.HasPrefix(strings.TrimSpace(string(body)), "{") {
			t.Fatalf("accepted %q", body)
		}
		again, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		var back createPaymentBody
		if err := decodeJSON(again, &back); err != nil {
			t.Fatalf("re-encoded %s refused: %v", again, err)
		}
		if again2, _ := json.Marshal(back); string(again2) != string(again) {
			t.Fatalf("round trip changed %s into %s", again, again2)
		}
	})
}

func FuzzRequestID(f *testing.F) {
	for _, s := range []string{"", "req_1", "client-req-123", "a b", strings.Repeat("x", 200), "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		id := requestID(in)
		if id == "" || len(id) > 128 {
			t.Fatalf("id %q", id)
		}
		if id != in && !strings.HasPrefix(id, "req_") {
			t.Fatalf("id %q for %q", id, in)
		}
		for _, c := range []byte(id) {
			if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
				t.Fatalf("id %q carries %q", id, c)
			}
		}
	})
}
