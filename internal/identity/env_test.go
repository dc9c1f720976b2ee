package identity_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/alipay"
	"github.com/hutong-pay/hutong/internal/apikey"
	"github.com/hutong-pay/hutong/internal/checkout"
	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/httpapi"
	"github.com/hutong-pay/hutong/internal/identity"
	"github.com/hutong-pay/hutong/internal/payment"
	"github.com/hutong-pay/hutong/internal/sandbox"
	"github.com/hutong-pay/hutong/internal/store/sqlite"
	"github.com/hutong-pay/hutong/internal/wechatpay"
)

// env is a gateway node wired as the demo wires it (SQLite, both connectors, the merchant API
// with the customer routes, the checkout with WeChat web authorization) against the real
// wallet sandboxes, each on its own loopback listener.
type env struct {
	t          testing.TB
	sb         *sandbox.Sandbox
	creds      sandbox.Credentials
	sandboxURL string
	gatewayURL string
	store      *sqlite.Store
	gw         *gateway.Service
	ids        *identity.Service
	merchantID string
	key        string // the merchant's test key
	liveKey    string // the same merchant's live key
	otherKey   string // another merchant's test key
}

func serve(t testing.TB, ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

func listen(t testing.TB) (net.Listener, string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln, "http://" + ln.Addr().String()
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	log := slog.New(slog.DiscardHandler)
	e := &env{t: t}

	sln, sandboxURL := listen(t)
	sb, err := sandbox.Open(ctx, sandbox.Config{DataDir: filepath.Join(t.TempDir(), "sandbox"), BaseURL: sandboxURL, TimeScale: 0.001, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	sb.Start(ctx)
	serve(t, sln, sb.Handler())
	e.sb, e.creds, e.sandboxURL = sb, sb.Credentials(), sandboxURL

	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hutong.db"), sqlite.Options{Migrate: true, Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.store = st

	gln, gatewayURL := listen(t)
	e.gatewayURL = gatewayURL
	w, a := e.creds.WeChatPay, e.creds.Alipay
	wx, err := wechatpay.New(ctx, wechatpay.Config{
		MchID: w.MchID, AppID: w.AppID, MerchantSerialNo: w.MerchantSerialNo, MerchantPrivateKeyPEM: w.MerchantPrivateKey,
		APIv3Key: w.APIv3Key, PublicKeyID: w.PublicKeyID, PublicKeyPEM: w.PublicKey, BaseURL: sandboxURL, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	ali, err := alipay.New(alipay.Config{AppID: a.AppID, AppPrivateKey: a.AppPrivateKey, AlipayPublicKey: a.AlipayPublicKey,
		GatewayURL: sandboxURL + "/gateway.do", Logger: log})
	if err != nil {
		t.Fatal(err)
	}

	// The identity wiring the node needs, as the report to the lead describes it.
	wxLogin, err := identity.NewWeChat(identity.WeChatConfig{AppID: w.AppID, AppSecret: w.AppSecret, APIBase: sandboxURL, OpenBase: sandboxURL})
	if err != nil {
		t.Fatal(err)
	}
	aliLogin, err := identity.NewAlipay(identity.AlipayConfig{AppID: a.AppID, AppPrivateKey: a.AppPrivateKey,
		AlipayPublicKey: a.AlipayPublicKey, GatewayURL: sandboxURL + "/gateway.do"})
	if err != nil {
		t.Fatal(err)
	}
	e.ids = identity.New(identity.Config{Store: st, Exchangers: []identity.Exchanger{wxLogin, aliLogin}, Logger: log})
	e.gw = gateway.New(gateway.Config{Store: st, Providers: []gateway.Provider{wx, ali}, PublicURL: gatewayURL, Customers: e.ids, Logger: log})
	webAuth := identity.NewWebAuth(identity.WebAuthConfig{Gateway: e.gw, WeChat: wxLogin, Logger: log})
	co := checkout.New(checkout.Config{Service: e.gw, Logger: log, SandboxURL: sandboxURL, WeChatOAuth: true, SyncInterval: -1})
	rec := func(context.Context, string, string, map[string]string) {}
	h := httpapi.New(httpapi.Config{
		Service: e.gw, Store: st, Logger: log,
		Extra: func(mux *http.ServeMux) {
			wh, ah := wx.NotificationHandler(e.gw, rec), ali.NotificationHandler(e.gw, rec)
			mux.Handle("POST /notify/wechatpay/payments", wh)
			mux.Handle("POST /notify/alipay/payments", ah)
			co.Register(mux)
			webAuth.Register(mux)
		},
		ExtraAPI: func(mux *http.ServeMux, writeErr func(http.ResponseWriter, *http.Request, error)) {
			e.ids.RegisterAPI(mux, httpapi.Merchant, writeErr)
		},
	})
	serve(t, gln, h)

	e.merchantID = "mer_identity"
	e.key = e.newKey(e.merchantID, false)
	e.liveKey = e.newKey(e.merchantID, true)
	e.otherKey = e.newKey("mer_other", false)
	return e
}

// newKey makes sure merchant exists and gives it a new key.
func (e *env) newKey(merchantID string, live bool) string {
	e.t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	if _, err := e.store.Merchant(ctx, merchantID); payment.IsNotFound(err) {
		if err := e.store.CreateMerchant(ctx, &payment.Merchant{ID: merchantID, Name: "Tea " + merchantID, CreatedAt: now}); err != nil {
			e.t.Fatal(err)
		}
	}
	secret, k := apikey.Generate(live)
	k.MerchantID, k.CreatedAt = merchantID, now
	if err := e.store.CreateAPIKey(ctx, k); err != nil {
		e.t.Fatal(err)
	}
	return secret
}

// answer is an HTTP answer: status, raw body, and the body decoded as a JSON object.
type answer struct {
	status int
	raw    []byte
	json   map[string]any
}

func (a answer) str(path ...string) string {
	var v any = a.json
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[p]
	}
	s, _ := v.(string)
	return s
}

// errCode is the error envelope's code.
func (a answer) errCode() string { return a.str("error", "code") }

func (e *env) do(method, url, key string, body any) answer {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, ok := body.(string)
		if !ok {
			raw, err := json.Marshal(body)
			if err != nil {
				e.t.Fatal(err)
			}
			b = string(raw)
		}
		rd = strings.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, raw: raw}
	if len(bytes.TrimSpace(raw)) > 0 && raw[0] == '{' {
		if err := json.Unmarshal(raw, &a.json); err != nil {
			e.t.Fatalf("%s %s: %d %s: %v", method, url, resp.StatusCode, raw, err)
		}
	}
	return a
}

// api calls the merchant API with key.
func (e *env) api(method, path, key string, body any) answer {
	e.t.Helper()
	return e.do(method, e.gatewayURL+path, key, body)
}

// wechatCode asks the sandbox for a wx.login code, for openid when given.
func (e *env) wechatCode(openid string) (code, gotOpenID, unionid string) {
	e.t.Helper()
	body := map[string]string{}
	if openid != "" {
		body["openid"] = openid
	}
	a := e.do("POST", e.sandboxURL+"/sandbox/wechatpay/login-codes", "", body)
	if a.status != http.StatusOK || a.str("code") == "" {
		e.t.Fatalf("wechat login code: %d %s", a.status, a.raw)
	}
	return a.str("code"), a.str("openid"), a.str("unionid")
}

// alipayCode asks the sandbox for a my.getAuthCode code, for userID when given.
func (e *env) alipayCode(userID string) (code, gotUserID, openID string) {
	e.t.Helper()
	body := map[string]string{}
	if userID != "" {
		body["user_id"] = userID
	}
	a := e.do("POST", e.sandboxURL+"/sandbox/alipay/auth-codes", "", body)
	if a.status != http.StatusCreated || a.str("code") == "" {
		e.t.Fatalf("alipay auth code: %d %s", a.status, a.raw)
	}
	return a.str("code"), a.str("user_id"), a.str("open_id")
}

// customerJSON is the API's customer.
type customerJSON struct {
	ID         string `json:"id"`
	Object     string `json:"object"`
	Livemode   bool   `json:"livemode"`
	Identities []struct {
		Provider string `json:"provider"`
		AppID    string `json:"app_id"`
		OpenID   string `json:"openid"`
		UnionID  string `json:"unionid"`
		UserID   string `json:"user_id"`
		OpenIDA  string `json:"open_id"`
	} `json:"identities"`
	CreatedAt time.Time `json:"created_at"`
}

func (e *env) customer(a answer) customerJSON {
	e.t.Helper()
	if a.status != http.StatusOK {
		e.t.Fatalf("want a customer, got %d %s", a.status, a.raw)
	}
	var c customerJSON
	if err := json.Unmarshal(a.raw, &c); err != nil {
		e.t.Fatal(err)
	}
	if c.Object != "customer" || !strings.HasPrefix(c.ID, "cus_") || c.CreatedAt.IsZero() {
		e.t.Fatalf("not a customer: %s", a.raw)
	}
	// Nothing the wallet gave besides the identity leaves the server.
	for _, secret := range []string{"session_key", "access_token", "refresh_token", "expires_in"} {
		if bytes.Contains(a.raw, []byte(secret)) {
			e.t.Fatalf("the customer answer carries %s: %s", secret, a.raw)
		}
	}
	return c
}

func (e *env) login(key, provider, code, customer string) answer {
	e.t.Helper()
	body := map[string]string{"provider": provider, "code": code}
	if customer != "" {
		body["customer"] = customer
	}
	return e.api("POST", "/v1/customers/login", key, body)
}

// waitStatus polls the payment until it has status want.
func (e *env) waitStatus(id, want string) answer {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		a := e.api("GET", "/v1/payments/"+id, e.key, nil)
		if a.str("status") == want {
			return a
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("payment %s: status %q after 30s, want %q: %s", id, a.str("status"), want, a.raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// payAtWallet plays the buyer paying at the sandbox, as payer (openid or buyer_id); it returns the status.
func (e *env) payAtWallet(provider, outTradeNo string, payer map[string]string) int {
	e.t.Helper()
	path := map[string]string{"wechatpay": "/sandbox/wechatpay/transactions/", "alipay": "/sandbox/alipay/trades/"}[provider]
	return e.do("POST", e.sandboxURL+path+outTradeNo+"/pay", "", payer).status
}

// noRedirects is a client that shows each redirect instead of following it.
func noRedirects() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
