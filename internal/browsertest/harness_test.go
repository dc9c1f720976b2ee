package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/device"

	"github.com/hutong-pay/hutong/internal/app"
	"github.com/hutong-pay/hutong/internal/app/apptest"
)

// Devices the buyer holds. The wallets' in-app browsers are told apart by their User-Agent
// marks, as the checkout does it.
const (
	iPhoneUA    = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
	iPhoneAppUA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
)

var (
	desktop = device.Info{Name: "desktop", Width: 1280, Height: 900, Scale: 1,
		UserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"}
	iPhone       = device.Info{Name: "iphone", Width: 393, Height: 659, Scale: 3, Mobile: true, Touch: true, UserAgent: iPhoneUA}
	insideWeChat = device.Info{Name: "wechat", Width: 393, Height: 659, Scale: 3, Mobile: true, Touch: true,
		UserAgent: iPhoneAppUA + " MicroMessenger/8.0.50(0x1800323c) NetType/WIFI Language/zh_CN"}
	insideAlipay = device.Info{Name: "alipay", Width: 393, Height: 659, Scale: 3, Mobile: true, Touch: true,
		UserAgent: iPhoneAppUA + " AlipayChannelId/5136 AliApp(AP/10.6.10.6000) AlipayClient/10.6.10.6000 Language/zh-Hans"}
)

// waitFor bounds any single wait on a page; a whole test stays well under 30 s.
const waitFor = 15 * time.Second

// chromium finds the browser, or fails (or skips, when asked to) the test.
func chromium(t *testing.T) string {
	t.Helper()
	if os.Getenv("HUTONG_SKIP_BROWSER") == "1" {
		t.Skip("HUTONG_SKIP_BROWSER=1: browser tests not run")
	}
	if p := os.Getenv("HUTONG_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("HUTONG_CHROMIUM=%s: %v", p, err)
		}
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium found: run `bash scripts/test.sh` (it installs Debian's chromium) or set HUTONG_CHROMIUM; " +
		"HUTONG_SKIP_BROWSER=1 leaves these tests out")
	return ""
}

// stack is one test's world: the demo (gateway, checkout, shop, sandboxes) and a browser.
type stack struct {
	t       *testing.T
	info    app.DemoInfo
	browser context.Context
	logs    *lockedBuffer // the demo's own log lines, shown when the test fails
}

// start runs `hutong demo` in-process on loopback ports with its data in t.TempDir(), and one
// Chromium for the test.
func start(t *testing.T) *stack {
	t.Helper()
	path := chromium(t)
	s := &stack{t: t, logs: &lockedBuffer{}}
	s.info = startDemo(t, s.logs)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(int(desktop.Width), int(desktop.Height)),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	if err := chromedp.Do(browser); err != nil { // starts Chromium, with no timeout on its life
		t.Fatalf("start chromium %s: %v", path, err)
	}
	s.browser = browser
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("demo log (last 8 KiB):\n%s", s.logs.tail(8<<10))
		}
	})
	return s
}

func startDemo(t *testing.T, logs io.Writer) app.DemoInfo {
	t.Helper()
	return apptest.StartDemo(t, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
}

// tab is one browser tab on one device, with its own cookies (a separate browser context), so
// that the desktop and the phone scanning its QR code are two different buyers' devices.
type tab struct {
	t    *testing.T
	name string
	ctx  context.Context
	mu   sync.Mutex
	seen []string // console messages, exceptions and browser log entries
}

func (s *stack) tab(name string, dev device.Info) *tab {
	s.t.Helper()
	ctx, cancel := chromedp.NewContext(s.browser, chromedp.WithNewBrowserContext())
	tb := &tab{t: s.t, name: name, ctx: ctx}
	s.t.Cleanup(cancel)
	if err := chromedp.Listen(ctx, tb.record); err != nil {
		s.t.Fatalf("%s: listen: %v", name, err)
	}
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		s.t.Fatalf("%s: enable log: %v", name, err)
	}
	if err := chromedp.Do(ctx, chromedp.Emulate(dev)); err != nil {
		s.t.Fatalf("%s: emulate %s: %v", name, dev.Name, err)
	}
	// Runs before the tab closes (cleanups run last-registered first).
	s.t.Cleanup(tb.saveOnFailure)
	return tb
}

