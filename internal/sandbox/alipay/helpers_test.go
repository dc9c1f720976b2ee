package alipay

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	sdk "github.com/smartwalle/alipay/v3"

	"github.com/hutong-pay/hutong/internal/sandbox/faults"
	"github.com/hutong-pay/hutong/internal/sandbox/notify"
	"github.com/hutong-pay/hutong/internal/sandbox/sandboxdb"
)

// Generating 2048-bit keys for every sandbox would dominate the test time: tests share a few.
var (
	testKeysOnce sync.Once
	testKeys     []*rsa.PrivateKey
	testKeyNext  int
	testKeyMu    sync.Mutex
)

func TestMain(m *testing.M) {
	generateKey = func() (*rsa.PrivateKey, error) {
		testKeysOnce.Do(func() {
			for range 4 {
				k, err := rsa.GenerateKey(rand.Reader, 2048)
				if err != nil {
					panic(err)
				}
				testKeys = append(testKeys, k)
			}
		})
		testKeyMu.Lock()
		defer testKeyMu.Unlock()
		k := testKeys[testKeyNext%len(testKeys)]
		testKeyNext++
		return k, nil
	}
	os.Exit(m.Run())
}

// clock is real time plus an offset tests can move forward.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func newClock() *clock { return &clock{} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// env is one sandbox behind a loopback HTTP server, with an SDK client pointed at it.
type env struct {
	t      testing.TB
	db     *sql.DB
	dbPath string
	sb     *Sandbox
	srv    *httptest.Server
	mux    *http.ServeMux
	client *sdk.Client
	sender *notify.Sender
	faults *faults.Injector
	clock  *clock
}

type envOptions struct {
	dbPath    string // reuse a database (restart tests)
	clock     *clock
	timeScale float64
}

