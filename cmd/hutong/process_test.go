package main

// Process-level tests: the real binary, killed with SIGKILL mid-stream and restarted, on SQLite
// and on PostgreSQL; and two nodes sharing one PostgreSQL database, one of them killed.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/sandbox"
	"github.com/hutong-pay/hutong/internal/store/pgtest"
	"github.com/hutong-pay/hutong/internal/webhook"
)

var hutongBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hutong-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hutongBin = filepath.Join(dir, "hutong")
	build := exec.Command("go", "build", "-o", hutongBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build hutong:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running hutong process whose output goes to a log file kept for failures.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startProc(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(hutongBin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); f.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("--- %s log (last 3000 bytes) ---\n%s", name, tail(b, 3000))
		}
	})
	return p
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// kill ends the process with SIGKILL: no shutdown code runs, as in a crash or power cut.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitHealthy(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not become healthy: %v", base, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// cluster is a sandbox process plus the configuration for gateway nodes wired to it.
type cluster struct {
	t          *testing.T
	sandboxURL string
	configPath string
	env        []string
	apiKey     string
}

func newCluster(t *testing.T, databaseURL string) *cluster {
	t.Helper()
	dir := t.TempDir()
	sbAddr := freePort(t)
	sb := startProc(t, "sandbox", nil, "sandbox", "--listen", sbAddr, "--data", filepath.Join(dir, "sandbox"), "--time-scale", "0.001", "--log-level", "warn")
	c := &cluster{t: t, sandboxURL: "http://" + sbAddr}
	var creds sandbox.Credentials
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(c.sandboxURL + "/sandbox/credentials")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&creds)
			resp.Body.Close()
			if err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("sandbox %s: %v", sb.name, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	wx := creds.WeChatPay
	cfg := fmt.Sprintf(`data_dir = %q
log_level = "warn"
sqlite_synchronous = "FULL"
idempotency_stale_after = "2s"
job_timeout = "5s"
jobs_rescue_after = "10s"

[wechatpay]
mchid = %q
appid = %q
merchant_serial_no = %q
merchant_private_key_file = %q
apiv3_key_file = %q
public_key_id = %q
public_key_file = %q
base_url = %q
timeout = "5s"

[alipay]
app_id = %q
app_private_key_file = %q
alipay_public_key_file = %q
gateway_url = %q
timeout = "5s"
`, filepath.Join(dir, "gateway"), wx.MchID, wx.AppID, wx.MerchantSerialNo, write("wx.pem", wx.MerchantPrivateKey),
		write("apiv3", wx.APIv3Key), wx.PublicKeyID, write("wxpub.pem", wx.PublicKey), c.sandboxURL,
		creds.Alipay.AppID, write("ali.pem", creds.Alipay.AppPrivateKey), write("alipub.pem", creds.Alipay.AlipayPublicKey), c.sandboxURL+"/gateway.do")
	c.configPath = write("hutong.toml", cfg)
	c.env = []string{"HUTONG_CONFIG=" + c.configPath}
	if databaseURL != "" {
		c.env = append(c.env, "HUTONG_DATABASE_URL="+databaseURL)
	}
	c.run("migrate")
	out := c.run("apikey", "create", "--name", "Crash Test Tea")
	c.apiKey = regexp.MustCompile(`sk_test_[0-9A-Za-z]{40}`).FindString(out)
	if c.apiKey == "" {
		t.Fatalf("apikey create printed %q", out)
	}
	return c
}

