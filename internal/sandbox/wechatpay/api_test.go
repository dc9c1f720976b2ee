package wechatpay

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/sandbox/faults"
)

// nativeBody is a valid Native prepay body, without the SDK's trailing newline.
func (e *testEnv) nativeBody(outTradeNo string) string {
	return `{"appid":"` + e.creds.AppID + `","mchid":"` + e.creds.MchID + `","description":"商品","out_trade_no":"` + outTradeNo +
		`","notify_url":"http://127.0.0.1:1/n","amount":{"total":1,"currency":"CNY"}}`
}

func TestOtherClientsAreAccepted(t *testing.T) {
	e := newEnv(t, "")
	// Node's field order, a charset in Content-Type, no trailing newline, no Wechatpay-Serial.
	a := e.raw(rawCall{method: "POST", uri: "/v3/pay/transactions/native", body: e.nativeBody("other_0001")})
	if a.status != http.StatusOK {
		t.Fatalf("prepay: %d %s", a.status, a.body)
	}
	if serial := verifyAnswer(t, a, e.wxPub); serial != e.creds.PublicKeyID {
		t.Errorf("no Wechatpay-Serial: signed by %q, want the public key", serial)
	}
	// Other orders and spacing of the pairs.
	for _, order := range [][]string{
		{"signature", "timestamp", "serial_no", "nonce_str", "mchid"},
		{"nonce_str", "mchid", "signature", "serial_no", "timestamp"},
	} {
		a := e.raw(rawCall{method: "GET", uri: "/v3/pay/transactions/out-trade-no/other_0001?mchid=" + e.creds.MchID,
			tamper: func(p *authParts) { p.order = order }})
		if a.status != http.StatusOK {
			t.Errorf("order %v: %d %s", order, a.status, a.body)
		}
	}
	// The query string is verified exactly as sent: '+' for a space, ',' and ':' unescaped, extra parameters.
	a = e.raw(rawCall{method: "GET", uri: "/v3/pay/transactions/out-trade-no/other_0001?mchid=" + e.creds.MchID + "&note=a+b,c:d"})
	if a.status != http.StatusOK {
		t.Errorf("raw query: %d %s", a.status, a.body)
	}
	// A lowercase serial is the same serial.
	a = e.raw(rawCall{method: "GET", uri: "/v3/pay/transactions/out-trade-no/other_0001?mchid=" + e.creds.MchID,
		tamper: func(p *authParts) { p.serial = strings.ToLower(p.serial) }})
	if a.status != http.StatusOK {
		t.Errorf("lowercase serial: %d %s", a.status, a.body)
	}
}