// record keeps what the page said; it runs on chromedp's reading goroutine, so it only appends.
func (tb *tab) record(ev any) {
	var line string
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		var parts []string
		for _, a := range ev.Args {
			if a.Value != nil {
				parts = append(parts, string(a.Value))
			} else {
				parts = append(parts, a.Description)
			}
		}
		line = "console." + string(ev.Type) + ": " + strings.Join(parts, " ")
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		line = "exception: " + d.Text
		if d.Exception != nil {
			line += " " + d.Exception.Description
		}
		line += fmt.Sprintf(" (%s:%d)", d.URL, d.LineNumber+1)
	case *cdplog.EventEntryAdded:
		line = fmt.Sprintf("log %s/%s: %s %s", ev.Entry.Source, ev.Entry.Level, ev.Entry.Text, ev.Entry.URL)
	default:
		return
	}
	tb.mu.Lock()
	tb.seen = append(tb.seen, line)
	tb.mu.Unlock()
}

var (
	artifactsOnce sync.Once
	artifactsDir  string
	artifactsErr  error
)

// artifacts is where failure screenshots go: $HUTONG_ARTIFACTS, else one temporary folder per
// run (t.TempDir would be deleted with the test).
func artifacts() (string, error) {
	artifactsOnce.Do(func() {
		if d := os.Getenv("HUTONG_ARTIFACTS"); d != "" {
			artifactsDir, artifactsErr = d, os.MkdirAll(d, 0o755)
			return
		}
		artifactsDir, artifactsErr = os.MkdirTemp("", "hutong-browser-artifacts-")
	})
	return artifactsDir, artifactsErr
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// saveOnFailure screenshots the tab and logs its address and what its pages said.
func (tb *tab) saveOnFailure() {
	if !tb.t.Failed() {
		return
	}
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	tb.mu.Lock()
	seen := strings.Join(tb.seen, "\n  ")
	tb.mu.Unlock()
	tb.t.Logf("tab %s was at %s; the pages said:\n  %s", tb.name, loc, seen)
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil { // a page caught mid-navigation has no size yet: once more
		time.Sleep(500 * time.Millisecond)
		png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
	}
	if err != nil {
		tb.t.Logf("tab %s: no screenshot: %v", tb.name, err)
		return
	}
	dir, err := artifacts()
	if err != nil {
		tb.t.Logf("tab %s: no artifacts folder: %v", tb.name, err)
		return
	}
	file := filepath.Join(dir, unsafeName.ReplaceAllString(tb.t.Name()+"-"+tb.name, "_")+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		tb.t.Logf("tab %s: save screenshot: %v", tb.name, err)
		return
	}
	tb.t.Logf("tab %s: screenshot saved to %s", tb.name, file)
}

// do runs actions on the tab within waitFor, failing the test with what was being done.
func (tb *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitFor)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %s: %v", tb.name, what, err)
	}
}

func run[T any](tb *tab, what string, a chromedp.Action[T]) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitFor)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tb.t.Fatalf("%s: %s: %v", tb.name, what, err)
	}
	return v
}

func (tb *tab) open(url string) {
	tb.t.Helper()
	tb.do("open "+url, chromedp.Navigate(url))
}

