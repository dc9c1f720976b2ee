package wechatpay

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/sandbox/faults"
)

// authorize runs GET /connect/oauth2/authorize and returns the redirect's query.
func (e *testEnv) authorize(t *testing.T, extra url.Values, redirectURI string) url.Values {
	t.Helper()
	q := url.Values{"appid": {e.creds.AppID}, "redirect_uri": {redirectURI}, "response_type": {"code"},
		"scope": {"snsapi_base"}, "state": {"pay_123"}}
	for k, v := range extra {
		q[k] = v
	}
	p := e.get("/connect/oauth2/authorize?" + q.Encode() + "#wechat_redirect")
	if p.status != http.StatusFound {
		t.Fatalf("authorize: %d %s", p.status, p.body)
	}
	u, err := url.Parse(p.location)
	if err != nil {
		t.Fatal(err)
	}
	target, _ := url.Parse(redirectURI)
	if u.Scheme != target.Scheme || u.Host != target.Host || u.Path != target.Path {
		t.Fatalf("redirected to %s, want %s", p.location, redirectURI)
	}
	return u.Query()
}

func (e *testEnv) accessToken(t *testing.T, appid, secret, code string) map[string]any {
	t.Helper()
	q := url.Values{"appid": {appid}, "secret": {secret}, "code": {code}, "grant_type": {"authorization_code"}}
	a := e.sandboxPost(http.MethodGet, "/sns/oauth2/access_token?"+q.Encode(), "")
	if a.status != http.StatusOK {
		t.Fatalf("access_token status %d, want 200 always", a.status)
	}
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestWebAuthorization(t *testing.T) {
	e := newEnv(t, "")
	back := "http://127.0.0.1:8080/checkout/pay_1/wechat-oauth?lang=zh"
	got := e.authorize(t, nil, back)
	code := got.Get("code")
	if len(code) < 16 || got.Get("state") != "pay_123" || got.Get("lang") != "zh" {
		t.Fatalf("redirect query = %v", got)
	}
	errcode := func(m map[string]any) float64 { c, _ := m["errcode"].(float64); return c }

	if m := e.accessToken(t, e.creds.AppID, "wrong", code); errcode(m) != 40125 {
		t.Errorf("bad secret: %v", m)
	}
	if m := e.accessToken(t, "wx0000000000000000", e.creds.AppSecret, code); errcode(m) != 40013 {
		t.Errorf("bad appid: %v", m)
	}
	if m := e.accessToken(t, e.creds.AppID, e.creds.AppSecret, "not-a-code"); errcode(m) != 40029 || !strings.HasPrefix(m["errmsg"].(string), "invalid code") {
		t.Errorf("invalid code: %v", m)
	}
	// A refused exchange does not use the code up.
	m := e.accessToken(t, e.creds.AppID, e.creds.AppSecret, code)
	if m["errcode"] != nil || m["openid"] != e.sb.defaultBuyer() || m["scope"] != "snsapi_base" || m["expires_in"] != float64(7200) ||
		m["access_token"] == "" || m["refresh_token"] == "" || m["access_token"] == m["refresh_token"] || m["unionid"] == "" {
		t.Errorf("token = %v", m)
	}
	if m := e.accessToken(t, e.creds.AppID, e.creds.AppSecret, code); errcode(m) != 40163 {
		t.Errorf("reused code: %v", m)
	}

	// A test may name the buyer; the unionid is the one the same openid has in a mini-program login.
	var login struct{ Code, OpenID, UnionID string }
	_ = json.Unmarshal(e.sandboxPost("POST", "/sandbox/wechatpay/login-codes", `{"openid":"oWebBuyer_7"}`).body, &login)
	got = e.authorize(t, url.Values{"sandbox_openid": {"oWebBuyer_7"}, "scope": {"snsapi_userinfo"}, "state": {""}}, "https://shop.example/cb")
	if _, ok := got["state"]; !ok || got.Get("state") != "" {
		t.Errorf("empty state must still be passed back: %v", got)
	}
	// Codes survive a restart, the default buyer too.
	buyer := e.sb.defaultBuyer()
	e.restart()
	m = e.accessToken(t, e.creds.AppID, e.creds.AppSecret, got.Get("code"))
	if m["openid"] != "oWebBuyer_7" || m["unionid"] != login.UnionID || m["scope"] != "snsapi_userinfo" {
		t.Errorf("named buyer token = %v (login unionid %s)", m, login.UnionID)
	}
	if e.sb.defaultBuyer() != buyer {
		t.Error("default buyer changed across a restart")
	}
	// Codes expire after five minutes.
	late := e.authorize(t, nil, back).Get("code")
	e.offset.Store(int64(oauthCodeTTL + time.Second))
	if m := e.accessToken(t, e.creds.AppID, e.creds.AppSecret, late); errcode(m) != 40029 {
		t.Errorf("expired code: %v", m)
	}
	if m := e.accessToken(t, e.creds.AppID, e.creds.AppSecret, ""); errcode(m) != 41008 {
		t.Errorf("missing code: %v", m)
	}
	// A login code is not a web authorization code.
	if m := e.accessToken(t, e.creds.AppID, e.creds.AppSecret, login.Code); errcode(m) != 40029 {
		t.Errorf("login code exchanged as a web code: %v", m)
	}
}

func TestWebAuthorizationErrors(t *testing.T) {
	e := newEnv(t, "")
	base := url.Values{"appid": {e.creds.AppID}, "redirect_uri": {"https://shop.example/cb"}, "response_type": {"code"},
		"scope": {"snsapi_base"}, "state": {"s"}}
	for _, tc := range []struct {
		change  url.Values
		errcode string
	}{
		{url.Values{"appid": {""}}, "10012"},
		{url.Values{"appid": {"wx0000000000000000"}}, "40013"},
		{url.Values{"redirect_uri": {""}}, "10011"},
		{url.Values{"redirect_uri": {"javascript:alert(1)"}}, "10003"},
		{url.Values{"redirect_uri": {"/relative"}}, "10003"},
		{url.Values{"response_type": {"token"}}, "10004"},
		{url.Values{"scope": {""}}, "10010"},
		{url.Values{"scope": {"snsapi_login"}}, "10005"},
		{url.Values{"state": {strings.Repeat("s", 129)}}, "10013"},
		{url.Values{"sandbox_openid": {`o"><script>`}}, "10008"},
	} {
		q := url.Values{}
		for k, v := range base {
			q[k] = v
		}
		for k, v := range tc.change {
			q[k] = v
		}
		p := e.get("/connect/oauth2/authorize?" + q.Encode())
		if code, _ := p.byID("errcode"); p.status != http.StatusBadRequest || p.location != "" || code != tc.errcode {
			t.Errorf("%v: %d %q → %q, want errcode %s", tc.change, p.status, code, p.location, tc.errcode)
		}
		if strings.Contains(p.body, "<script>") {
			t.Errorf("%v: input echoed as markup", tc.change)
		}
	}
	q := url.Values{"appid": {e.creds.AppID}, "secret": {e.creds.AppSecret}, "code": {"x"}, "grant_type": {"client_credential"}}
	a := e.sandboxPost(http.MethodGet, "/sns/oauth2/access_token?"+q.Encode(), "")
	if a.status != http.StatusOK || !strings.Contains(string(a.body), `"errcode":40002`) {
		t.Errorf("bad grant_type: %d %s", a.status, a.body)
	}
	// API faults reach the token endpoint as WeChat's system error.
	if err := e.faults.Set(faults.Settings{API: faults.APIFaults{ErrorRate: 1}}); err != nil {
		t.Fatal(err)
	}
	q.Set("grant_type", "authorization_code")
	a = e.sandboxPost(http.MethodGet, "/sns/oauth2/access_token?"+q.Encode(), "")
	if a.status != http.StatusOK || !strings.Contains(string(a.body), `"errcode":-1`) {
		t.Errorf("injected fault: %d %s", a.status, a.body)
	}
}
