package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/apikey"
	"github.com/hutong-pay/hutong/internal/app"
	"github.com/hutong-pay/hutong/internal/config"
	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/jobs"
	"github.com/hutong-pay/hutong/internal/payment"
	"github.com/hutong-pay/hutong/internal/sandbox"
	"github.com/hutong-pay/hutong/internal/store/pgtest"
	"github.com/hutong-pay/hutong/internal/webhook"
)

// The rules of truthful payment state (issue #5), proven against the real sandboxes through a
// real node (its HTTP API, its River jobs, its store) on SQLite and on PostgreSQL.

func TestTruthfulStateSQLite(t *testing.T) {
	runTruthfulState(t, func(testing.TB) string { return "" })
}

func TestTruthfulStatePostgres(t *testing.T) { runTruthfulState(t, postgresURL) }

// runTruthfulState runs the rules on two nodes, each with its own database (databaseURL returns
// "" for SQLite) and its own sandbox: nodes sharing a database must share the wallets too.
func runTruthfulState(t *testing.T, databaseURL func(testing.TB) string) {
	fast := startNode(t, nodeSetup{databaseURL: databaseURL(t), schedule: jobs.Schedule{
		FirstPoll: time.Second, FirstRefundPoll: time.Second, MinPoll: time.Second, MaxPoll: 2 * time.Second}})
	t.Run("LostNotificationRecoveredByPolling", func(t *testing.T) { testLostNotification(t, fast) })
	t.Run("DuplicatedAndForgedNotificationsApplyOnce", func(t *testing.T) { testDuplicatedAndForged(t, fast) })
	t.Run("WebhookDeliveredSignedAtLeastOnce", func(t *testing.T) { testWebhookDelivered(t, fast) })
	t.Run("Webhook410DisablesTheEndpoint", func(t *testing.T) { testWebhookGone(t, fast) })
	t.Run("RefundFollowedByPolling", func(t *testing.T) { testRefundByPolling(t, fast) })
	t.Run("EveryPaymentInTheWalletsTrueState", func(t *testing.T) { fast.checkTruth(t) })
	t.Run("WebhookQueueDrains", func(t *testing.T) { fast.waitDrained(t, "webhook_fanout", "webhook_deliver") })

	// Without early polls, only the expiry job can find out what happened at the wallet.
	slow := startNode(t, nodeSetup{databaseURL: databaseURL(t), schedule: jobs.Schedule{FirstPoll: time.Hour, MinPoll: time.Hour}})
	t.Run("ExpiryClosesAtTheWalletThenCancels", func(t *testing.T) { testExpiry(t, slow) })
	t.Run("PaidBeforeExpirySucceeds", func(t *testing.T) { testPaidBeforeExpiry(t, slow) })
	t.Run("EveryPaymentInTheWalletsTrueStateAfterExpiry", func(t *testing.T) { slow.checkTruth(t) })
}

// postgresURL returns a PostgreSQL URL with a fresh schema for this test (see pgtest).
func postgresURL(t testing.TB) string { return pgtest.FreshSchema(t) }

type nodeSetup struct {
	databaseURL string // "" for SQLite
	schedule    jobs.Schedule
	publicURL   string // where wallets send notifications; default the node itself
	// manualJobs serves the node without starting its jobs: the test calls StartJobs.
	manualJobs bool
	quiet      bool // log warnings only
}

// stateNode is a gateway node wired to its own wallet sandbox, both on loopback.
type stateNode struct {
	node                   *app.Node
	gatewayURL, sandboxURL string
	apiKey, merchantID     string
	logs                   *lockedBuffer

	mu       sync.Mutex
	payments []string // every payment the tests created, for the truth check
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// tail returns the last n bytes of the log without its request lines.
func (l *lockedBuffer) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var keep []string
	for _, line := range strings.Split(l.b.String(), "\n") {
		if !strings.Contains(line, `msg="http request"`) {
			keep = append(keep, line)
		}
	}
	s := strings.Join(keep, "\n")
	return s[max(0, len(s)-n):]
}

