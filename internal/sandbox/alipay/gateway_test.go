package alipay

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	sdk "github.com/smartwalle/alipay/v3"

	"github.com/hutong-pay/hutong/internal/sandbox/faults"
)

func TestWrongSignatureIsAnsweredInsideTheSignedNode(t *testing.T) {
	e := newEnv(t)
	creds := e.sb.Credentials()
	var other string
	for _, k := range testKeys {
		if k.N.Cmp(e.appKey().N) != 0 {
			other, _ = privateKeyPEM(k)
			break
		}
	}
	forger := e.newClient(Credentials{AppID: creds.AppID, AppPrivateKey: other, AlipayPublicKey: creds.AlipayPublicKey})
	rsp, err := forger.TradeQuery(context.Background(), sdk.TradeQuery{OutTradeNo: "o1"})
	if err != nil {
		t.Fatalf("SDK must accept the signed node, got %v", err)
	}
	if rsp.Code != "40002" || rsp.SubCode != "isv.invalid-signature" || !strings.Contains(rsp.SubMsg, "app_id="+creds.AppID) {
		t.Fatalf("got %+v, want 40002 isv.invalid-signature with the signing string", rsp)
	}

	stranger := e.newClient(Credentials{AppID: "2021000000000001", AppPrivateKey: creds.AppPrivateKey, AlipayPublicKey: creds.AlipayPublicKey})
	rsp, err = stranger.TradeQuery(context.Background(), sdk.TradeQuery{OutTradeNo: "o1"})
	if err != nil || rsp.Code != "40002" || rsp.SubCode != "isv.invalid-app-id" {
		t.Fatalf("unknown app_id: got %v %+v", err, rsp)
	}
}

func TestCommonParameterErrors(t *testing.T) {
	e := newEnv(t)
	const method = "alipay.trade.query"
	biz := `{"out_trade_no":"o1"}`
	cases := []struct {
		name    string
		mutate  func(v url.Values)
		code    string
		subCode string
	}{
		{"no app_id", func(v url.Values) { v.Del("app_id") }, "40001", "isv.missing-app-id"},
		{"no sign", func(v url.Values) { v.Del("sign") }, "40001", "isv.missing-signature"},
		{"no sign_type", func(v url.Values) { v.Del("sign_type") }, "40001", "isv.missing-signature-type"},
		{"no timestamp", func(v url.Values) { v.Del("timestamp") }, "40001", "isv.missing-timestamp"},
		{"no version", func(v url.Values) { v.Del("version") }, "40001", "isv.missing-version"},
		{"RSA sign_type", func(v url.Values) { v.Set("sign_type", "RSA") }, "40002", "isv.invalid-signature-type"},
		{"bad timestamp", func(v url.Values) { v.Set("timestamp", "2020/01/01 10:00") }, "40002", "isv.invalid-timestamp"},
		{"gbk charset", func(v url.Values) { v.Set("charset", "GBK") }, "40002", "isv.invalid-charset"},
		{"tampered biz", func(v url.Values) { v.Set("biz_content", `{"out_trade_no":"o2"}`) }, "40002", "isv.invalid-signature"},
		{"garbage sign", func(v url.Values) { v.Set("sign", "!!!") }, "40002", "isv.invalid-signature"},
	}
	for _, c := range cases {
		v := e.signedParams(method, biz, nil)
		c.mutate(v)
		node := e.responseNode(e.rawCall(nil, v), "alipay_trade_query_response")
		if node["code"] != c.code || node["sub_code"] != c.subCode {
			t.Errorf("%s: got %v, want %s %s", c.name, node, c.code, c.subCode)
		}
	}

	// Signed, but biz_content is not an object, or asks for encryption the app has not set up.
	for _, c := range []struct {
		biz, extraKey, extraVal, sub string
	}{
		{"[1]", "", "", "isv.invalid-parameter"},
		{"{bad", "", "", "isv.invalid-parameter"},
		{biz, "encrypt_type", "AES", "isv.missing-encrypt-key"},
	} {
		extra := url.Values{}
		if c.extraKey != "" {
			extra.Set(c.extraKey, c.extraVal)
		}
		node := e.responseNode(e.rawCall(nil, e.signedParams(method, c.biz, extra)), "alipay_trade_query_response")
		if node["code"] != "40002" || node["sub_code"] != c.sub {
			t.Errorf("biz %q: got %v, want 40002 %s", c.biz, node, c.sub)
		}
	}

	// Without a method, or with an unknown one, there is no method node: error_response.
	node := e.responseNode(e.rawCall(nil, url.Values{"app_id": {"x"}}), "error_response")
	if node["code"] != "40001" || node["sub_code"] != "isv.missing-method" {
		t.Errorf("no method: got %v", node)
	}
	err := e.client.Request(context.Background(), sdk.NewPayload("alipay.no.such.method"), &struct{}{})
	var ae *sdk.Error
	if !errors.As(err, &ae) || ae.SubCode != "isv.invalid-method" || ae.Code != "40002" {
		t.Errorf("unknown method: got %v, want error_response isv.invalid-method", err)
	}
}