func (c *cluster) run(args ...string) string {
	c.t.Helper()
	cmd := exec.Command(hutongBin, args...)
	cmd.Env = append(os.Environ(), c.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		c.t.Fatalf("hutong %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// node starts `hutong serve` on addr, telling wallets and buyers to use publicURL.
func (c *cluster) node(name, addr, publicURL string) *proc {
	c.t.Helper()
	p := startProc(c.t, name, append([]string{"HUTONG_LISTEN=" + addr, "HUTONG_PUBLIC_URL=" + publicURL}, c.env...), "serve")
	waitHealthy(c.t, "http://"+addr)
	return p
}

// client talks to the merchant API as a merchant would: it retries a request that got no answer
// with the same Idempotency-Key until it is answered.
type client struct {
	base, key string
	http      *http.Client
}

var errGaveUp = errors.New("no answer")

func (cl *client) do(method, path, idemKey string, body, out any) (int, error) {
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, _ := http.NewRequest(method, cl.base+path, bytes.NewReader(raw))
		req.Header.Set("Authorization", "Bearer "+cl.key)
		if idemKey != "" {
			req.Header.Set("Idempotency-Key", idemKey)
		}
		resp, err := cl.http.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			// 409 on a key still in flight, and 502/503 from the node or proxy: retry, as a merchant would.
			if resp.StatusCode != http.StatusConflict && resp.StatusCode < 500 {
				if out != nil {
					if err := json.Unmarshal(b, out); err != nil {
						return resp.StatusCode, fmt.Errorf("%s %s: %s: %w", method, path, b, err)
					}
				}
				return resp.StatusCode, nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s %s: %w (last: %v)", method, path, errGaveUp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type paymentView struct {
	ID             string `json:"id"`
	Status         string `json:"status"`
	Provider       string `json:"provider"`
	AmountRefunded int64  `json:"amount_refunded"`
	ProviderRef    struct {
		OutTradeNo string `json:"out_trade_no"`
	} `json:"provider_ref"`
}

// webhookSink counts Standard Webhooks deliveries by webhook-id, checking every signature.
type webhookSink struct {
	mu     sync.Mutex
	secret []byte
	seen   map[string]int
	bad    int
}

func (s *webhookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.secret == nil || webhook.Verify([][]byte{s.secret}, r.Header, body, time.Now()) != nil {
		s.bad++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.seen[r.Header.Get("webhook-id")]++
}

func (s *webhookSink) delivered(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[id] > 0
}

func registerWebhook(t *testing.T, cl *client, sink *webhookSink) {
	t.Helper()
	srv := httptest.NewServer(sink)
	t.Cleanup(srv.Close)
	var ep struct {
		Secret string `json:"secret"`
	}
	if code, err := cl.do("POST", "/v1/webhook_endpoints", "", map[string]any{"url": srv.URL + "/hooks"}, &ep); err != nil || code != 200 {
		t.Fatalf("create webhook endpoint: %d %v", code, err)
	}
	key, err := webhook.ParseSecret(ep.Secret)
	if err != nil {
		t.Fatal(err)
	}
	sink.mu.Lock()
	sink.secret = key
	sink.mu.Unlock()
}

// stream creates n payments from 4 merchant goroutines, each paid at the wallet by its buyer right
// after creation, and calls crash once, after about half were acknowledged.
func stream(t *testing.T, cl *client, sandboxURL string, n int, crash func()) []paymentView {
	t.Helper()
	var (
		mu     sync.Mutex
		acked  []paymentView
		next   atomic.Int64
		once   sync.Once
		errs   = make(chan error, n)
		wg     sync.WaitGroup
		wallet = map[string]string{"wechatpay": "/sandbox/wechatpay/transactions/", "alipay": "/sandbox/alipay/trades/"}
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				provider := []string{"wechatpay", "alipay"}[i%2]
				var p paymentView
				code, err := cl.do("POST", "/v1/payments", fmt.Sprintf("crash-%d", i), map[string]any{
					"amount": 100 + i, "description": "Tieguanyin", "reference": fmt.Sprintf("o-%d", i), "provider": provider, "channel": "qr",
				}, &p)
				if err != nil || code != 200 {
					errs <- fmt.Errorf("payment %d: %d %v", i, code, err)
					continue
				}
				mu.Lock()
				acked = append(acked, p)
				if len(acked) == n/2 {
					once.Do(crash)
				}
				mu.Unlock()
				resp, err := http.Post(sandboxURL+wallet[provider]+p.ProviderRef.OutTradeNo+"/pay", "application/json", nil)
				if err != nil {
					errs <- fmt.Errorf("pay %s: %v", p.ID, err)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					errs <- fmt.Errorf("pay %s at %s: status %d", p.ID, provider, resp.StatusCode)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	return acked
}

type refundView struct {
	ID        string `json:"id"`
	PaymentID string `json:"payment_id"`
	Status    string `json:"status"`
	Amount    int64  `json:"amount"`
}

// refundStream refunds 50 of every other payment from 4 merchant goroutines, and calls crash once,
// after about half were acknowledged.
func refundStream(t *testing.T, cl *client, paid []paymentView, crash func()) []refundView {
	t.Helper()
	var (
		mu    sync.Mutex
		acked []refundView
		once  sync.Once
		next  atomic.Int64
		wg    sync.WaitGroup
	)
	want := (len(paid) + 1) / 2
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(2)) - 2
				if i >= len(paid) {
					return
				}
				var r refundView
				code, err := cl.do("POST", "/v1/refunds", "refund-"+paid[i].ID, map[string]any{"payment_id": paid[i].ID, "amount": 50, "reason": "crash test"}, &r)
				if err != nil || code != 200 {
					t.Errorf("refund of %s: %d %v", paid[i].ID, code, err)
					continue
				}
				mu.Lock()
				acked = append(acked, r)
				if len(acked) == want/2 {
					once.Do(crash)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return acked
}

// checkTruth waits until every acknowledged payment is succeeded, checks no object moved twice,
// and that every event was delivered to the webhook endpoint at least once.
func checkTruth(t *testing.T, cl *client, acked []paymentView, refunds []refundView, sink *webhookSink) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	refunded := map[string]int64{}
	for _, r := range refunds {
		refunded[r.PaymentID] += r.Amount
		for {
			var got refundView
			code, err := cl.do("GET", "/v1/refunds/"+r.ID, "", nil, &got)
			if err != nil || code != 200 {
				t.Fatalf("acknowledged refund %s lost: %d %v", r.ID, code, err)
			}
			if got.Status == "succeeded" {
				break
			}
			if got.Status != "pending" || time.Now().After(deadline) {
				t.Fatalf("refund %s is %s, want succeeded", r.ID, got.Status)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, p := range acked {
		for {
			var got paymentView
			code, err := cl.do("GET", "/v1/payments/"+p.ID, "", nil, &got)
			if err != nil || code != 200 {
				t.Fatalf("acknowledged payment %s lost: %d %v", p.ID, code, err)
			}
			if got.Status == "succeeded" {
				if got.AmountRefunded != refunded[p.ID] {
					t.Errorf("payment %s has amount_refunded %d, want %d", p.ID, got.AmountRefunded, refunded[p.ID])
				}
				break
			}
			if got.Status != "pending" || time.Now().After(deadline) {
				t.Fatalf("payment %s paid at the wallet is %s", p.ID, got.Status)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Every event, and at most one final event per object.
	type event struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	var events []event
	after := ""
	for {
		var page struct {
			Data    []event `json:"data"`
			HasMore bool    `json:"has_more"`
		}
		path := "/v1/events?limit=100"
		if after != "" {
			path += "&starting_after=" + after
		}
		if code, err := cl.do("GET", path, "", nil, &page); err != nil || code != 200 {
			t.Fatalf("list events: %d %v", code, err)
		}
		events = append(events, page.Data...)
		if !page.HasMore || len(page.Data) == 0 {
			break
		}
		after = page.Data[len(page.Data)-1].ID
	}
	perObject := map[string]int{}
	for _, e := range events {
		perObject[e.Data.ID]++
	}
	for _, p := range acked {
		if perObject[p.ID] != 1 {
			t.Errorf("payment %s has %d events, want exactly 1 (payment.succeeded)", p.ID, perObject[p.ID])
		}
	}
	for _, r := range refunds {
		if perObject[r.ID] != 1 {
			t.Errorf("refund %s has %d events, want exactly 1 (refund.succeeded)", r.ID, perObject[r.ID])
		}
	}
	for _, e := range events {
		for !sink.delivered(e.ID) {
			if time.Now().After(deadline) {
				t.Fatalf("event %s (%s) never delivered to the webhook endpoint", e.ID, e.Type)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if sink.bad > 0 {
		t.Errorf("%d webhook deliveries failed signature verification", sink.bad)
	}
}

func crashTest(t *testing.T, databaseURL string) {
	c := newCluster(t, databaseURL)
	addr := freePort(t)
	base := "http://" + addr
	node := c.node("node", addr, base)
	cl := &client{base: base, key: c.apiKey, http: &http.Client{Timeout: 10 * time.Second}}
	sink := &webhookSink{seen: map[string]int{}}
	registerWebhook(t, cl, sink)

	kills := 0
	crash := func() {
		node.kill()
		kills++
		node = c.node(fmt.Sprintf("node-restarted-%d", kills), addr, base)
	}
	acked := stream(t, cl, c.sandboxURL, 60, crash)
	checkTruth(t, cl, acked, nil, sink)
	refunds := refundStream(t, cl, acked, crash)
	if kills != 2 {
		t.Fatalf("the node was killed %d times, want 2 (once among payments, once among refunds)", kills)
	}
	checkTruth(t, cl, acked, refunds, sink)
}

func TestCrashSQLite(t *testing.T) { crashTest(t, "") }

func TestCrashPostgres(t *testing.T) { crashTest(t, pgtest.FreshSchema(t)) }

// balancer spreads requests over the nodes and skips one that does not answer, as a load balancer
// with health checks would: wallets, buyers and merchants all reach "the gateway", whichever node is alive.
type balancer struct {
	nodes []*url.URL
	next  atomic.Uint64
}

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	start := int(b.next.Add(1))
	for i := range b.nodes {
		n := b.nodes[(start+i)%len(b.nodes)]
		rec := httptest.NewRecorder()
		r2 := r.Clone(r.Context())
		r2.Body = io.NopCloser(bytes.NewReader(body))
		proxy := httputil.NewSingleHostReverseProxy(n)
		failed := false
		proxy.ErrorHandler = func(http.ResponseWriter, *http.Request, error) { failed = true }
		proxy.ServeHTTP(rec, r2)
		if failed {
			continue
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
		return
	}
	http.Error(w, "no node alive", http.StatusBadGateway)
}

func TestTwoNodesOnPostgresOneKilled(t *testing.T) {
	c := newCluster(t, pgtest.FreshSchema(t))
	addrA, addrB := freePort(t), freePort(t)
	lb := &balancer{}
	front := httptest.NewServer(lb)
	t.Cleanup(front.Close)
	a := c.node("node-a", addrA, front.URL)
	c.node("node-b", addrB, front.URL)
	for _, addr := range []string{addrA, addrB} {
		u, _ := url.Parse("http://" + addr)
		lb.nodes = append(lb.nodes, u)
	}
	cl := &client{base: front.URL, key: c.apiKey, http: &http.Client{Timeout: 10 * time.Second}}
	sink := &webhookSink{seen: map[string]int{}}
	registerWebhook(t, cl, sink)
	acked := stream(t, cl, c.sandboxURL, 60, a.kill)
	checkTruth(t, cl, acked, nil, sink)
}