func newEnv(t testing.TB, opts ...envOptions) *env {
	t.Helper()
	var o envOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.dbPath == "" {
		o.dbPath = filepath.Join(t.TempDir(), "sandbox.db")
	}
	if o.clock == nil {
		o.clock = newClock()
	}
	if o.timeScale == 0 {
		o.timeScale = 0.0005 // 4m → 120ms
	}
	db, err := sandboxdb.Open(o.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &env{t: t, db: db, dbPath: o.dbPath, clock: o.clock, faults: faults.New(), mux: http.NewServeMux()}
	e.srv = httptest.NewServer(e.mux)
	t.Cleanup(e.srv.Close)
	e.sender, err = notify.New(notify.Options{DB: db, Faults: e.faults, TimeScale: o.timeScale, Now: o.clock.Now,
		Client: &http.Client{Timeout: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	e.sb, err = New(context.Background(), Config{DB: db, Sender: e.sender, Faults: e.faults, BaseURL: e.srv.URL, Now: o.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.sb.Register(e.mux)
	e.sender.Start(context.Background())
	t.Cleanup(e.sender.Close)
	e.client = e.newClient(e.sb.Credentials())
	return e
}

// as returns the env reporting to t (a fuzz iteration must not use the F).
func (e *env) as(t testing.TB) *env {
	c := *e
	c.t = t
	return &c
}

func (e *env) newClient(c Credentials) *sdk.Client {
	e.t.Helper()
	cl, err := sdk.New(c.AppID, c.AppPrivateKey, false,
		sdk.WithSandboxGateway(e.srv.URL+"/gateway.do"), sdk.WithHTTPClient(&http.Client{Timeout: 5 * time.Second}))
	if err != nil {
		e.t.Fatal(err)
	}
	if err := cl.LoadAliPayPublicKey(c.AlipayPublicKey); err != nil {
		e.t.Fatal(err)
	}
	return cl
}

// control posts JSON to a sandbox control endpoint and returns the status and decoded body.
func (e *env) control(path string, body any) (int, map[string]any) {
	e.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	resp, err := http.Post(e.srv.URL+path, "application/json", r)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (e *env) precreate(outTradeNo, amount, notifyURL string) *sdk.TradePreCreateRsp {
	e.t.Helper()
	rsp, err := e.client.TradePreCreate(context.Background(), sdk.TradePreCreate{Trade: sdk.Trade{
		NotifyURL: notifyURL, Subject: "测试商品 & <tea>", OutTradeNo: outTradeNo, TotalAmount: amount}})
	if err != nil {
		e.t.Fatalf("precreate %s: %v", outTradeNo, err)
	}
	if !rsp.IsSuccess() {
		e.t.Fatalf("precreate %s: got %s %s %s", outTradeNo, rsp.Code, rsp.SubCode, rsp.SubMsg)
	}
	return rsp
}

func (e *env) query(outTradeNo string) *sdk.TradeQueryRsp {
	e.t.Helper()
	rsp, err := e.client.TradeQuery(context.Background(), sdk.TradeQuery{OutTradeNo: outTradeNo})
	if err != nil {
		e.t.Fatalf("query %s: %v", outTradeNo, err)
	}
	return rsp
}

func (e *env) pay(outTradeNo string) {
	e.t.Helper()
	if status, body := e.control("/sandbox/alipay/trades/"+outTradeNo+"/pay", nil); status != http.StatusOK {
		e.t.Fatalf("pay %s: got %d %v, want 200", outTradeNo, status, body)
	}
}

// rawCall sends a form to gateway.do signed with the app key, returning the raw body.
func (e *env) rawCall(query, form url.Values) []byte {
	e.t.Helper()
	u := e.srv.URL + "/gateway.do"
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	resp, err := http.Post(u, "application/x-www-form-urlencoded;charset=utf-8", bytes.NewBufferString(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("gateway status %d, want 200", resp.StatusCode)
	}
	b, _ := io.ReadAll(resp.Body)
	return b
}

func (e *env) appKey() *rsa.PrivateKey {
	e.t.Helper()
	k, err := parsePrivateKeyPEM(e.sb.Credentials().AppPrivateKey)
	if err != nil {
		e.t.Fatal(err)
	}
	return k
}

// signedParams returns the common params for method with biz, signed over everything given.
func (e *env) signedParams(method, biz string, extra url.Values) url.Values {
	e.t.Helper()
	v := url.Values{}
	v.Set("app_id", e.sb.Credentials().AppID)
	v.Set("method", method)
	v.Set("charset", "utf-8")
	v.Set("sign_type", "RSA2")
	v.Set("timestamp", time.Now().Format(alipayTime))
	v.Set("version", "1.0")
	if biz != "" {
		v.Set("biz_content", biz)
	}
	for k, vs := range extra {
		v[k] = vs
	}
	sig, err := signRSA2(e.appKey(), []byte(signContent(v, true, "sign")))
	if err != nil {
		e.t.Fatal(err)
	}
	v.Set("sign", sig)
	return v
}

// responseNode splits a gateway answer into the named node's raw bytes and the sign, checking the
// signature over exactly those bytes.
func (e *env) responseNode(body []byte, name string) map[string]any {
	e.t.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		e.t.Fatalf("answer is not JSON: %v: %s", err, body)
	}
	node, ok := raw[name]
	if !ok {
		e.t.Fatalf("answer has no %s: %s", name, body)
	}
	var sig string
	if err := json.Unmarshal(raw["sign"], &sig); err != nil {
		e.t.Fatalf("answer has no sign: %s", body)
	}
	if err := verifyRSA2(&e.sb.app.alipayKey.PublicKey, string(node), sig); err != nil {
		e.t.Fatalf("node signature: %v", err)
	}
	var m map[string]any
	_ = json.Unmarshal(node, &m)
	return m
}

// notifyServer records the notifications it receives and answers with ack (or fails while failing is set).
type notifyServer struct {
	mu       sync.Mutex
	forms    []url.Values
	fail     int // answer "fail" to this many deliveries first
	received chan url.Values
	srv      *httptest.Server
}

func newNotifyServer(t *testing.T, failFirst int) *notifyServer {
	n := &notifyServer{fail: failFirst, received: make(chan url.Values, 100)}
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		n.mu.Lock()
		n.forms = append(n.forms, r.PostForm)
		failing := n.fail > 0
		if failing {
			n.fail--
		}
		n.mu.Unlock()
		n.received <- r.PostForm
		if failing {
			_, _ = w.Write([]byte("fail"))
			return
		}
		sdk.ACKNotification(w)
	}))
	t.Cleanup(n.srv.Close)
	return n
}

func (n *notifyServer) next(t *testing.T) url.Values {
	t.Helper()
	select {
	case v := <-n.received:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("no notification within 10s")
		return nil
	}
}
