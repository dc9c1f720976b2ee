package checkout

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/fakewallet"
	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
	"github.com/hutong-pay/hutong/internal/store/sqlite"
)

// User-Agents of the environments the checkout tells apart, as the real clients send them.
const (
	uaWeChatIOS     = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.49(0x18003129) NetType/WIFI Language/zh_CN"
	uaWeChatAndroid = "Mozilla/5.0 (Linux; Android 14; V2309A Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/122.0.6261.120 Mobile Safari/537.36 XWEB/1220099 MMWEBSDK/20240404 MMWEBID/1234 MicroMessenger/8.0.49.2600(0x2800313D) WeChat/arm64 Weixin NetType/WIFI Language/zh_CN ABI/arm64"
	uaWeChatWindows = "Mozilla/5.0 (Windows NT 10.0; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/81.0.4044.138 Safari/537.36 NetType/WIFI MicroMessenger/7.0.20.1781(0x6700143B) WindowsWechat(0x63090a13) XWEB/9129"
	uaAlipayIOS     = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Ariver/1.1.0 AliApp(AP/10.5.96.6000) Nebula WK RVKType(1) AlipayDefined(nt:WIFI,ws:390|780|3.0) AlipayClient/10.5.96.6000 Language/zh-Hans Region/CN NebulaX/1.0.0"
	uaAlipayAndroid = "Mozilla/5.0 (Linux; U; Android 13; zh-CN; PGT-AN10 Build/HONORPGT-AN10) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/69.0.3497.100 UWS/3.22.2.65 Mobile Safari/537.36 UCBS/3.22.2.65_230817141034 ChannelId(0) NebulaSDK/1.8.100112 Nebula AlipayDefined(nt:WIFI,ws:360|0|3.0) AliApp(AP/10.5.36.8000) AlipayClient/10.5.36.8000 Language/zh-Hans useStatusBar/true isConcaveScreen/true Region/CNAriver/1.0.0"
	uaIPhoneSafari  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
	uaAndroidChrome = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36"
	uaDesktopChrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
	uaDesktopSafari = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"
)

// clock is a settable clock shared by the gateway and the checkout.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is a checkout on a real SQLite store with two in-process wallets.
type fixture struct {
	t        testing.TB
	clock    *clock
	store    gateway.Store
	svc      *gateway.Service
	wx, ali  *fakewallet.Wallet
	co       *Checkout
	srv      *httptest.Server
	client   *http.Client
	merchant *payment.Merchant
}

const publicURL = "https://pay.example.test"

func newFixture(t testing.TB, mutate ...func(*Config)) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hutong.db"), sqlite.Options{Migrate: true, Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := &clock{t: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
	f := &fixture{t: t, clock: clk, store: st}
	f.wx = fakewallet.New(fakewallet.Options{Name: payment.WeChatPay, Now: clk.Now})
	f.ali = fakewallet.New(fakewallet.Options{Name: payment.Alipay, Now: clk.Now})
	f.svc = gateway.New(gateway.Config{Store: st, Providers: []gateway.Provider{f.wx, f.ali}, PublicURL: publicURL, Now: clk.Now})
	f.merchant = &payment.Merchant{ID: payment.NewID("mch"), Name: "胡同茶馆 Hutong Tea", CreatedAt: clk.Now()}
	if err := st.CreateMerchant(ctx, f.merchant); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Service: f.svc, Now: clk.Now, SyncInterval: -1}
	for _, m := range mutate {
		m(&cfg)
	}
	f.co = New(cfg)
	mux := http.NewServeMux()
	f.co.Register(mux)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	f.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return f
}

// create makes a payment of 12.34 CNY; edit may change the parameters.
func (f *fixture) create(edit ...func(*gateway.CreatePaymentParams)) *payment.Payment {
	f.t.Helper()
	in := gateway.CreatePaymentParams{Amount: 1234, Currency: "CNY", Description: "龙井茶 250g", Reference: "order-42",
		Metadata: map[string]string{"internal_note": "vip-secret"}}
	for _, e := range edit {
		e(&in)
	}
	p, err := f.svc.CreatePayment(context.Background(), f.merchant.ID, in)
	if err != nil {
		f.t.Fatalf("create payment: %v", err)
	}
	return p
}

func (f *fixture) payment(id string) *payment.Payment {
	f.t.Helper()
	p, err := f.store.Payment(context.Background(), "", id)
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

// pay plays the buyer paying at the wallet and the wallet's notification arriving.
func (f *fixture) pay(p *payment.Payment) {
	f.t.Helper()
	w := f.wallet(p.Provider)
	wp, err := w.Pay(p.ProviderRef.OutTradeNo)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.svc.ApplyWalletPayment(context.Background(), p.Provider, wp); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) wallet(p payment.Provider) *fakewallet.Wallet {
	if p == payment.Alipay {
		return f.ali
	}
	return f.wx
}

type response struct {
	*http.Response
	body string
}

// do sends a request to the checkout; header is pairs of name, value.
func (f *fixture) do(method, path, body string, header ...string) response {
	f.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := f.client.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return response{res, string(b)}
}

func (f *fixture) get(path string, header ...string) response {
	return f.do("GET", path, "", header...)
}

// chooseJSON posts a choice as the page script does.
func (f *fixture) chooseJSON(id, provider, channel string) (response, *Status) {
	f.t.Helper()
	b, _ := json.Marshal(map[string]string{"provider": provider, "channel": channel})
	r := f.do("POST", "/checkout/"+id+"/choose", string(b), "Content-Type", "application/json", "Accept", "application/json")
	if r.StatusCode != http.StatusOK {
		return r, nil
	}
	var st Status
	if err := json.Unmarshal([]byte(r.body), &st); err != nil {
		f.t.Fatalf("choose answer: %v: %s", err, r.body)
	}
	return r, &st
}

func (f *fixture) status(id string) *Status {
	f.t.Helper()
	r := f.get("/checkout/" + id + "/status")
	if r.StatusCode != http.StatusOK {
		f.t.Fatalf("status: %d %s", r.StatusCode, r.body)
	}
	var st Status
	if err := json.Unmarshal([]byte(r.body), &st); err != nil {
		f.t.Fatal(err)
	}
	return &st
}

var dataRE = regexp.MustCompile(`(?s)<script id="checkout-data" type="application/json">(.*?)</script>`)

// pageData extracts the JSON the page hands to its script.
func pageDataOf(t testing.TB, html string) pageData {
	t.Helper()
	m := dataRE.FindStringSubmatch(html)
	if m == nil {
		t.Fatalf("no checkout-data in page:\n%s", html)
	}
	var d pageData
	if err := json.Unmarshal([]byte(m[1]), &d); err != nil {
		t.Fatalf("checkout-data: %v: %s", err, m[1])
	}
	return d
}

var buttonRE = regexp.MustCompile(`<button type="submit" id="([a-z-]+)" class="[^"]*" data-provider="([a-z]+)" data-channel="([a-z0-9]+)"`)

// methods lists the choice buttons on a page as "id provider/channel".
func methods(html string) []string {
	var out []string
	for _, m := range buttonRE.FindAllStringSubmatch(html, -1) {
		out = append(out, m[1]+" "+m[2]+"/"+m[3])
	}
	return out
}

// hasID reports whether the page has an element with id.
func hasID(html, id string) bool { return strings.Contains(html, `id="`+id+`"`) }
