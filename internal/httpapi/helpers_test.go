package httpapi

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"

	"github.com/hutong-pay/hutong/internal/apikey"
	"github.com/hutong-pay/hutong/internal/fakewallet"
	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/identity"
	"github.com/hutong-pay/hutong/internal/payment"
	"github.com/hutong-pay/hutong/internal/store/sqlite"
	"github.com/hutong-pay/hutong/internal/webhook"
)

// testEnv is the API served over loopback HTTP on a real SQLite store, with fake wallets.
type testEnv struct {
	t       *testing.T
	srv     *httptest.Server
	store   *faultyStore
	sql     *sqlite.Store // the real store under store, which also keeps webhooks
	queue   *river.Client[*sql.Tx]
	svc     *gateway.Service
	wechat  *fakewallet.Wallet
	alipay  *fakewallet.Wallet
	clock   *testClock
	logs    *syncBuffer
	reg     *prometheus.Registry
	doc     *openAPI
	secrets []string // every secret issued, to check logs never carry one

	mu   sync.Mutex
	seen map[string]bool // "METHOD /template STATUS" of every response, for the coverage test
}

type envOption func(*Config)

func newEnv(t *testing.T, opts ...envOption) *testEnv {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hutong.db"), sqlite.Options{Migrate: true, Synchronous: "NORMAL"})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	queue, err := river.NewClient(riversqlite.New(st.DB()), &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{
		t: t, store: &faultyStore{Store: st}, sql: st, queue: queue, clock: &testClock{}, logs: &syncBuffer{}, reg: prometheus.NewRegistry(),
		wechat: fakewallet.New(fakewallet.Options{Name: payment.WeChatPay}),
		alipay: fakewallet.New(fakewallet.Options{Name: payment.Alipay}),
		doc:    loadOpenAPI(t), seen: map[string]bool{},
	}
	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.svc = gateway.New(gateway.Config{
		Store: CountTransitions(e.store, e.reg), Providers: []gateway.Provider{e.wechat, e.alipay}, PublicURL: "https://pay.example.test",
		Now: e.clock.Now, Logger: logger,
	})
	// The webhook routes are mounted as the node mounts them; redeliveries go to the store's queue.
	hooks := webhook.NewHandlers(webhook.HandlersConfig{Store: st, MaxEndpoints: 3, Now: e.clock.Now,
		Inserter: webhook.InserterFunc(func(ctx context.Context, p []river.InsertManyParams) error {
			_, err := queue.InsertMany(ctx, p)
			return err
		})})
	cfg := Config{Service: e.svc, Store: e.store, Logger: logger, Metrics: e.reg, Now: e.clock.Now,
		ExtraAPI: func(mux *http.ServeMux, writeError func(http.ResponseWriter, *http.Request, error)) {
			hooks.Register(mux, Merchant, writeError)
			// The customer routes too, with a login client that answers by code (fakeLogin).
			identity.New(identity.Config{Store: st, Exchangers: []identity.Exchanger{fakeLogin{}}, Now: e.clock.Now}).
				RegisterAPI(mux, Merchant, writeError)
		}}
	for _, o := range opts {
		o(&cfg)
	}
	e.srv = httptest.NewServer(New(cfg))
	t.Cleanup(e.srv.Close)
	t.Cleanup(func() {
		logs := e.logs.String()
		for _, s := range e.secrets {
			if strings.Contains(logs, s) || strings.Contains(logs, s[len(s)-20:]) {
				t.Errorf("logs carry an API secret")
			}
		}
		if strings.Contains(strings.ToLower(logs), "authorization") {
			t.Errorf("logs mention the Authorization header")
		}
	})
	return e
}

// merchant creates a merchant with one key and returns the key's secret.
func (e *testEnv) merchant(livemode bool) (merchantID, secret string) {
	e.t.Helper()
	ctx := context.Background()
	m := &payment.Merchant{ID: payment.NewID("mch"), Name: "Tea House", CreatedAt: e.clock.Now()}
	if err := e.store.CreateMerchant(ctx, m); err != nil {
		e.t.Fatalf("create merchant: %v", err)
	}
	return m.ID, e.key(m.ID, livemode)
}

func (e *testEnv) key(merchantID string, livemode bool) string {
	e.t.Helper()
	secret, k := apikey.Generate(livemode)
	k.MerchantID, k.CreatedAt = merchantID, e.clock.Now()
	if err := e.store.CreateAPIKey(context.Background(), k); err != nil {
		e.t.Fatalf("create api key: %v", err)
	}
	e.secrets = append(e.secrets, secret)
	return secret
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r *response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r *response) payment(t *testing.T) *payment.Payment {
	t.Helper()
	var p payment.Payment
	r.decode(t, &p)
	return &p
}

func (r *response) refund(t *testing.T) *payment.Refund {
	t.Helper()
	var re payment.Refund
	r.decode(t, &re)
	return &re
}

func (r *response) apiError(t *testing.T) errorBody {
	t.Helper()
	var env errorEnvelope
	r.decode(t, &env)
	return env.Error
}

// req is one request; body is sent as is when it is a string or []byte, else as JSON.
type req struct {
	method, path, secret string
	body                 any
	header               map[string]string
}

