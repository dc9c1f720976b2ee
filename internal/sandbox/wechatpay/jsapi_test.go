package wechatpay

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/app"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/jsapi"
)

const checkoutOrigin = "http://127.0.0.1:8080" // the gateway's checkout, another origin than the sandbox

// jsapiParams places a JSAPI order with the official SDK and returns the getBrandWCPayRequest
// parameters the SDK builds (paySign signed with the merchant key).
func jsapiParams(t testing.TB, e *testEnv, outTradeNo, openid, notifyURL string) map[string]any {
	t.Helper()
	js := jsapi.JsapiApiService{Client: e.pubKeyClient()}
	pr, _, err := js.PrepayWithRequestPayment(context.Background(), jsapi.PrepayRequest{
		Appid: core.String(e.creds.AppID), Mchid: core.String(e.creds.MchID), Description: core.String("公众号商品"),
		OutTradeNo: core.String(outTradeNo), NotifyUrl: core.String(notifyURL), Amount: &jsapi.Amount{Total: core.Int64(199)},
		Payer: &jsapi.Payer{Openid: core.String(openid)},
	})
	if err != nil {
		t.Fatalf("jsapi prepay: %v", err)
	}
	return map[string]any{"appId": *pr.Appid, "timeStamp": *pr.TimeStamp, "nonceStr": *pr.NonceStr,
		"package": *pr.Package, "signType": *pr.SignType, "paySign": *pr.PaySign}
}

// bridgeCall posts to a bridge endpoint as the checkout page's script would, from another origin.
func (e *testEnv) bridgeCall(path string, params any) rawAnswer {
	e.t.Helper()
	body, err := json.Marshal(params)
	if err != nil {
		e.t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(string(body)))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", checkoutOrigin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rawAnswer{status: resp.StatusCode, header: resp.Header, body: b}
}

func withParam(p map[string]any, k string, v any) map[string]any {
	q := map[string]any{}
	for kk, vv := range p {
		q[kk] = vv
	}
	if v == nil {
		delete(q, k)
	} else {
		q[k] = v
	}
	return q
}

func TestJSAPIBridgePay(t *testing.T) {
	e := newEnv(t, "")
	sink := e.newSink()
	params := jsapiParams(t, e, "bridge_001", "oBridgeBuyer_1", sink.srv.URL+"/n")

	// The sheet: the order, checked and unchanged.
	v := e.bridgeCall("/sandbox/wechatpay/jsapi/verify", params)
	if v.status != http.StatusOK || v.header.Get("Access-Control-Allow-Origin") != checkoutOrigin {
		t.Fatalf("verify: %d %s (ACAO %q)", v.status, v.body, v.header.Get("Access-Control-Allow-Origin"))
	}
	var sheet jsapiOrder
	if err := json.Unmarshal(v.body, &sheet); err != nil {
		t.Fatal(err)
	}
	if sheet.Amount != "1.99" || sheet.Total != 199 || sheet.Description != "公众号商品" || sheet.OutTradeNo != "bridge_001" {
		t.Errorf("sheet = %+v", sheet)
	}
	if st, _ := e.queryOrder("bridge_001"); st != "NOTPAY" {
		t.Errorf("verify changed the order: %s", st)
	}

	// Confirming pays the order as the payer it was placed for, and notifies the merchant.
	p := e.bridgeCall("/sandbox/wechatpay/jsapi/pay", params)
	if p.status != http.StatusOK || p.header.Get("Access-Control-Allow-Origin") != checkoutOrigin {
		t.Fatalf("pay: %d %s", p.status, p.body)
	}
	st, openid := e.queryOrder("bridge_001")
	if st != "SUCCESS" || openid != "oBridgeBuyer_1" {
		t.Errorf("after pay: %s by %s", st, openid)
	}
	n := sink.wait("TRANSACTION.SUCCESS", nil)
	if n.plaintext["trade_type"] != "JSAPI" || n.plaintext["payer"].(map[string]any)["openid"] != "oBridgeBuyer_1" {
		t.Errorf("notification %v", n.plaintext)
	}

	// Once paid, the same parameters neither verify nor pay.
	for _, path := range []string{"/sandbox/wechatpay/jsapi/verify", "/sandbox/wechatpay/jsapi/pay"} {
		if a := e.bridgeCall(path, params); a.status != http.StatusConflict {
			t.Errorf("%s after paying: %d %s", path, a.status, a.body)
		}
	}
}