func startNode(t testing.TB, setup nodeSetup) *stateNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &stateNode{gatewayURL: app.BaseURL(gln), sandboxURL: app.BaseURL(sln), logs: &lockedBuffer{}}
	level := slog.LevelInfo
	if setup.quiet {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: level}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- node and sandbox log (tail) ---\n%s", s.logs.tail(8000))
		}
	})

	dir := t.TempDir()
	sb, err := sandbox.Open(ctx, sandbox.Config{DataDir: filepath.Join(dir, "sandbox"), BaseURL: s.sandboxURL, TimeScale: 0.001, Logger: log.With("component", "sandbox")})
	if err != nil {
		t.Fatal(err)
	}
	sb.Start(ctx)
	sbDone := make(chan error, 1)
	go func() { sbDone <- app.Serve(ctx, sln, sb.Handler(), log) }()

	creds := sb.Credentials()
	cfg := config.Default()
	cfg.PublicURL, cfg.DataDir, cfg.DatabaseURL = s.gatewayURL, filepath.Join(dir, "gateway"), setup.databaseURL
	if setup.publicURL != "" {
		cfg.PublicURL = setup.publicURL
	}
	cfg.WeChatPay = &config.WeChatPay{
		MchID: creds.WeChatPay.MchID, AppID: creds.WeChatPay.AppID, AppSecret: creds.WeChatPay.AppSecret,
		MerchantSerialNo: creds.WeChatPay.MerchantSerialNo, MerchantPrivateKey: creds.WeChatPay.MerchantPrivateKey,
		APIv3Key: creds.WeChatPay.APIv3Key, PublicKeyID: creds.WeChatPay.PublicKeyID, PublicKey: creds.WeChatPay.PublicKey,
		Mode: "public_key", BaseURL: s.sandboxURL,
	}
	cfg.Alipay = &config.Alipay{AppID: creds.Alipay.AppID, AppPrivateKey: creds.Alipay.AppPrivateKey,
		AlipayPublicKey: creds.Alipay.AlipayPublicKey, GatewayURL: s.sandboxURL + "/gateway.do"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s.node, err = app.NewNode(ctx, app.NodeOptions{
		Config: cfg, Logger: log.With("component", "gateway"), Migrate: true, MinPaymentTTL: time.Second,
		Jobs: app.JobOptions{Schedule: setup.schedule, FetchPollInterval: 100 * time.Millisecond, StopTimeout: 5 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	m, err := app.SeedMerchant(ctx, s.node.Store, payment.NewID("mer"), "Tea House", now)
	if err != nil {
		t.Fatal(err)
	}
	secret, key := apikey.Generate(false)
	key.MerchantID, key.CreatedAt = m.ID, now
	if err := s.node.Store.CreateAPIKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	s.apiKey, s.merchantID = secret, m.ID
	runDone := make(chan error, 1)
	if setup.manualJobs {
		go func() { runDone <- app.Serve(ctx, gln, s.node.Handler(), log) }()
	} else {
		go func() { runDone <- s.node.Run(ctx, gln) }()
	}
	t.Cleanup(func() {
		cancel()
		if err := <-runDone; err != nil {
			t.Errorf("node stopped with %v", err)
		}
		if err := s.node.Close(); err != nil {
			t.Errorf("close node: %v", err)
		}
		<-sbDone
		sb.Close()
	})
	return s
}

// call sends a request (with the merchant's key to the gateway) and decodes the JSON answer.
func (s *stateNode) call(t testing.TB, method, url string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	if strings.HasPrefix(url, s.gatewayURL) {
		req.Header.Set("Authorization", "Bearer "+s.apiKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, url, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

func (s *stateNode) faults(t *testing.T, notifications map[string]any) {
	t.Helper()
	if code := s.call(t, "PUT", s.sandboxURL+"/sandbox/faults", map[string]any{"notifications": notifications}, nil); code/100 != 2 {
		t.Fatalf("set faults: %d", code)
	}
}

func (s *stateNode) create(t *testing.T, provider string, extra map[string]any) apiPayment {
	t.Helper()
	body := map[string]any{"amount": 100 + len(s.payments), "description": "Longjing tea", "reference": "order-" + payment.RandomString(6),
		"provider": provider, "channel": "qr"}
	for k, v := range extra {
		body[k] = v
	}
	var p apiPayment
	if code := s.call(t, "POST", s.gatewayURL+"/v1/payments", body, &p); code != 200 {
		t.Fatalf("create payment: %d %+v", code, p)
	}
	s.mu.Lock()
	s.payments = append(s.payments, p.ID)
	s.mu.Unlock()
	return p
}

func walletPath(provider string) string {
	return map[string]string{"wechatpay": "/sandbox/wechatpay/transactions/", "alipay": "/sandbox/alipay/trades/"}[provider]
}

func (s *stateNode) pay(t *testing.T, provider, outTradeNo string) {
	t.Helper()
	if code := s.call(t, "POST", s.sandboxURL+walletPath(provider)+outTradeNo+"/pay", nil, nil); code/100 != 2 {
		t.Fatalf("pay %s at %s: %d", outTradeNo, provider, code)
	}
}

// waitFor polls the payment until cond holds or the deadline passes. River moves scheduled jobs
// every 5 s, so a job due now may wait that long.
func (s *stateNode) waitFor(t *testing.T, id string, within time.Duration, what string, cond func(apiPayment) bool) apiPayment {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var p apiPayment
		s.call(t, "GET", s.gatewayURL+"/v1/payments/"+id, nil, &p)
		if cond(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("payment %s is %s after %s, want %s", id, p.Status, within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *stateNode) waitStatus(t *testing.T, id, want string, within time.Duration) apiPayment {
	t.Helper()
	return s.waitFor(t, id, within, want, func(p apiPayment) bool { return p.Status == want })
}

type apiEvent struct {
	ID   string          `json:"id"`
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// events returns the merchant's events about object id, newest first.
func (s *stateNode) events(t *testing.T, id string) []apiEvent {
	t.Helper()
	var out []apiEvent
	after := ""
	for {
		var page struct {
			Data    []apiEvent `json:"data"`
			HasMore bool       `json:"has_more"`
		}
		url := s.gatewayURL + "/v1/events?limit=100"
		if after != "" {
			url += "&starting_after=" + after
		}
		if code := s.call(t, "GET", url, nil, &page); code != 200 {
			t.Fatalf("list events: %d", code)
		}
		for _, e := range page.Data {
			var obj struct{ ID string }
			_ = json.Unmarshal(e.Data, &obj)
			if obj.ID == id {
				out = append(out, e)
			}
		}
		if !page.HasMore {
			return out
		}
		after = page.Data[len(page.Data)-1].ID
	}
}

// wantEvents fails unless the events about id are exactly types, newest first.
func (s *stateNode) wantEvents(t *testing.T, id string, types ...string) {
	t.Helper()
	var got []string
	for _, e := range s.events(t, id) {
		got = append(got, e.Type)
	}
	if fmt.Sprint(got) != fmt.Sprint(types) {
		t.Fatalf("events of %s: %v, want %v", id, got, types)
	}
}

// checkTruth waits until every payment the tests created is, at the gateway, what its wallet says
// it is, and fails naming the payments that are not.
func (s *stateNode) checkTruth(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	s.mu.Lock()
	ids := append([]string(nil), s.payments...)
	s.mu.Unlock()
	if len(ids) == 0 {
		t.Fatal("no payments to check")
	}
	want := map[gateway.WalletState]string{
		gateway.WalletPaid: "succeeded", gateway.WalletClosed: "canceled", gateway.WalletFailed: "failed",
		gateway.WalletPending: "pending", gateway.WalletNotFound: "pending",
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var wrong []string
		for _, id := range ids {
			p, err := s.node.Store.Payment(ctx, "", id)
			if err != nil {
				t.Fatal(err)
			}
			prov, _ := s.node.Service.Provider(p.Provider)
			wp, err := prov.QueryPayment(ctx, p.ProviderRef.OutTradeNo)
			if err != nil {
				t.Fatalf("ask %s about %s: %v", p.Provider, id, err)
			}
			if want[wp.State] != string(p.Status) {
				wrong = append(wrong, fmt.Sprintf("%s (%s) is %s, the wallet says %s", id, p.Provider, p.Status, wp.State))
			}
		}
		if len(wrong) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("payments not in the wallet's true state:\n%s", strings.Join(wrong, "\n"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func testLostNotification(t *testing.T, s *stateNode) {
	s.faults(t, map[string]any{"drop_rate": 1})
	defer s.faults(t, map[string]any{})
	// A young Alipay QR nobody scanned is unknown to the wallet: it stays pending while polled.
	unscanned := s.create(t, "alipay", nil)
	for _, provider := range []string{"wechatpay", "alipay"} {
		p := s.create(t, provider, nil)
		s.pay(t, provider, p.ProviderRef.OutTradeNo)
		got := s.waitStatus(t, p.ID, "succeeded", 30*time.Second)
		if got.ProviderRef.TransactionID == "" && got.ProviderRef.TradeNo == "" {
			t.Fatalf("%s: succeeded without the wallet's transaction id: %+v", provider, got.ProviderRef)
		}
		s.wantEvents(t, p.ID, "payment.succeeded")
	}
	if p := s.waitStatus(t, unscanned.ID, "pending", time.Second); p.CancelReason != "" {
		t.Fatalf("unscanned QR: %+v", p)
	}
}

func (s *stateNode) rejected(t *testing.T, kind string) int {
	t.Helper()
	log, ok := s.node.Store.(interface {
		ListRejected(ctx context.Context, limit int) ([]*gateway.RejectedNotification, error)
	})
	if !ok {
		t.Fatalf("the %T store keeps no rejected notifications", s.node.Store)
	}
	list, err := log.ListRejected(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range list {
		if r.Kind == kind {
			n++
		}
	}
	return n
}

func (s *stateNode) metric(t *testing.T, prefix string) string {
	t.Helper()
	resp, err := http.Get(s.gatewayURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, prefix) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

func testDuplicatedAndForged(t *testing.T, s *stateNode) {
	s.faults(t, map[string]any{"duplicate_rate": 1, "forged_rate": 1})
	defer s.faults(t, map[string]any{})
	// Alipay calls them forged, WeChat Pay bad_signature.
	forgedBefore := s.rejected(t, "forged") + s.rejected(t, "bad_signature")
	for _, provider := range []string{"wechatpay", "alipay"} {
		p := s.create(t, provider, nil)
		s.pay(t, provider, p.ProviderRef.OutTradeNo)
		s.waitStatus(t, p.ID, "succeeded", 10*time.Second)
		// The duplicates and the forged probes arrive around the real one; give stragglers time.
		time.Sleep(500 * time.Millisecond)
		s.wantEvents(t, p.ID, "payment.succeeded")
	}
	if n := s.rejected(t, "forged") + s.rejected(t, "bad_signature") - forgedBefore; n < 2 {
		t.Fatalf("%d forged notifications recorded, want one per wallet at least", n)
	}
	m := s.metric(t, "hutong_rejected_notifications_total")
	for provider, kind := range map[string]string{"wechatpay": "bad_signature", "alipay": "forged"} {
		if !strings.Contains(m, `kind="`+kind+`",provider="`+provider+`"`) {
			t.Fatalf("no forged %s notification counted:\n%s", provider, m)
		}
	}
}

// receiver is a merchant's webhook endpoint that verifies every delivery it gets.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	status []int // answers, in order; the last one repeats
	got    []delivery
	secret string
}

type delivery struct {
	id, typ  string
	objectID string
	verified error
}

func newReceiver(t *testing.T, status ...int) *receiver {
	r := &receiver{t: t, status: status}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		d := delivery{id: req.Header.Get("webhook-id")}
		key, err := webhook.ParseSecret(r.secret)
		if err == nil {
			err = webhook.Verify([][]byte{key}, req.Header, body, time.Now())
		}
		d.verified = err
		var payload struct {
			Type string
			Data struct{ ID string }
		}
		_ = json.Unmarshal(body, &payload)
		d.typ, d.objectID = payload.Type, payload.Data.ID
		code := r.status[min(len(r.got), len(r.status)-1)]
		r.got = append(r.got, d)
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) deliveries(objectID string) []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []delivery
	for _, d := range r.got {
		if objectID == "" || d.objectID == objectID {
			out = append(out, d)
		}
	}
	return out
}

type apiEndpoint struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
	Status string `json:"status"`
}

func (s *stateNode) endpoint(t *testing.T, r *receiver, events ...string) apiEndpoint {
	t.Helper()
	var ep apiEndpoint
	body := map[string]any{"url": r.srv.URL + "/hooks"}
	if len(events) > 0 {
		body["events"] = events
	}
	if code := s.call(t, "POST", s.gatewayURL+"/v1/webhook_endpoints", body, &ep); code != 200 || ep.Secret == "" {
		t.Fatalf("create webhook endpoint: %d %+v", code, ep)
	}
	r.mu.Lock()
	r.secret = ep.Secret
	r.mu.Unlock()
	return ep
}

func testWebhookDelivered(t *testing.T, s *stateNode) {
	// The receiver fails the first attempt: the delivery is retried (about 5 s later) and then
	// acknowledged, signed the same way each time.
	r := newReceiver(t, http.StatusInternalServerError, http.StatusNoContent)
	ep := s.endpoint(t, r, "payment.succeeded")
	p := s.create(t, "wechatpay", nil)
	s.pay(t, "wechatpay", p.ProviderRef.OutTradeNo)
	s.waitStatus(t, p.ID, "succeeded", 10*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for len(r.deliveries(p.ID)) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries of %s within 30s, want a failed one and its retry", len(r.deliveries(p.ID)), p.ID)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ds := r.deliveries(p.ID)
	evts := s.events(t, p.ID)
	if len(evts) != 1 {
		t.Fatalf("%d events of %s, want 1", len(evts), p.ID)
	}
	for _, d := range ds {
		if d.verified != nil || d.typ != "payment.succeeded" || d.id != evts[0].ID {
			t.Fatalf("delivery %+v, want payment.succeeded %s signed with the endpoint's secret", d, evts[0].ID)
		}
	}
	// The attempts are listed under the event, the failed one first. Each is recorded once the
	// receiver has answered, so the last may show a moment after the receiver saw it.
	var attempts struct {
		Data []struct {
			WebhookEndpoint string `json:"webhook_endpoint"`
			Status          string `json:"status"`
			StatusCode      int    `json:"status_code"`
		} `json:"data"`
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		s.call(t, "GET", s.gatewayURL+"/v1/events/"+evts[0].ID+"/deliveries", nil, &attempts)
		if len(attempts.Data) >= 2 && attempts.Data[0].StatusCode == 500 && attempts.Data[len(attempts.Data)-1].Status == "succeeded" &&
			attempts.Data[0].WebhookEndpoint == ep.ID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("attempts: %+v, want the failed one then the delivered one", attempts.Data)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Events of other types are not sent to an endpoint that did not ask for them.
	c := s.create(t, "wechatpay", nil)
	var canceled apiPayment
	if code := s.call(t, "POST", s.gatewayURL+"/v1/payments/"+c.ID+"/cancel", nil, &canceled); code != 200 {
		t.Fatalf("cancel: %d", code)
	}
	time.Sleep(time.Second)
	if n := len(r.deliveries(c.ID)); n != 0 {
		t.Fatalf("%d payment.canceled deliveries to an endpoint subscribed to payment.succeeded only", n)
	}
	if code := s.call(t, "DELETE", s.gatewayURL+"/v1/webhook_endpoints/"+ep.ID, nil, nil); code != 200 {
		t.Fatalf("delete endpoint: %d", code)
	}
}

func testWebhookGone(t *testing.T, s *stateNode) {
	r := newReceiver(t, http.StatusGone)
	ep := s.endpoint(t, r)
	p := s.create(t, "alipay", nil)
	s.pay(t, "alipay", p.ProviderRef.OutTradeNo)
	s.waitStatus(t, p.ID, "succeeded", 10*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got apiEndpoint
		s.call(t, "GET", s.gatewayURL+"/v1/webhook_endpoints/"+ep.ID, nil, &got)
		if got.Status == "disabled" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("endpoint answering 410 is %q, want disabled", got.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Nothing more goes to it.
	q := s.create(t, "alipay", nil)
	s.pay(t, "alipay", q.ProviderRef.OutTradeNo)
	s.waitStatus(t, q.ID, "succeeded", 10*time.Second)
	time.Sleep(time.Second)
	if n := len(r.deliveries("")); n != 1 {
		t.Fatalf("the 410 endpoint got %d deliveries, want 1", n)
	}
}

func testRefundByPolling(t *testing.T, s *stateNode) {
	p := s.create(t, "wechatpay", nil)
	s.pay(t, "wechatpay", p.ProviderRef.OutTradeNo)
	s.waitStatus(t, p.ID, "succeeded", 10*time.Second)
	s.faults(t, map[string]any{"drop_rate": 1})
	defer s.faults(t, map[string]any{})
	var r struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if code := s.call(t, "POST", s.gatewayURL+"/v1/refunds", map[string]any{"payment_id": p.ID, "amount": 40}, &r); code != 200 {
		t.Fatalf("refund: %d %+v", code, r)
	}
	if r.Status != "pending" {
		t.Fatalf("WeChat Pay refund is %s at first, want pending (the wallet settles it later)", r.Status)
	}
	deadline := time.Now().Add(30 * time.Second)
	for r.Status != "succeeded" {
		if time.Now().After(deadline) {
			t.Fatalf("refund %s stayed %s with its notification dropped", r.ID, r.Status)
		}
		time.Sleep(100 * time.Millisecond)
		s.call(t, "GET", s.gatewayURL+"/v1/refunds/"+r.ID, nil, &r)
	}
	s.wantEvents(t, r.ID, "refund.succeeded")
}

// expiresSoon is an expires_at two to three seconds away, within the test node's minimum of 1 s.
func expiresSoon() string { return time.Now().Add(3 * time.Second).UTC().Format(time.RFC3339) }

func testExpiry(t *testing.T, s *stateNode) {
	for _, provider := range []string{"wechatpay", "alipay"} {
		p := s.create(t, provider, map[string]any{"expires_at": expiresSoon()})
		if provider == "alipay" { // the trade exists at Alipay once scanned
			s.call(t, "POST", s.sandboxURL+"/sandbox/alipay/trades/"+p.ProviderRef.OutTradeNo+"/scan", nil, nil)
		}
		got := s.waitStatus(t, p.ID, "canceled", 30*time.Second)
		if got.CancelReason != payment.CancelReasonExpired {
			t.Fatalf("%s: cancel_reason %q, want expired", provider, got.CancelReason)
		}
		// Closed at the wallet: the buyer can no longer pay.
		if code := s.call(t, "POST", s.sandboxURL+walletPath(provider)+p.ProviderRef.OutTradeNo+"/pay", nil, nil); code != 409 {
			t.Fatalf("%s: paying an expired payment at the wallet: %d, want 409", provider, code)
		}
		s.wantEvents(t, p.ID, "payment.canceled")
	}
}

func testPaidBeforeExpiry(t *testing.T, s *stateNode) {
	// The buyer pays just before expiry and the notification is lost: closing the order at the
	// wallet fails because it is paid, and the payment succeeds instead of being canceled.
	s.faults(t, map[string]any{"drop_rate": 1})
	defer s.faults(t, map[string]any{})
	for _, provider := range []string{"wechatpay", "alipay"} {
		p := s.create(t, provider, map[string]any{"expires_at": expiresSoon()})
		s.pay(t, provider, p.ProviderRef.OutTradeNo)
		got := s.waitFor(t, p.ID, 30*time.Second, "final", func(p apiPayment) bool { return p.Status != "pending" })
		if got.Status != "succeeded" {
			t.Fatalf("%s: paid before expiry, then %s (%s)", provider, got.Status, got.CancelReason)
		}
		s.wantEvents(t, p.ID, "payment.succeeded")
	}
}

// waitDrained waits until no job of kinds is left to run: every delivery has ended, delivered or
// given up.
func (s *stateNode) waitDrained(t *testing.T, kinds ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, jobs, err := s.node.Queue.Unfinished(context.Background(), kinds...)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, j := range jobs {
				t.Logf("unfinished: %s %s attempt %d %s", j.Kind, j.State, j.Attempt, j.EncodedArgs)
			}
			t.Fatalf("%d %v jobs still to run", n, kinds)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