// do sends rq and checks the response against the OpenAPI document.
func (e *testEnv) do(rq req) *response {
	e.t.Helper()
	res, err := e.send(rq)
	if err != nil {
		e.t.Fatalf("%s %s: %v", rq.method, rq.path, err)
	}
	if err := e.check(rq, res); err != nil {
		e.t.Errorf("%s %s → %d %s: %v", rq.method, rq.path, res.status, res.body, err)
	}
	return res
}

// send is do without checks, safe to call from other goroutines.
func (e *testEnv) send(rq req) (*response, error) {
	var body io.Reader
	switch b := rq.body.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	case []byte:
		body = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(j)
	}
	r, err := http.NewRequest(rq.method, e.srv.URL+rq.path, body)
	if err != nil {
		return nil, err
	}
	if rq.secret != "" {
		r.Header.Set("Authorization", "Bearer "+rq.secret)
	}
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range rq.header {
		r.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// check validates res against the document and records what it covered.
func (e *testEnv) check(rq req, res *response) error {
	path, _, _ := strings.Cut(rq.path, "?")
	tmpl, op := e.doc.operation(rq.method, path)
	if res.header.Get("X-Request-Id") == "" {
		return errors.New("no X-Request-Id")
	}
	if op == nil {
		// Not a documented route (unknown, or mounted by Config.Extra): its errors must still be envelopes.
		if res.status < 400 {
			return nil
		}
		return e.doc.validate(res.body, map[string]any{"$ref": "#/components/schemas/Error"})
	}
	e.mu.Lock()
	e.seen[strings.ToUpper(rq.method)+" "+tmpl+" "+strconv.Itoa(res.status)] = true
	e.mu.Unlock()
	return e.doc.validateResponse(op, res.status, res.header.Get("Content-Type"), res.body)
}

func (e *testEnv) createPayment(secret string, body map[string]any) *payment.Payment {
	e.t.Helper()
	res := e.do(req{method: "POST", path: "/v1/payments", secret: secret, body: body})
	if res.status != http.StatusOK {
		e.t.Fatalf("create payment: %d %s", res.status, res.body)
	}
	return res.payment(e.t)
}

func qrPayment(amount int64) map[string]any {
	return map[string]any{"amount": amount, "currency": "CNY", "description": "Longjing tea", "reference": "order-" + payment.RandomString(6),
		"provider": "wechatpay", "channel": "qr"}
}

// paidPayment creates a payment and has the buyer pay it, as a verified notification would tell.
func (e *testEnv) paidPayment(secret string, amount int64) *payment.Payment {
	e.t.Helper()
	p := e.createPayment(secret, qrPayment(amount))
	wp, err := e.wechat.Pay(p.ProviderRef.OutTradeNo)
	if err != nil {
		e.t.Fatalf("pay: %v", err)
	}
	paid, err := e.svc.ApplyWalletPayment(context.Background(), payment.WeChatPay, wp)
	if err != nil || paid.Status != payment.StatusSucceeded {
		e.t.Fatalf("apply payment: %v, %+v", err, paid)
	}
	return paid
}

// testClock is the real time plus an offset tests may advance.
type testClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// faultyStore is the real store with errors injectable per method.
type faultyStore struct {
	gateway.Store
	mu    sync.Mutex
	fails map[string]error
}

func (f *faultyStore) fail(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fails == nil {
		f.fails = map[string]error{}
	}
	if err == nil {
		delete(f.fails, method)
		return
	}
	f.fails[method] = err
}

func (f *faultyStore) err(method string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fails[method]
}

func (f *faultyStore) APIKeyByHash(ctx context.Context, hash []byte) (*payment.APIKey, error) {
	if err := f.err("APIKeyByHash"); err != nil {
		return nil, err
	}
	return f.Store.APIKeyByHash(ctx, hash)
}

func (f *faultyStore) Merchant(ctx context.Context, id string) (*payment.Merchant, error) {
	if err := f.err("Merchant"); err != nil {
		return nil, err
	}
	return f.Store.Merchant(ctx, id)
}

func (f *faultyStore) FinishIdempotent(ctx context.Context, merchantID, key string, status int, body []byte) error {
	if err := f.err("FinishIdempotent"); err != nil {
		return err
	}
	return f.Store.FinishIdempotent(ctx, merchantID, key, status, body)
}

func hashOf(secret string) []byte { return apikey.Hash(secret) }

// fakeLogin stands for a wallet's login API: code "bad" is refused, "busy" finds the wallet
// unavailable, any other code is the buyer with openid "o_" + code.
type fakeLogin struct{}

func (fakeLogin) Provider() payment.Provider { return payment.WeChatPay }
func (fakeLogin) AppID() string              { return "wx_test" }
func (fakeLogin) Exchange(_ context.Context, code string) (identity.Identity, error) {
	switch code {
	case "bad":
		return identity.Identity{}, &payment.Error{Kind: payment.Invalid, Code: "invalid_code", Param: "code", Message: "the login code is invalid or expired"}
	case "busy":
		return identity.Identity{}, &payment.Error{Kind: payment.ProviderError, Code: "provider_unavailable", Message: "try again"}
	}
	return identity.Identity{Provider: payment.WeChatPay, AppID: "wx_test", OpenID: "o_" + code}, nil
}
