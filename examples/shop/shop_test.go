package shop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/examples/shop"
	"github.com/hutong-pay/hutong/internal/app"
)

// The shop is tested against a real Hutong: `hutong demo` in-process (gateway, checkout, both
// wallet sandboxes, SQLite), started once for the package. Each test runs its own shop on an
// httptest server that talks to that gateway over HTTP, as a merchant's site would.

var (
	demoOnce sync.Once
	demoInfo app.DemoInfo
	demoErr  error
	demoStop = func() {}
)

func TestMain(m *testing.M) {
	code := m.Run()
	demoStop()
	os.Exit(code)
}

func startDemo(t *testing.T) app.DemoInfo {
	t.Helper()
	demoOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hutong-shop-test-")
		if err != nil {
			demoErr = err
			return
		}
		gln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			demoErr = err
			return
		}
		sln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			demoErr = err
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		ready, done := make(chan app.DemoInfo, 1), make(chan error, 1)
		go func() {
			done <- app.RunDemo(ctx, app.DemoOptions{Listen: gln, SandboxListen: sln, DataDir: dir, TimeScale: 0.001,
				Logger: slog.New(slog.DiscardHandler), Ready: func(i app.DemoInfo) { ready <- i }})
		}()
		demoStop = func() {
			cancel()
			<-done
			os.RemoveAll(dir)
		}
		select {
		case demoInfo = <-ready:
		case demoErr = <-done:
		case <-time.After(60 * time.Second):
			demoErr = errors.New("demo did not start within 60s")
		}
	})
	if demoErr != nil {
		t.Fatalf("start hutong demo: %v", demoErr)
	}
	return demoInfo
}

// testShop runs a shop on its own server, against the demo's gateway unless apiBase is given.
func testShop(t *testing.T, info app.DemoInfo, apiBase string) (*shop.Shop, *httptest.Server) {
	t.Helper()
	if apiBase == "" {
		apiBase = info.GatewayURL
	}
	var s *shop.Shop
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	s = shop.New(shop.Config{APIBaseURL: apiBase, APIKey: info.APIKey, PublicURL: srv.URL})
	return s, srv
}