func TestRequestSignatureErrors(t *testing.T) {
	e := newEnv(t, "")
	uri := "/v3/pay/transactions/out-trade-no/sig_000001?mchid=" + e.creds.MchID
	ts := func(d time.Duration) string { return strconv.FormatInt(e.now().Add(d).Unix(), 10) }
	cases := []struct {
		name   string
		tamper func(*authParts)
		body   string
		uri    string
		msg    string
	}{
		{"missing header", func(p *authParts) { p.raw = " " }, "", "", "Authorization"},
		{"other scheme", func(p *authParts) { p.raw = "Bearer abc" }, "", "", "格式错误"},
		{"unquoted", func(p *authParts) { p.raw = authScheme + ` mchid=1` }, "", "", "格式错误"},
		{"missing signature", func(p *authParts) { p.order = []string{"mchid", "serial_no", "timestamp", "nonce_str"} }, "", "", "格式错误"},
		{"duplicate pair", func(p *authParts) {
			p.order = []string{"mchid", "mchid", "serial_no", "timestamp", "nonce_str", "signature"}
		}, "", "", "格式错误"},
		{"unknown mchid", func(p *authParts) { p.mchid = "1900000001" }, "", "", "mchid"},
		{"unknown serial", func(p *authParts) { p.serial = strings.Repeat("A", 40) }, "", "", "序列号"},
		{"stale past", func(p *authParts) { p.timestamp = ts(-300 * time.Second) }, "", "", "时间戳"},
		{"stale future", func(p *authParts) { p.timestamp = ts(301 * time.Second) }, "", "", "时间戳"},
		{"timestamp not a number", func(p *authParts) { p.timestamp = "yesterday" }, "", "", "timestamp"},
		{"signature not base64", func(p *authParts) { p.signature = "%%%" }, "", "", "Base64"},
		{"signature by another key", func(p *authParts) { p.signature = signWith(e.sb.keys.publicKey.key, "x") }, "", "", "验签失败"},
		{"signed over another URI", func(p *authParts) {
			p.signature = signWith(e.merchantKey, "GET\n/v3/pay/transactions/out-trade-no/other?mchid="+e.creds.MchID+"\n"+p.timestamp+"\n"+p.nonce+"\n\n")
		}, "", "", "验签失败"},
		{"signed over another body", func(p *authParts) {
			p.signature = signWith(e.merchantKey, "POST\n/v3/pay/transactions/native\n"+p.timestamp+"\n"+p.nonce+"\n{}\n")
		}, e.nativeBody("sig_000002"), "/v3/pay/transactions/native", "验签失败"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			method, u := "GET", uri
			if c.uri != "" {
				method, u = "POST", c.uri
			}
			a := e.raw(rawCall{method: method, uri: u, body: c.body, tamper: c.tamper})
			expectError(t, a, http.StatusUnauthorized, "SIGN_ERROR", c.msg)
		})
	}
	// A timestamp 299 s off is still inside the window.
	nativeOK := e.raw(rawCall{method: "POST", uri: "/v3/pay/transactions/native", body: e.nativeBody("sig_000003"),
		tamper: func(p *authParts) { p.timestamp = ts(-299 * time.Second) }})
	if nativeOK.status != http.StatusOK {
		t.Errorf("299 s skew: %d %s", nativeOK.status, nativeOK.body)
	}
}