// click waits for sel to be visible and clicks it, as a person would.
func (tb *tab) click(sel string) {
	tb.t.Helper()
	tb.do("click "+sel, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
}

func (tb *tab) waitVisible(sel string) {
	tb.t.Helper()
	tb.do("wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
}

func (tb *tab) text(sel string) string {
	tb.t.Helper()
	return strings.TrimSpace(run(tb, "read "+sel, chromedp.Text(chromedp.CSS(sel))))
}

func (tb *tab) attr(sel, name string) string {
	tb.t.Helper()
	r := run(tb, "read "+sel+"["+name+"]", chromedp.AttributeValue(chromedp.CSS(sel), name))
	if !r.Exists {
		tb.t.Fatalf("%s: %s has no %s attribute", tb.name, sel, name)
	}
	return r.Value
}

func (tb *tab) location() string {
	tb.t.Helper()
	return run(tb, "read location", chromedp.Location())
}

// waitLocation waits until the tab's address starts with prefix and its document has loaded
// (its deferred scripts have run, so that clicks reach their handlers). It asks again and again from Go: a script polling inside the page would die with the
// page it is waiting to leave.
func (tb *tab) waitLocation(prefix string) string {
	tb.t.Helper()
	deadline := time.Now().Add(waitFor)
	last := ""
	for {
		ctx, cancel := context.WithTimeout(tb.ctx, 2*time.Second)
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err == nil {
			last = loc
			if strings.HasPrefix(loc, prefix) {
				state, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.readyState`))
				if err == nil && state == "complete" {
					cancel()
					return loc
				}
			}
		}
		cancel()
		if time.Now().After(deadline) {
			tb.t.Fatalf("%s: still at %s after %s, want %s…", tb.name, last, waitFor, prefix)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// payment is the merchant API's view of a payment, as the tests check it.
type payment struct {
	ID          string         `json:"id"`
	Status      string         `json:"status"`
	Amount      int64          `json:"amount"`
	Reference   string         `json:"reference"`
	Provider    string         `json:"provider"`
	Channel     string         `json:"channel"`
	CheckoutURL string         `json:"checkout_url"`
	NextAction  map[string]any `json:"next_action"`
	ProviderRef struct {
		OutTradeNo    string `json:"out_trade_no"`
		TransactionID string `json:"transaction_id"`
		TradeNo       string `json:"trade_no"`
	} `json:"provider_ref"`
}

// call sends a request (with the demo merchant's key to the gateway) and decodes a 2xx answer.
func (s *stack) call(method, url string, body, out any) int {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if strings.HasPrefix(url, s.info.GatewayURL+"/v1/") {
		req.Header.Set("Authorization", "Bearer "+s.info.APIKey)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 == 2 && out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatalf("%s %s: %v in %s", method, url, err, raw)
		}
	} else if resp.StatusCode/100 != 2 {
		s.t.Logf("%s %s: %d %s", method, url, resp.StatusCode, raw)
	}
	return resp.StatusCode
}

// createPayment creates a payment through the merchant API.
func (s *stack) createPayment(body map[string]any) payment {
	s.t.Helper()
	base := map[string]any{"amount": 1280, "currency": "CNY", "description": "碧螺春 Biluochun", "reference": "bt-" + s.t.Name()}
	for k, v := range body {
		base[k] = v
	}
	var p payment
	if code := s.call("POST", s.info.GatewayURL+"/v1/payments", base, &p); code != 200 {
		s.t.Fatalf("create payment: status %d", code)
	}
	if p.CheckoutURL == "" {
		s.t.Fatalf("payment %s has no checkout_url", p.ID)
	}
	return p
}

func (s *stack) payment(id string) payment {
	s.t.Helper()
	var p payment
	if code := s.call("GET", s.info.GatewayURL+"/v1/payments/"+id, nil, &p); code != 200 {
		s.t.Fatalf("get payment %s: status %d", id, code)
	}
	return p
}

// succeeded checks that the merchant API says the payment succeeded, by provider and channel.
func (s *stack) succeeded(id, provider, channel string) payment {
	s.t.Helper()
	p := s.payment(id)
	if p.Status != "succeeded" || p.Provider != provider || p.Channel != channel {
		s.t.Fatalf("payment %s: status %s via %s/%s, want succeeded via %s/%s", id, p.Status, p.Provider, p.Channel, provider, channel)
	}
	return p
}

// lockedBuffer is a log sink shared by the demo's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}

// pollTrue waits for a JavaScript expression to be true.
func pollTrue(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(waitFor))
}
