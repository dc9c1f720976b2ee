package identity

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/payment"
	"github.com/hutong-pay/hutong/internal/reqbody"
)

// Answers as WeChat sends them (the errmsg carries a request id).
var weChatAnswers = []string{
	`{"session_key":"tiihtNczf5v6AKRyjwEUhQ==","openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o","unionid":"oGZUI0egBJY1zhBYw2KhdUfwVJJE"}`,
	`{"session_key":"tiihtNczf5v6AKRyjwEUhQ==","openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}`,
	`{"errcode":0,"errmsg":"ok","openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o","session_key":"x"}`,
	`{"access_token":"ACCESS","expires_in":7200,"refresh_token":"REFRESH","openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o","scope":"snsapi_base"}`,
	`{"errcode":40029,"errmsg":"invalid code, rid: 6523a3b1-1a2b3c4d"}`,
	`{"errcode":40163,"errmsg":"code been used, rid: 6523a3b1-1a2b3c4d"}`,
	`{"errcode":-1,"errmsg":"system error"}`,
	`{"errcode":45011,"errmsg":"api minute-quota reach limit"}`,
	`{"errcode":40226,"errmsg":"invalid user"}`,
	`{"errcode":40125,"errmsg":"invalid appsecret"}`,
}

func TestParseWeChatAnswer(t *testing.T) {
	for _, tc := range []struct {
		body    string
		openid  string
		unionid string
		errcode int // 0: success
		bad     bool
	}{
		{body: weChatAnswers[0], openid: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", unionid: "oGZUI0egBJY1zhBYw2KhdUfwVJJE"},
		{body: weChatAnswers[1], openid: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
		{body: weChatAnswers[2], openid: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
		{body: weChatAnswers[3], openid: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
		{body: weChatAnswers[4], errcode: 40029},
		{body: weChatAnswers[5], errcode: 40163},
		{body: weChatAnswers[6], errcode: -1},
		{body: `{"errcode":"40029"}`, errcode: 40029}, // quoted: still an error answer, never a success
		{body: `{"errcode":"x","openid":"o1"}`, bad: true},
		{body: `{"errcode":40029.5}`, bad: true},
		{body: `{"errcode":1e3}`, bad: true},
		{body: `{}`, bad: true},
		{body: `{"openid":""}`, bad: true},
		{body: `{"openid":"o<script>"}`, bad: true},
		{body: `{"openid":"` + strings.Repeat("o", 129) + `"}`, bad: true},
		{body: `{"openid":"oK","unionid":"u u"}`, bad: true},
		{body: `{"openid":12}`, bad: true},
		{body: `[]`, bad: true},
		{body: `<html>502 Bad Gateway</html>`, bad: true},
		{body: ``, bad: true},
	} {
		got, err := parseWeChatAnswer([]byte(tc.body))
		var we *WeChatAPIError
		switch {
		case tc.errcode != 0:
			if !errors.As(err, &we) || we.Code != tc.errcode {
				t.Errorf("%s: got %+v %v, want errcode %d", tc.body, got, err, tc.errcode)
			}
		case tc.bad:
			if err == nil || errors.As(err, &we) {
				t.Errorf("%s: got %+v %v, want a malformed-answer error", tc.body, got, err)
			}
		default:
			if err != nil || got.OpenID != tc.openid || got.UnionID != tc.unionid {
				t.Errorf("%s: got %+v %v, want openid %q unionid %q", tc.body, got, err, tc.openid, tc.unionid)
			}
		}
	}
}

// What the merchant sees of each WeChat answer: the login code's fault is a 400 naming code,
// WeChat's trouble a 502; the wallet's own code is kept.
func TestWeChatErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		body     string
		kind     payment.Kind
		code     string
		provider string
	}{
		{weChatAnswers[4], payment.Invalid, "invalid_code", "40029"},
		{weChatAnswers[5], payment.Invalid, "code_used", "40163"},
		{weChatAnswers[6], payment.ProviderError, "provider_unavailable", "-1"},
		{weChatAnswers[7], payment.ProviderError, "provider_unavailable", "45011"},
		{weChatAnswers[8], payment.Invalid, "login_refused", "40226"},
		{weChatAnswers[9], payment.ProviderError, "provider_error", "40125"},
		{`{"openid":""}`, payment.ProviderError, "provider_unavailable", ""},
	} {
		_, perr := parseWeChatAnswer([]byte(tc.body))
		err := weChatError("jscode2session", perr)
		var pe *payment.Error
		if !errors.As(err, &pe) || pe.Kind != tc.kind || pe.Code != tc.code || pe.ProviderCode != tc.provider {
			t.Errorf("%s: got %#v, want %s %s (%s)", tc.body, err, tc.kind, tc.code, tc.provider)
			continue
		}
		if tc.kind == payment.Invalid && pe.Param != "code" {
			t.Errorf("%s: param %q, want code", tc.body, pe.Param)
		}
	}
}

func FuzzParseWeChatAnswer(f *testing.F) {
	for _, a := range weChatAnswers {
		f.Add([]byte(a))
	}
	f.Add([]byte(`{"errcode":null,"openid":"o1"}`))
	f.Add([]byte(`{"openid":"o1","openid":"o2"}`))
	f.Add([]byte(`{"errcode":99999999999999999999}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := parseWeChatAnswer(body)
		if err != nil {
			if a != (weChatAnswer{}) {
				t.Fatalf("error %v came with an answer %+v", err, a)
			}
			// Whatever the answer, the merchant gets a classified error, never an internal one.
			if k := payment.KindOf(weChatError("jscode2session", err)); k != payment.Invalid && k != payment.ProviderError {
				t.Fatalf("error %v maps to kind %s", err, k)
			}
			return
		}
		if !validIdentifier(a.OpenID) || (a.UnionID != "" && !validIdentifier(a.UnionID)) {
			t.Fatalf("accepted malformed identifiers %+v from %q", a, body)
		}
		// Accepted answers carry no errcode other than 0.
		var raw map[string]any
		if json.Unmarshal(body, &raw) == nil {
			if c, ok := raw["errcode"].(float64); ok && c != 0 {
				t.Fatalf("accepted %q despite errcode %v", body, c)
			}
		}
	})
}

// A WeChat client must not let the app secret, which rides in the query, into an error.
func TestWeChatErrorsHideSecret(t *testing.T) {
	const secret = "s3cr3t-app-secret-value"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer hang.Close()
	status := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("secret") != secret || r.URL.Query().Get("grant_type") != "authorization_code" {
			t.Errorf("request query %q lacks the secret or grant_type", r.URL.RawQuery)
		}
		http.Error(w, "upstream broke", http.StatusBadGateway)
	}))
	defer status.Close()
	for name, base := range map[string]string{"refused": dead, "timeout": hang.URL, "HTTP 502": status.URL} {
		w, err := NewWeChat(WeChatConfig{AppID: "wx1", AppSecret: secret, APIBase: base, Timeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		for _, call := range []func(context.Context, string) (Identity, error){w.Exchange, w.ExchangeWebCode} {
			_, err = call(context.Background(), "code-1")
			if payment.KindOf(err) != payment.ProviderError {
				t.Errorf("%s: got %v, want a provider error", name, err)
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("%s: the error quotes the app secret: %v", name, err)
			}
		}
	}
}

func TestStateBindsPaymentNonceAndExpiry(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Unix(1_800_000_000, 0)
	exp := now.Add(10 * time.Minute).Unix()
	st := signState(key, "pay_A", "nonce-1", exp)
	if len(st) > 128 {
		t.Fatalf("state %q longer than WeChat's 128 bytes", st)
	}
	if !verifyState(key, "pay_A", "nonce-1", st, now) {
		t.Fatal("a fresh state was refused")
	}
	mac := st[strings.Index(st, ".")+1:]
	flipped := []byte(st)
	flipped[len(flipped)-1] ^= 1 // still base64url, another MAC
	for name, ok := range map[string]bool{
		"another payment":    verifyState(key, "pay_B", "nonce-1", st, now),
		"another browser":    verifyState(key, "pay_A", "nonce-2", st, now),
		"no cookie":          verifyState(key, "pay_A", "", st, now),
		"expired":            verifyState(key, "pay_A", "nonce-1", st, now.Add(10*time.Minute)),
		"another key":        verifyState([]byte("other"), "pay_A", "nonce-1", st, now),
		"expiry moved ahead": verifyState(key, "pay_A", "nonce-1", strconv.FormatInt(exp+3600, 36)+"."+mac, now),
		"tampered MAC":       verifyState(key, "pay_A", "nonce-1", string(flipped), now),
		"empty":              verifyState(key, "pay_A", "nonce-1", "", now),
		"no dot":             verifyState(key, "pay_A", "nonce-1", strings.ReplaceAll(st, ".", ""), now),
		"huge expiry":        verifyState(key, "pay_A", "nonce-1", "zzzzzzzzzzzzzzzz."+mac, now),
		"negative expiry":    verifyState(key, "pay_A", "nonce-1", "-1."+mac, now),
	} {
		if ok {
			t.Errorf("%s: state accepted", name)
		}
	}
}

func TestDecodeStrict(t *testing.T) {
	params := func(in *LoginRequest) map[string]reqbody.Param {
		return map[string]reqbody.Param{"provider": {Dst: &in.Provider, Want: "a string"}, "code": {Dst: &in.Code, Want: "a string"}, "customer": {Dst: &in.Customer, Want: "a string"}}
	}
	var in LoginRequest
	if err := reqbody.Decode([]byte(` {"provider":"wechatpay","code":"c1","customer":null} `), params(&in)); err != nil || in.Provider != "wechatpay" || in.Code != "c1" || in.Customer != "" {
		t.Fatalf("good body: %+v %v", in, err)
	}
	for body, param := range map[string]string{
		`[]`:                                "body",
		`{"provider":"a"`:                   "body",
		`{"provider":"a"} {}`:               "body",
		`{"Provider":"a"}`:                  "Provider",
		`{"provider":1}`:                    "provider",
		`{"code":"a","code":"b"}`:           "code",
		`{"session_key":"x"}`:               "session_key",
		`{"customer":{"id":"cus_1"}}`:       "customer",
		`{"provider":"wechatpay","x":true}`: "x",
	} {
		var in LoginRequest
		err := reqbody.Decode([]byte(body), params(&in))
		var pe *payment.Error
		if !errors.As(err, &pe) || pe.Kind != payment.Invalid || pe.Param != param {
			t.Errorf("%q: got %v, want a 400 naming %s", body, err, param)
		}
	}
}
