package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/app"
	"github.com/hutong-pay/hutong/internal/app/apptest"
)

// demo is a running `hutong demo`, in-process on ephemeral loopback ports.
type demo struct {
	t    *testing.T
	info app.DemoInfo
}

func startDemo(t *testing.T) *demo {
	t.Helper()
	return &demo{t: t, info: apptest.StartDemo(t, nil)}
}

// call sends a request with the demo merchant's key and decodes the JSON answer into out.
func (d *demo) call(method, url string, body any, out any) int {
	d.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	if strings.HasPrefix(url, d.info.GatewayURL) {
		req.Header.Set("Authorization", "Bearer "+d.info.APIKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			d.t.Fatalf("%s %s: %d %s: %v", method, url, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

type apiPayment struct {
	ID             string `json:"id"`
	Status         string `json:"status"`
	Amount         int64  `json:"amount"`
	AmountRefunded int64  `json:"amount_refunded"`
	CancelReason   string `json:"cancel_reason"`
	ProviderRef    struct {
		OutTradeNo    string `json:"out_trade_no"`
		TransactionID string `json:"transaction_id"`
		TradeNo       string `json:"trade_no"`
	} `json:"provider_ref"`
	NextAction map[string]any `json:"next_action"`
}

func (d *demo) create(t *testing.T, body map[string]any) apiPayment {
	t.Helper()
	var p apiPayment
	if code := d.call("POST", d.info.GatewayURL+"/v1/payments", body, &p); code != 200 {
		t.Fatalf("create payment: status %d: %+v", code, p)
	}
	return p
}

// payAtWallet plays the buyer paying at the wallet's sandbox.
func (d *demo) payAtWallet(t *testing.T, provider, outTradeNo string, body any) {
	t.Helper()
	path := map[string]string{"wechatpay": "/sandbox/wechatpay/transactions/", "alipay": "/sandbox/alipay/trades/"}[provider]
	var out map[string]any
	if code := d.call("POST", d.info.SandboxURL+path+outTradeNo+"/pay", body, &out); code/100 != 2 {
		t.Fatalf("pay %s at %s: status %d %v", outTradeNo, provider, code, out)
	}
}

func (d *demo) waitStatus(t *testing.T, id, want string) apiPayment {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var p apiPayment
		d.call("GET", d.info.GatewayURL+"/v1/payments/"+id, nil, &p)
		if p.Status == want {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("payment %s is %s, want %s", id, p.Status, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDemoPaysEveryServerChannelOnBothWallets(t *testing.T) {
	d := startDemo(t)
	var login struct {
		OpenID string `json:"openid"`
		UserID string `json:"user_id"`
	}
	d.call("POST", d.info.SandboxURL+"/sandbox/wechatpay/login-codes", nil, &login)
	openid := login.OpenID
	d.call("POST", d.info.SandboxURL+"/sandbox/alipay/auth-codes", nil, &login)
	buyerID := login.UserID
	if openid == "" || buyerID == "" {
		t.Fatalf("sandbox identities: openid %q buyer %q", openid, buyerID)
	}
	cases := []struct {
		provider, channel, action string
		payer                     map[string]any
		payBody                   any
	}{
		{"wechatpay", "qr", "qr_code", nil, nil},
		{"wechatpay", "h5", "redirect", nil, nil},
		{"wechatpay", "app", "app", nil, nil},
		{"wechatpay", "miniprogram", "wechat_jsapi", map[string]any{"openid": openid}, map[string]any{"openid": openid}},
		{"alipay", "qr", "qr_code", nil, nil},
		{"alipay", "miniprogram", "alipay_trade", map[string]any{"buyer_id": buyerID}, map[string]any{"buyer_id": buyerID}},
	}
	for i, c := range cases {
		t.Run(c.provider+"/"+c.channel, func(t *testing.T) {
			body := map[string]any{"amount": 100 + i, "currency": "CNY", "description": "Longjing tea", "reference": fmt.Sprintf("order-%d", i),
				"provider": c.provider, "channel": c.channel}
			if c.payer != nil {
				body["payer"] = c.payer
			}
			p := d.create(t, body)
			if p.Status != "pending" || p.NextAction["type"] != c.action {
				t.Fatalf("created %s with next_action %v, want pending with %s", p.Status, p.NextAction, c.action)
			}
			d.payAtWallet(t, c.provider, p.ProviderRef.OutTradeNo, c.payBody)
			got := d.waitStatus(t, p.ID, "succeeded")
			if got.ProviderRef.TransactionID == "" && got.ProviderRef.TradeNo == "" {
				t.Fatalf("succeeded payment has no wallet transaction id: %+v", got.ProviderRef)
			}
		})
	}
}

func TestDemoRefundsAndCancels(t *testing.T) {
	d := startDemo(t)
	for _, provider := range []string{"wechatpay", "alipay"} {
		t.Run(provider, func(t *testing.T) {
			p := d.create(t, map[string]any{"amount": 1000, "description": "Pu'er", "reference": "r-" + provider, "provider": provider, "channel": "qr"})
			d.payAtWallet(t, provider, p.ProviderRef.OutTradeNo, nil)
			d.waitStatus(t, p.ID, "succeeded")

			type refund struct {
				ID     string `json:"id"`
				Status string `json:"status"`
				Amount int64  `json:"amount"`
			}
			var r1 refund
			if code := d.call("POST", d.info.GatewayURL+"/v1/refunds", map[string]any{"payment_id": p.ID, "amount": 300, "reason": "broken cup"}, &r1); code != 200 {
				t.Fatalf("partial refund: %d %+v", code, r1)
			}
			var r2 refund
			if code := d.call("POST", d.info.GatewayURL+"/v1/refunds", map[string]any{"payment_id": p.ID}, &r2); code != 200 || r2.Amount != 700 {
				t.Fatalf("refund of the rest: %d %+v, want amount 700", code, r2)
			}
			var over map[string]any
			if code := d.call("POST", d.info.GatewayURL+"/v1/refunds", map[string]any{"payment_id": p.ID, "amount": 1}, &over); code != 400 {
				t.Fatalf("over-refund: status %d, want 400: %v", code, over)
			}
			for _, r := range []refund{r1, r2} {
				deadline := time.Now().Add(20 * time.Second)
				for r.Status != "succeeded" {
					if time.Now().After(deadline) {
						t.Fatalf("refund %s stayed %s", r.ID, r.Status)
					}
					time.Sleep(50 * time.Millisecond)
					d.call("GET", d.info.GatewayURL+"/v1/refunds/"+r.ID, nil, &r)
				}
			}
			var final apiPayment
			d.call("GET", d.info.GatewayURL+"/v1/payments/"+p.ID, nil, &final)
			if final.AmountRefunded != 1000 || final.Status != "succeeded" {
				t.Fatalf("after full refund: %s amount_refunded %d, want succeeded and 1000", final.Status, final.AmountRefunded)
			}

			// A canceled payment is closed at the wallet: the buyer can no longer pay it.
			c := d.create(t, map[string]any{"amount": 50, "description": "Oolong", "reference": "c-" + provider, "provider": provider, "channel": "qr"})
			if provider == "alipay" { // an Alipay QR trade exists once scanned
				d.call("POST", d.info.SandboxURL+"/sandbox/alipay/trades/"+c.ProviderRef.OutTradeNo+"/scan", nil, nil)
			}
			var canceled apiPayment
			if code := d.call("POST", d.info.GatewayURL+"/v1/payments/"+c.ID+"/cancel", nil, &canceled); code != 200 || canceled.Status != "canceled" {
				t.Fatalf("cancel: %d %+v", code, canceled)
			}
			path := map[string]string{"wechatpay": "/sandbox/wechatpay/transactions/", "alipay": "/sandbox/alipay/trades/"}[provider]
			if code := d.call("POST", d.info.SandboxURL+path+c.ProviderRef.OutTradeNo+"/pay", nil, nil); code != 409 {
				t.Fatalf("paying a canceled payment at the wallet: status %d, want 409", code)
			}
		})
	}
}

// An Alipay QR trade exists only once a buyer scans it, and can be scanned until it expires:
// cancelling it before then would promise what the wallet cannot keep, so it is refused, and the
// payment follows the wallet's truth.
func TestDemoRefusesToCancelAnUnscannedAlipayQR(t *testing.T) {
	d := startDemo(t)
	p := d.create(t, map[string]any{"amount": 66, "description": "Dahongpao", "reference": "unscanned", "provider": "alipay", "channel": "qr"})
	var refused struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if code := d.call("POST", d.info.GatewayURL+"/v1/payments/"+p.ID+"/cancel", nil, &refused); code != 409 || refused.Error.Code != "payment_not_closable" {
		t.Fatalf("cancel of an unscanned QR: %d %+v, want 409 payment_not_closable", code, refused)
	}
	d.payAtWallet(t, "alipay", p.ProviderRef.OutTradeNo, nil)
	d.waitStatus(t, p.ID, "succeeded")
}