func TestPrepayValidation(t *testing.T) {
	e := newEnv(t, "")
	valid := func(extra string) string {
		return `{"appid":"` + e.creds.AppID + `","mchid":"` + e.creds.MchID + `","description":"商品","out_trade_no":"valid_0001",` +
			`"notify_url":"http://127.0.0.1:1/n"` + extra + `}`
	}
	amount := `,"amount":{"total":1}`
	cases := []struct {
		name, path, body string
		status           int
		code, msg        string
	}{
		{"empty body", "native", ``, 400, "PARAM_ERROR", "body"},
		{"malformed JSON", "native", `{"appid":`, 400, "PARAM_ERROR", "JSON"},
		{"not an object", "native", `[1,2]`, 400, "PARAM_ERROR", "JSON"},
		{"trailing garbage", "native", valid(amount) + `x`, 400, "PARAM_ERROR", "JSON"},
		{"total as string", "native", valid(`,"amount":{"total":"1"}`), 400, "PARAM_ERROR", "amount.total"},
		{"total fractional", "native", valid(`,"amount":{"total":1.5}`), 400, "PARAM_ERROR", "amount.total"},
		{"total zero", "native", valid(`,"amount":{"total":0}`), 400, "PARAM_ERROR", "amount.total"},
		{"total negative", "native", valid(`,"amount":{"total":-5}`), 400, "PARAM_ERROR", "amount.total"},
		{"total huge", "native", valid(`,"amount":{"total":99999999999999999999}`), 400, "PARAM_ERROR", "amount.total"},
		{"no amount", "native", valid(``), 400, "PARAM_ERROR", "amount.total"},
		{"currency", "native", valid(`,"amount":{"total":1,"currency":"USD"}`), 400, "PARAM_ERROR", "amount.currency"},
		{"appid wrong type", "native", strings.Replace(valid(amount), `"appid":"`+e.creds.AppID+`"`, `"appid":7`, 1), 400, "PARAM_ERROR", "appid"},
		{"no description", "native", strings.Replace(valid(amount), `"description":"商品",`, ``, 1), 400, "PARAM_ERROR", "description"},
		{"short out_trade_no", "native", strings.Replace(valid(amount), `valid_0001`, `abc`, 1), 400, "PARAM_ERROR", "out_trade_no"},
		{"bad out_trade_no chars", "native", strings.Replace(valid(amount), `valid_0001`, `valid#0001`, 1), 400, "PARAM_ERROR", "out_trade_no"},
		{"long out_trade_no", "native", strings.Replace(valid(amount), `valid_0001`, strings.Repeat("a", 33), 1), 400, "PARAM_ERROR", "out_trade_no"},
		{"no notify_url", "native", strings.Replace(valid(amount), `,"notify_url":"http://127.0.0.1:1/n"`, ``, 1), 400, "PARAM_ERROR", "notify_url"},
		{"relative notify_url", "native", strings.Replace(valid(amount), `http://127.0.0.1:1/n`, `/n`, 1), 400, "PARAM_ERROR", "notify_url"},
		{"notify_url with query", "native", strings.Replace(valid(amount), `http://127.0.0.1:1/n`, `http://127.0.0.1:1/n?a=1`, 1), 400, "PARAM_ERROR", "notify_url"},
		{"bad time_expire", "native", valid(amount + `,"time_expire":"tomorrow"`), 400, "PARAM_ERROR", "time_expire"},
		{"past time_expire", "native", valid(amount + `,"time_expire":"2020-01-01T00:00:00+08:00"`), 400, "PARAM_ERROR", "time_expire"},
		{"jsapi without payer", "jsapi", valid(amount), 400, "PARAM_ERROR", "payer"},
		{"jsapi empty openid", "jsapi", valid(amount + `,"payer":{"openid":""}`), 400, "PARAM_ERROR", "payer.openid"},
		{"h5 without scene", "h5", valid(amount), 400, "PARAM_ERROR", "scene_info"},
		{"h5 without h5_info", "h5", valid(amount + `,"scene_info":{"payer_client_ip":"1.2.3.4"}`), 400, "PARAM_ERROR", "scene_info.h5_info"},
		{"h5 without ip", "h5", valid(amount + `,"scene_info":{"h5_info":{"type":"Wap"}}`), 400, "PARAM_ERROR", "payer_client_ip"},
		{"appid of another merchant", "native", strings.Replace(valid(amount), e.creds.AppID, "wx0000000000000000", 1), 400, "APPID_MCHID_NOT_MATCH", "appid"},
		{"mchid of another merchant", "native", strings.Replace(valid(amount), `"mchid":"`+e.creds.MchID, `"mchid":"1900000001`, 1), 400, "INVALID_REQUEST", "mchid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := e.raw(rawCall{method: "POST", uri: "/v3/pay/transactions/" + c.path, body: c.body})
			expectError(t, a, c.status, c.code, c.msg)
		})
	}
	// The same body is accepted once fixed, proving the cases above failed for their own reason.
	if a := e.raw(rawCall{method: "POST", uri: "/v3/pay/transactions/native", body: valid(amount)}); a.status != http.StatusOK {
		t.Fatalf("valid body: %d %s", a.status, a.body)
	}
}