func TestJSAPIBridgeRejects(t *testing.T) {
	e := newEnv(t, "")
	params := jsapiParams(t, e, "bridge_002", "oBridgeBuyer_2", "http://127.0.0.1:1/n")
	other := jsapiParams(t, e, "bridge_003", "oBridgeBuyer_3", "http://127.0.0.1:1/n")

	// A JSAPI request signed over an APP order's prepay_id: signed right, but not a JSAPI order.
	appsvc := app.AppApiService{Client: e.pubKeyClient()}
	appresp, _, err := appsvc.Prepay(context.Background(), app.PrepayRequest{
		Appid: core.String(e.creds.AppID), Mchid: core.String(e.creds.MchID), Description: core.String("App"),
		OutTradeNo: core.String("bridge_app1"), NotifyUrl: core.String("http://127.0.0.1:1/n"), Amount: &app.Amount{Total: core.Int64(1)},
	})
	if err != nil {
		t.Fatal(err)
	}
	signed := func(appID, pkg string) map[string]any {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		nonce := newNonce()
		return map[string]any{"appId": appID, "timeStamp": ts, "nonceStr": nonce, "package": pkg, "signType": "RSA",
			"paySign": signWith(e.merchantKey, appID+"\n"+ts+"\n"+nonce+"\n"+pkg+"\n")}
	}
	for _, tc := range []struct {
		name   string
		params any
		status int
		code   string
	}{
		{"paySign of another order", withParam(params, "paySign", other["paySign"]), http.StatusBadRequest, "SIGN_ERROR"},
		{"package swapped", withParam(params, "package", other["package"]), http.StatusBadRequest, "SIGN_ERROR"},
		{"timeStamp changed", withParam(params, "timeStamp", "1"), http.StatusBadRequest, "SIGN_ERROR"},
		{"paySign not base64", withParam(params, "paySign", "@@@"), http.StatusBadRequest, "SIGN_ERROR"},
		{"signed by someone else", withParam(params, "paySign", signWith(e.sb.keys.publicKey.key, "x")), http.StatusBadRequest, "SIGN_ERROR"},
		{"v2 signType", withParam(params, "signType", "MD5"), http.StatusBadRequest, "PARAM_ERROR"},
		{"no paySign", withParam(params, "paySign", nil), http.StatusBadRequest, "PARAM_ERROR"},
		{"package without prepay_id=", withParam(params, "package", "Sign=WXPay"), http.StatusBadRequest, "PARAM_ERROR"},
		{"not JSON", "x", http.StatusBadRequest, "PARAM_ERROR"},
		{"APP order", signed(e.creds.AppID, "prepay_id="+*appresp.PrepayId), http.StatusBadRequest, "INVALID_REQUEST"},
		{"another appid", signed("wx0000000000000001", params["package"].(string)), http.StatusBadRequest, "INVALID_REQUEST"},
		{"unknown prepay_id", signed(e.creds.AppID, "prepay_id=wx00000000000000000000000000000000"), http.StatusNotFound, "ORDER_NOT_EXIST"},
	} {
		for _, path := range []string{"/sandbox/wechatpay/jsapi/verify", "/sandbox/wechatpay/jsapi/pay"} {
			a := e.bridgeCall(path, tc.params)
			if a.status != tc.status || wxErr(t, a).Code != tc.code {
				t.Errorf("%s %s: %d %s, want %d %s", tc.name, path, a.status, a.body, tc.status, tc.code)
			}
			if a.header.Get("Access-Control-Allow-Origin") != checkoutOrigin {
				t.Errorf("%s %s: error answers must be readable cross-origin", tc.name, path)
			}
		}
	}
	for _, otn := range []string{"bridge_002", "bridge_003", "bridge_app1"} {
		if st, _ := e.queryOrder(otn); st != "NOTPAY" {
			t.Errorf("%s paid by a rejected request: %s", otn, st)
		}
	}

	// A mini program's wx.requestPayment carries no appId (the app's own is implied), and pages may
	// send timeStamp as a number.
	ts, _ := strconv.ParseInt(params["timeStamp"].(string), 10, 64)
	loose := withParam(withParam(params, "appId", nil), "timeStamp", ts)
	if a := e.bridgeCall("/sandbox/wechatpay/jsapi/pay", loose); a.status != http.StatusOK {
		t.Errorf("without appId, numeric timeStamp: %d %s", a.status, a.body)
	}
	// An expired order cannot be paid.
	e.offset.Store(int64(defaultExpiry + time.Minute))
	if a := e.bridgeCall("/sandbox/wechatpay/jsapi/pay", other); a.status != http.StatusConflict {
		t.Errorf("expired order: %d %s", a.status, a.body)
	}
}

func TestJSAPIBridgeCORSPreflight(t *testing.T) {
	e := newEnv(t, "")
	for _, path := range []string{"/sandbox/wechatpay/jsapi/verify", "/sandbox/wechatpay/jsapi/pay"} {
		req, _ := http.NewRequest(http.MethodOptions, e.srv.URL+path, nil)
		req.Header.Set("Origin", checkoutOrigin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		req.Header.Set("Access-Control-Request-Private-Network", "true")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header
		if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != checkoutOrigin ||
			!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") ||
			!strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "content-type") ||
			h.Get("Access-Control-Allow-Private-Network") != "true" || !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
			t.Errorf("preflight %s: %d %v", path, resp.StatusCode, h)
		}
	}
	// Other paths are not opened up.
	req, _ := http.NewRequest(http.MethodOptions, e.srv.URL+"/sandbox/wechatpay/jsapi/other", nil)
	req.Header.Set("Origin", checkoutOrigin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight of an unknown path: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestBridgeScript(t *testing.T) {
	e := newEnv(t, "")
	resp, err := http.Get(e.srv.URL + "/sandbox/wechatpay/bridge.js")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	js := string(b)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/javascript") {
		t.Fatalf("bridge.js: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		`var SANDBOX = "` + e.srv.URL + `";`, "window.WeixinJSBridge", "getBrandWCPayRequest", "get_brand_wcpay_request:",
		"wx.requestPayment", "'wx-bridge-confirm'", "'wx-bridge-pay'", "'wx-bridge-cancel'", "/sandbox/wechatpay/jsapi/verify",
		"/sandbox/wechatpay/jsapi/pay", "WeixinJSBridgeReady",
	} {
		if !strings.Contains(js, want) {
			t.Errorf("bridge.js lacks %q", want)
		}
	}
	if strings.Contains(js, bridgeOriginPlaceholder) {
		t.Error("bridge.js still has the origin placeholder")
	}
	// No markup or inline style attributes: the checkout's CSP has no 'unsafe-inline'.
	for _, bad := range []string{"innerHTML", "setAttribute('style'", "cssText", "eval("} {
		if strings.Contains(js, bad) {
			t.Errorf("bridge.js uses %s", bad)
		}
	}
}
