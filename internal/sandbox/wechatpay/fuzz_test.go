package wechatpay

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func FuzzParseAuthorization(f *testing.F) {
	f.Add(`WECHATPAY2-SHA256-RSA2048 mchid="1900000001",nonce_str="abc",timestamp="1554208460",serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",signature="c2ln"`)
	f.Add(`WECHATPAY2-SHA256-RSA2048 mchid="1", serial_no="2", timestamp="3", nonce_str="4", signature="5"`)
	f.Add(`WECHATPAY2-SHA256-RSA2048  signature = "x" ,mchid="1",serial_no="2",timestamp="3",nonce_str="4",`)
	f.Add(`WECHATPAY2-SHA256-RSA2048 mchid="1",mchid="1"`)
	f.Add(`WECHATPAY2-SHA256-RSA2048 mchid="unterminated`)
	f.Add(`Bearer x`)
	f.Add(``)
	f.Fuzz(func(t *testing.T, h string) {
		a, err := parseAuthorization(h)
		if err != nil {
			return
		}
		for _, v := range []string{a.MchID, a.NonceStr, a.Timestamp, a.SerialNo, a.Signature} {
			if v == "" || strings.Contains(v, `"`) {
				t.Fatalf("accepted %q with value %q", h, v)
			}
		}
		// What was accepted re-serialises, in the SDK's order, to the same fields.
		again := authScheme + ` mchid="` + a.MchID + `",nonce_str="` + a.NonceStr + `",timestamp="` + a.Timestamp +
			`",serial_no="` + a.SerialNo + `",signature="` + a.Signature + `"`
		b, err := parseAuthorization(again)
		if err != nil || b != a {
			t.Fatalf("round trip of %q: %+v %v, want %+v", h, b, err, a)
		}
	})
}

// FuzzPrepayDecoding feeds arbitrary bodies through decoding and validation: every failure must be a
// WeChat-shaped 400, never a panic, and an accepted request must satisfy the documented rules.
func FuzzPrepayDecoding(f *testing.F) {
	sb := &Sandbox{keys: &keyring{doc: merchantDoc{MchID: "1900000001", AppID: "wx1234567890abcdef"}}}
	valid := `{"appid":"wx1234567890abcdef","mchid":"1900000001","description":"d","out_trade_no":"order_001","notify_url":"https://example.com/n","amount":{"total":1}}`
	f.Add(valid, "NATIVE")
	f.Add(strings.Replace(valid, `}}`, `},"payer":{"openid":"o1"}}`, 1), "JSAPI")
	f.Add(strings.Replace(valid, `}}`, `},"scene_info":{"payer_client_ip":"1.1.1.1","h5_info":{"type":"Wap"}}}`, 1), "MWEB")
	f.Add(`{"amount":{"total":1e3}}`, "APP")
	f.Add(`{"amount":{"total":"1"}}`, "NATIVE")
	f.Add(`{"time_expire":"2099-01-01T00:00:00+08:00"}`, "NATIVE")
	f.Add(`[]`, "NATIVE")
	f.Add(`{"detail":{"x":[1,2,{"y":null}]}}`, "NATIVE")
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, cst)
	f.Fuzz(func(t *testing.T, body, tradeType string) {
		var req prepayRequest
		if e := decodeJSON([]byte(body), &req); e != nil {
			if e.Status != http.StatusBadRequest || e.Code != "PARAM_ERROR" {
				t.Fatalf("decode error %+v", e)
			}
			return
		}
		v, e := sb.validatePrepay(tradeType, "1900000001", req, now)
		if e != nil {
			if e.Status != http.StatusBadRequest || e.Code == "" || e.Message == "" {
				t.Fatalf("validation error %+v", e)
			}
			return
		}
		if *req.Amount.Total <= 0 || !validOutNo(*req.OutTradeNo, "_-*", 6, 32) || !v.expireAt.After(now) || v.hash == "" {
			t.Fatalf("accepted an invalid request: %s", body)
		}
		if tradeType == tradeJSAPI && (req.Payer == nil || req.Payer.OpenID == nil || *req.Payer.OpenID == "") {
			t.Fatalf("accepted JSAPI without openid: %s", body)
		}
	})
}

func FuzzRefundDecoding(f *testing.F) {
	f.Add(`{"out_trade_no":"order_001","out_refund_no":"R1","amount":{"refund":1,"total":1,"currency":"CNY"}}`)
	f.Add(`{"transaction_id":"4200","out_refund_no":"R|*@","amount":{"refund":-1,"total":1,"currency":"CNY"}}`)
	f.Add(`{"amount":{"from":[{"account":"AVAILABLE","amount":1}]}}`)
	f.Fuzz(func(t *testing.T, body string) {
		var req refundRequest
		if e := decodeJSON([]byte(body), &req); e != nil {
			return
		}
		var ae *apiError
		if e := validateRefund(req); e != nil {
			if !errors.As(error(e), &ae) || e.Status != http.StatusBadRequest {
				t.Fatalf("validation error %+v", e)
			}
			return
		}
		if *req.Amount.Refund <= 0 || *req.Amount.Total <= 0 || *req.Amount.Currency != "CNY" {
			t.Fatalf("accepted %s", body)
		}
	})
}