func TestBadInputNeverCrashes(t *testing.T) {
	e := newEnv(t, "")
	huge := `{"description":"` + strings.Repeat("x", maxBody) + `"}`
	a := e.raw(rawCall{method: "POST", uri: "/v3/pay/transactions/native", body: huge})
	expectError(t, a, http.StatusBadRequest, "PARAM_ERROR", "超过")

	a = e.raw(rawCall{method: "POST", uri: "/v3/pay/transactions/out-trade-no/xyz_000001/close", body: `{"mchid":1}`})
	expectError(t, a, http.StatusBadRequest, "PARAM_ERROR", "mchid")
	a = e.raw(rawCall{method: "POST", uri: "/v3/pay/transactions/out-trade-no/xyz_000001/close", body: `{"mchid":"1900000001"}`})
	expectError(t, a, http.StatusBadRequest, "INVALID_REQUEST", "mchid")
	a = e.raw(rawCall{method: "POST", uri: "/v3/refund/domestic/refunds", body: `{"out_refund_no":"R1","amount":{"refund":1}}`})
	expectError(t, a, http.StatusBadRequest, "PARAM_ERROR", "out_trade_no")
	a = e.raw(rawCall{method: "POST", uri: "/v3/refund/domestic/refunds", body: `{"out_trade_no":"a","out_refund_no":"R1","amount":{"refund":"x"}}`})
	expectError(t, a, http.StatusBadRequest, "PARAM_ERROR", "amount.refund")
	a = e.raw(rawCall{method: "POST", uri: "/v3/refund/domestic/refunds", body: `{"out_trade_no":"a","out_refund_no":"R1","amount":{"refund":1,"total":1}}`})
	expectError(t, a, http.StatusBadRequest, "PARAM_ERROR", "amount.currency")
	a = e.raw(rawCall{method: "POST", uri: "/v3/refund/domestic/refunds", body: `{"out_trade_no":"a","out_refund_no":"R 1","amount":{"refund":1,"total":1,"currency":"CNY"}}`})
	expectError(t, a, http.StatusBadRequest, "PARAM_ERROR", "out_refund_no")
	a = e.raw(rawCall{method: "GET", uri: "/v3/pay/transactions/out-trade-no/xyz_000001"})
	expectError(t, a, http.StatusBadRequest, "PARAM_ERROR", "mchid")
	a = e.raw(rawCall{method: "GET", uri: "/v3/no/such/api"})
	expectError(t, a, http.StatusNotFound, "NOT_FOUND", "")

	for _, c := range []struct{ method, path, body string }{
		{"POST", "/sandbox/wechatpay/transactions/x/pay", `{"openid":`},
		{"POST", "/sandbox/wechatpay/transactions/x/pay", `{"openid":5}`},
		{"POST", "/sandbox/wechatpay/transactions/x/decline", `nope`},
		{"POST", "/sandbox/wechatpay/login-codes", `{"openid":["a"]}`},
		{"PUT", "/sandbox/wechatpay/merchant", `{"notification_signing":"rot13"}`},
		{"PUT", "/sandbox/wechatpay/merchant", `{"notification_signing":`},
	} {
		if a := e.sandboxPost(c.method, c.path, c.body); a.status != http.StatusBadRequest {
			t.Errorf("%s %s %q: %d %s, want 400", c.method, c.path, c.body, a.status, a.body)
		}
	}
}

func TestAPIFaults(t *testing.T) {
	e := newEnv(t, "")
	if err := e.faults.Set(faults.Settings{API: faults.APIFaults{ErrorRate: 1}}); err != nil {
		t.Fatal(err)
	}
	a := e.raw(rawCall{method: "POST", uri: "/v3/pay/transactions/native", body: e.nativeBody("fault_0001")})
	expectError(t, a, http.StatusInternalServerError, "SYSTEM_ERROR", "")
	if a := e.sandboxPost("GET", "/sns/jscode2session?appid="+e.creds.AppID+"&secret="+e.creds.AppSecret+"&js_code=x", ""); !strings.Contains(string(a.body), `"errcode":-1`) {
		t.Errorf("jscode2session under faults: %s", a.body)
	}
	if err := e.faults.Set(faults.Settings{API: faults.APIFaults{LatencyMS: 150}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	a = e.raw(rawCall{method: "POST", uri: "/v3/pay/transactions/native", body: e.nativeBody("fault_0001")})
	if a.status != http.StatusOK || time.Since(start) < 150*time.Millisecond {
		t.Errorf("latency fault: %d after %v", a.status, time.Since(start))
	}
}
