package wechatpay

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"
)

func TestJSCode2Session(t *testing.T) {
	e := newEnv(t, "")
	var issued struct{ Code, OpenID, UnionID string }
	a := e.sandboxPost("POST", "/sandbox/wechatpay/login-codes", "")
	if a.status != http.StatusOK {
		t.Fatalf("login code: %d %s", a.status, a.body)
	}
	if err := json.Unmarshal(a.body, &issued); err != nil || issued.Code == "" || issued.OpenID == "" || issued.UnionID == "" {
		t.Fatalf("login code = %s (%v)", a.body, err)
	}
	exchange := func(appid, secret, code string) map[string]any {
		t.Helper()
		q := url.Values{"appid": {appid}, "secret": {secret}, "js_code": {code}, "grant_type": {"authorization_code"}}
		a := e.sandboxPost("GET", "/sns/jscode2session?"+q.Encode(), "")
		if a.status != http.StatusOK {
			t.Fatalf("jscode2session status %d, want 200 always", a.status)
		}
		var m map[string]any
		if err := json.Unmarshal(a.body, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	errcode := func(m map[string]any) float64 {
		c, _ := m["errcode"].(float64)
		return c
	}
	if m := exchange("wx0000000000000000", e.creds.AppSecret, issued.Code); errcode(m) != 40013 {
		t.Errorf("wrong appid: %v", m)
	}
	if m := exchange(e.creds.AppID, "wrong", issued.Code); errcode(m) != 40125 {
		t.Errorf("wrong secret: %v", m)
	}
	if m := exchange(e.creds.AppID, e.creds.AppSecret, "not-a-code"); errcode(m) != 40029 {
		t.Errorf("invalid code: %v", m)
	}
	if m := exchange(e.creds.AppID, e.creds.AppSecret, ""); errcode(m) != 41008 {
		t.Errorf("missing code: %v", m)
	}
	m := exchange(e.creds.AppID, e.creds.AppSecret, issued.Code)
	if m["openid"] != issued.OpenID || m["unionid"] != issued.UnionID || m["session_key"] == "" || m["errcode"] != nil {
		t.Errorf("session = %v", m)
	}
	if m := exchange(e.creds.AppID, e.creds.AppSecret, issued.Code); errcode(m) != 40163 {
		t.Errorf("reused code: %v", m)
	}

	// A fixed openid keeps its unionid from one login to the next, and across restarts.
	var fixed, again struct{ Code, OpenID, UnionID string }
	_ = json.Unmarshal(e.sandboxPost("POST", "/sandbox/wechatpay/login-codes", `{"openid":"oFixedUser000000000000000001"}`).body, &fixed)
	e.restart()
	_ = json.Unmarshal(e.sandboxPost("POST", "/sandbox/wechatpay/login-codes", `{"openid":"oFixedUser000000000000000001"}`).body, &again)
	if fixed.OpenID != "oFixedUser000000000000000001" || again.UnionID != fixed.UnionID || again.Code == fixed.Code {
		t.Errorf("fixed identity: %+v then %+v", fixed, again)
	}
	if m := exchange(e.creds.AppID, e.creds.AppSecret, fixed.Code); m["openid"] != fixed.OpenID {
		t.Errorf("code issued before the restart: %v", m)
	}
	// Codes expire after five minutes.
	e.offset.Store(int64(5*time.Minute + time.Second))
	if m := exchange(e.creds.AppID, e.creds.AppSecret, again.Code); errcode(m) != 40029 {
		t.Errorf("expired code: %v", m)
	}
}