func TestMalformedRequestsAreAnsweredNotCrashed(t *testing.T) {
	e := newEnv(t)
	post := func(rawQuery, contentType, body string) []byte {
		resp, err := http.Post(e.srv.URL+"/gateway.do?"+rawQuery, contentType, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d, want 200", resp.StatusCode)
		}
		b, _ := io.ReadAll(resp.Body)
		return b
	}
	node := e.responseNode(post("method=alipay.trade.query", "application/x-www-form-urlencoded", "a=%zz&b=1"), "alipay_trade_query_response")
	if node["code"] != "40002" || node["sub_code"] != "isv.invalid-parameter" {
		t.Errorf("bad form encoding: got %v", node)
	}
	node = e.responseNode(post("method=alipay.trade.query", "application/x-www-form-urlencoded", "app_id=%ff%fe"), "alipay_trade_query_response")
	if node["code"] != "40002" || node["sub_code"] != "isv.invalid-charset" {
		t.Errorf("invalid UTF-8: got %v", node)
	}
	node = e.responseNode(post("method=alipay.trade.query", "multipart/form-data; boundary=x", "--x\r\nbroken"), "alipay_trade_query_response")
	if node["code"] != "40002" {
		t.Errorf("broken multipart: got %v", node)
	}
	big := strings.Repeat("a", maxRequestBytes+10)
	node = e.responseNode(post("method=alipay.trade.query", "application/x-www-form-urlencoded", "biz_content="+big), "alipay_trade_query_response")
	if node["code"] != "40002" {
		t.Errorf("oversized body: got %v", node)
	}
}

// The official Node SDK puts the common parameters in the URL query of the POST, biz_content in the
// body, sends no format, and signs its own extra parameters.
func TestNodeStyleRequest(t *testing.T) {
	e := newEnv(t)
	all := e.signedParams("alipay.trade.precreate", `{"out_trade_no":"node-1","total_amount":"0.10","subject":"节点 & <x>"}`,
		url.Values{"alipay_sdk": {"alipay-sdk-nodejs-4.0.0"}, "notify_url": {"http://127.0.0.1:1/n"}})
	query, body := url.Values{}, url.Values{}
	for k, vs := range all {
		if k == "biz_content" || k == "alipay_sdk" {
			body[k] = vs
		} else {
			query[k] = vs
		}
	}
	raw := e.rawCall(query, body)
	node := e.responseNode(raw, "alipay_trade_precreate_response")
	if node["code"] != "10000" || node["out_trade_no"] != "node-1" {
		t.Fatalf("got %v", node)
	}
	s := string(raw)
	if !strings.HasPrefix(s, `{"alipay_trade_precreate_response":{`) || strings.Index(s, `,"sign":"`) < strings.Index(s, `"qr_code"`) {
		t.Errorf("sign must come after the method node: %s", s)
	}
	if strings.Contains(s, `\/`) || strings.Contains(s, "alipay_cert_sn") {
		t.Errorf("answer has \\/ or alipay_cert_sn: %s", s)
	}

	e.control("/sandbox/alipay/trades/node-1/scan", nil)
	qraw := e.rawCall(nil, e.signedParams("alipay.trade.query", `{"out_trade_no":"node-1"}`, nil))
	if !bytes.Contains(qraw, []byte(`"subject":"节点 & <x>"`)) || !bytes.Contains(qraw, []byte(`"total_amount":"0.10"`)) {
		t.Errorf("subject must be written raw and amounts as strings: %s", qraw)
	}

	// A GET with everything in the query works too.
	resp, err := http.Get(e.srv.URL + "/gateway.do?" + e.signedParams("alipay.trade.query", `{"out_trade_no":"node-1"}`, nil).Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if node := e.responseNode(b, "alipay_trade_query_response"); node["trade_status"] != "WAIT_BUYER_PAY" {
		t.Fatalf("GET query: got %v", node)
	}
}

func TestAPIFaults(t *testing.T) {
	e := newEnv(t)
	if err := e.faults.Set(faults.Settings{API: faults.APIFaults{ErrorRate: 1}}); err != nil {
		t.Fatal(err)
	}
	q := e.query("o1")
	if q.Code != "20000" || q.SubCode != "isp.unknow-error" {
		t.Fatalf("with error_rate 1: got %+v, want 20000 isp.unknow-error", q)
	}
	if err := e.faults.Set(faults.Settings{}); err != nil {
		t.Fatal(err)
	}
	if q := e.query("o1"); q.SubCode != "ACQ.TRADE_NOT_EXIST" {
		t.Fatalf("faults off: got %+v", q)
	}
}

// A parameter repeated in the query and the body (same value) was signed once by the client.
func TestParameterInQueryAndBody(t *testing.T) {
	e := newEnv(t)
	all := e.signedParams("alipay.trade.query", `{"out_trade_no":"dup"}`, nil)
	body := url.Values{"biz_content": all["biz_content"], "app_id": all["app_id"]}
	node := e.responseNode(e.rawCall(all, body), "alipay_trade_query_response")
	if node["sub_code"] != "ACQ.TRADE_NOT_EXIST" {
		t.Fatalf("got %v, want the request verified and answered ACQ.TRADE_NOT_EXIST", node)
	}
}