var noRedirects = &http.Client{
	Timeout:       20 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func send(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func get(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	return send(t, req)
}

// buy posts the buy form as a same-origin browser would and returns the redirect target.
func buy(t *testing.T, shopBase, sku string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", shopBase+"/shop/buy", strings.NewReader(url.Values{"sku": {sku}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return send(t, req)
}

// api calls the merchant API with the demo key.
func api(t *testing.T, info app.DemoInfo, method, path string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, info.GatewayURL+path, rd)
	req.Header.Set("Authorization", "Bearer "+info.APIKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, raw := send(t, req)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal([]byte(raw), out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
	}
	return resp.StatusCode
}

type apiPayment struct {
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	Amount      int64             `json:"amount"`
	Description string            `json:"description"`
	Reference   string            `json:"reference"`
	Provider    string            `json:"provider"`
	ReturnURL   string            `json:"return_url"`
	CheckoutURL string            `json:"checkout_url"`
	Metadata    map[string]string `json:"metadata"`
	ProviderRef struct {
		OutTradeNo string `json:"out_trade_no"`
	} `json:"provider_ref"`
}

var checkoutPath = regexp.MustCompile(`/checkout/(pay_[0-9A-Za-z]{24})$`)

// buyAndFind buys sku and returns the payment Hutong made for it.
func buyAndFind(t *testing.T, info app.DemoInfo, srv *httptest.Server, sku string) apiPayment {
	t.Helper()
	resp, body := buy(t, srv.URL, sku)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("buy %s: status %d %s", sku, resp.StatusCode, body)
	}
	loc := resp.Header.Get("Location")
	m := checkoutPath.FindStringSubmatch(loc)
	if m == nil || !strings.HasPrefix(loc, info.GatewayURL+"/checkout/") {
		t.Fatalf("buy %s redirected to %q, want the gateway's checkout", sku, loc)
	}
	var p apiPayment
	if code := api(t, info, "GET", "/v1/payments/"+m[1], nil, &p); code != 200 {
		t.Fatalf("get payment %s: %d", m[1], code)
	}
	if p.CheckoutURL != loc {
		t.Errorf("redirected to %s, payment's checkout_url is %s", loc, p.CheckoutURL)
	}
	return p
}

func waitStatus(t *testing.T, info app.DemoInfo, id, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var p apiPayment
		api(t, info, "GET", "/v1/payments/"+id, nil, &p)
		if p.Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("payment %s is %q, want %s", id, p.Status, want)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// payWithAlipayQR places the payment's order as the buyer choosing Alipay's QR code on the
// checkout would, then pays it at the Alipay sandbox as a scanning buyer.
func payWithAlipayQR(t *testing.T, info app.DemoInfo, p apiPayment) {
	t.Helper()
	req, _ := http.NewRequest("POST", p.CheckoutURL+"/choose", strings.NewReader(`{"provider":"alipay","channel":"qr"}`))
	req.Header.Set("Content-Type", "application/json")
	if resp, body := send(t, req); resp.StatusCode != 200 {
		t.Fatalf("choose alipay qr: %d %s", resp.StatusCode, body)
	}
	var placed apiPayment
	api(t, info, "GET", "/v1/payments/"+p.ID, nil, &placed)
	if placed.ProviderRef.OutTradeNo == "" {
		t.Fatalf("no out_trade_no after choosing: %+v", placed)
	}
	req, _ = http.NewRequest("POST", info.SandboxURL+"/sandbox/alipay/trades/"+placed.ProviderRef.OutTradeNo+"/pay", nil)
	if resp, body := send(t, req); resp.StatusCode/100 != 2 {
		t.Fatalf("pay at the alipay sandbox: %d %s", resp.StatusCode, body)
	}
	waitStatus(t, info, p.ID, "succeeded")
}

func orderStatus(t *testing.T, page string) string {
	t.Helper()
	m := regexp.MustCompile(`id="order-status"[^>]*data-status="([a-z_]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no #order-status in the order page:\n%s", page)
	}
	return m[1]
}

func TestDemoMountsTheShop(t *testing.T) {
	info := startDemo(t)
	if info.ShopURL != info.GatewayURL+"/shop/" {
		t.Errorf("ShopURL = %s", info.ShopURL)
	}
	resp, body := get(t, info.ShopURL)
	if resp.StatusCode != 200 || !strings.Contains(body, `id="buy-longjing"`) || !strings.Contains(body, "¥68.00") {
		t.Fatalf("GET %s: %d\n%s", info.ShopURL, resp.StatusCode, body)
	}
	// The gateway still answers everything else on the same listener.
	if resp, _ := get(t, info.GatewayURL+"/healthz"); resp.StatusCode != 200 {
		t.Errorf("healthz through the demo's mux: %d", resp.StatusCode)
	}
	if code := api(t, info, "GET", "/v1/payments?limit=1", nil, nil); code != 200 {
		t.Errorf("API through the demo's mux: %d", code)
	}
	// The demo's own shop buys through the gateway too.
	resp, _ = buy(t, info.GatewayURL, "tieguanyin")
	if resp.StatusCode != http.StatusSeeOther || !checkoutPath.MatchString(resp.Header.Get("Location")) {
		t.Errorf("buying in the demo's shop: %d → %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestBuyCreatesAPaymentForTheHostedCheckout(t *testing.T) {
	info := startDemo(t)
	s, srv := testShop(t, info, "")
	p := buyAndFind(t, info, srv, "puer")
	o, ok := s.Order(p.Reference)
	if !ok || o.PaymentID != p.ID {
		t.Fatalf("shop order for reference %q: %+v %v", p.Reference, o, ok)
	}
	want := apiPayment{Status: "pending", Amount: 12800, Description: "云南普洱 Yunnan Pu'er", Provider: "",
		ReturnURL: srv.URL + "/shop/orders/" + o.ID}
	if p.Status != want.Status || p.Amount != want.Amount || p.Description != want.Description || p.Provider != want.Provider || p.ReturnURL != want.ReturnURL {
		t.Errorf("payment = %+v\nwant status %s amount %d description %q no provider return_url %s",
			p, want.Status, want.Amount, want.Description, want.ReturnURL)
	}
	if p.Metadata["sku"] != "puer" {
		t.Errorf("metadata = %v", p.Metadata)
	}
	resp, page := get(t, srv.URL+"/shop/orders/"+o.ID)
	if resp.StatusCode != 200 || orderStatus(t, page) != "awaiting_payment" {
		t.Fatalf("order page: %d\n%s", resp.StatusCode, page)
	}
	for _, want := range []string{`id="pay-link"`, `href="` + p.CheckoutURL + `"`, `http-equiv="refresh"`, "¥128.00"} {
		if !strings.Contains(page, want) {
			t.Errorf("order page lacks %s", want)
		}
	}
	if _, index := get(t, srv.URL+"/shop/"); !strings.Contains(index, "/shop/orders/"+o.ID) {
		t.Errorf("the shop's front page does not list order %s", o.ID)
	}
}

func TestOrderPageReadsThePaymentFromHutong(t *testing.T) {
	info := startDemo(t)
	s, srv := testShop(t, info, "") // no webhook registered: the page's read is all the shop has
	p := buyAndFind(t, info, srv, "longjing")
	payWithAlipayQR(t, info, p)
	if o, _ := s.Order(p.Reference); o.State() != "awaiting_payment" {
		t.Fatalf("order is %s before anyone asked Hutong", o.State())
	}
	_, page := get(t, srv.URL+"/shop/orders/"+p.Reference)
	if got := orderStatus(t, page); got != "paid" {
		t.Fatalf("order page says %s, want paid", got)
	}
	if !strings.Contains(page, `data-source="api"`) || strings.Contains(page, `id="pay-link"`) || strings.Contains(page, "refresh") {
		t.Errorf("paid order page:\n%s", page)
	}

	// A payment the merchant cancels shows as canceled.
	p2 := buyAndFind(t, info, srv, "tieguanyin")
	if code := api(t, info, "POST", "/v1/payments/"+p2.ID+"/cancel", map[string]string{}, nil); code != 200 {
		t.Fatalf("cancel: %d", code)
	}
	if _, page := get(t, srv.URL+"/shop/orders/"+p2.Reference); orderStatus(t, page) != "canceled" {
		t.Errorf("canceled order page:\n%s", page)
	}
}

// TestBuyRetriesWithTheSameIdempotencyKey puts a proxy between the shop and Hutong that lets the
// first create-payment request through and then loses its answer. The shop retries with the same
// Idempotency-Key, Hutong replays the first answer, and there is still one payment for the order.
func TestBuyRetriesWithTheSameIdempotencyKey(t *testing.T) {
	info := startDemo(t)
	target, _ := url.Parse(info.GatewayURL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	var keys []string
	lost := false
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/v1/payments" {
			proxy.ServeHTTP(w, r)
			return
		}
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		loseThis := !lost
		lost = true
		mu.Unlock()
		if !loseThis {
			proxy.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		proxy.ServeHTTP(rec, r) // it reaches Hutong...
		if rec.Code != 200 {
			t.Errorf("first create through the proxy: %d %s", rec.Code, rec.Body)
		}
		http.Error(w, "upstream timed out", http.StatusBadGateway) // ...but the answer is lost
	}))
	t.Cleanup(front.Close)
	s, srv := testShop(t, info, front.URL)
	p := buyAndFind(t, info, srv, "puer")
	mu.Lock()
	defer mu.Unlock()
	if len(keys) != 2 || keys[0] == "" || keys[0] != keys[1] {
		t.Fatalf("Idempotency-Keys sent: %q, want the same key twice", keys)
	}
	var list struct {
		Data []apiPayment `json:"data"`
	}
	api(t, info, "GET", "/v1/payments?reference="+url.QueryEscape(p.Reference), nil, &list)
	if len(list.Data) != 1 || list.Data[0].ID != p.ID {
		t.Errorf("payments for order %s: %+v, want exactly %s", p.Reference, list.Data, p.ID)
	}
	if o, ok := s.Order(p.Reference); !ok || o.PaymentID != p.ID {
		t.Errorf("order %+v", o)
	}
}

func TestBuyWhenHutongIsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	_, srv := testShop(t, app.DemoInfo{APIKey: "sk_test_x"}, dead)
	resp, body := buy(t, srv.URL, "longjing")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "Nothing was charged") {
		t.Fatalf("buy with Hutong down: %d\n%s", resp.StatusCode, body)
	}
	if _, index := get(t, srv.URL+"/shop/"); strings.Contains(index, "/shop/orders/") {
		t.Errorf("a failed purchase left an order behind:\n%s", index)
	}
}

func TestShopRefusesBadRequests(t *testing.T) {
	_, srv := testShop(t, app.DemoInfo{APIKey: "sk_test_x"}, "http://127.0.0.1:1")
	if resp, _ := buy(t, srv.URL, "matcha"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown sku: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("POST", srv.URL+"/shop/buy", strings.NewReader("sku=puer"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if resp, _ := send(t, req); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site buy: %d, want 403", resp.StatusCode)
	}
	for _, path := range []string{"/shop/orders/T" + strings.Repeat("A", 20), "/shop/orders/%3Cscript%3E", "/shop/nowhere"} {
		resp, body := get(t, srv.URL+path)
		if resp.StatusCode != http.StatusNotFound || strings.Contains(body, "<script>") {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
	}
	req, _ = http.NewRequest("POST", srv.URL+"/shop/webhooks", strings.NewReader(`{"type":"payment.succeeded"}`))
	if resp, _ := send(t, req); resp.StatusCode/100 == 2 {
		t.Errorf("unsigned webhook before registration: %d", resp.StatusCode)
	}
}

// TestWebhookMarksOrderPaid is the whole webhook path: the shop registers its endpoint with
// Hutong, the buyer pays, and Hutong's signed payment.succeeded marks the order paid without
// anyone opening the order page.
func TestWebhookMarksOrderPaid(t *testing.T) {
	info := startDemo(t)
	s, srv := testShop(t, info, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.RegisterWebhook(ctx); err != nil {
		t.Fatalf("register the shop's webhook endpoint: %v", err)
	}
	if !s.WebhookReady() {
		t.Fatal("registered but not ready")
	}
	p := buyAndFind(t, info, srv, "tieguanyin")
	payWithAlipayQR(t, info, p)
	deadline := time.Now().Add(15 * time.Second)
	for {
		o, _ := s.Order(p.Reference)
		if o.State() == "paid" {
			if o.Source != "webhook" {
				t.Fatalf("order paid via %q, want webhook", o.Source)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no webhook marked order %s paid within 15s (payment %s succeeded)", p.Reference, p.ID)
		}
		time.Sleep(25 * time.Millisecond)
	}
	// Re-registering (a restart) re-keys the same endpoint instead of adding one.
	if err := s.RegisterWebhook(ctx); err != nil {
		t.Fatal(err)
	}
	var list struct {
		Data []struct{ URL string } `json:"data"`
	}
	api(t, info, "GET", "/v1/webhook_endpoints", nil, &list)
	n := 0
	for _, e := range list.Data {
		if e.URL == s.WebhookURL() {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d endpoints for %s, want 1", n, s.WebhookURL())
	}
}
