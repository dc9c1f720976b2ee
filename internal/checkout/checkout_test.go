package checkout

import (
	"bytes"
	"context"
	"image/png"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/hutong-pay/hutong/internal/fakewallet"
	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

func TestDetectEnv(t *testing.T) {
	for _, tc := range []struct {
		ua   string
		want Env
	}{
		{uaWeChatIOS, EnvWeChat},
		{uaWeChatAndroid, EnvWeChat},
		{uaWeChatWindows, EnvWeChat},
		{uaAlipayIOS, EnvAlipay},
		{uaAlipayAndroid, EnvAlipay},
		{uaIPhoneSafari, EnvMobile},
		{uaAndroidChrome, EnvMobile},
		{"Mozilla/5.0 (iPad; CPU OS 16_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1", EnvMobile},
		{uaDesktopChrome, EnvDesktop},
		{uaDesktopSafari, EnvDesktop},
		{"", EnvDesktop},
		{"curl/8.5.0", EnvDesktop},
	} {
		if got := DetectEnv(tc.ua); got != tc.want {
			t.Errorf("DetectEnv(%.60q…) = %s, want %s", tc.ua, got, tc.want)
		}
	}
}

// A payment created without a wallet offers, in each environment, the ways to pay that work there.
func TestPageOffersMethodsByEnvironment(t *testing.T) {
	f := newFixture(t)
	plain := f.create()
	withOpenID := f.create(func(in *gateway.CreatePaymentParams) { in.Payer = &payment.Payer{OpenID: "o_buyer_1"} })
	for _, tc := range []struct {
		name     string
		p        *payment.Payment
		ua       string
		env      Env
		want     []string
		auto     string // the choice the script places at once
		noOpenID bool
	}{
		{"desktop", plain, uaDesktopChrome, EnvDesktop, []string{"pay-wechat wechatpay/qr", "pay-alipay alipay/qr", "pay-alipay-web alipay/web"}, "", false},
		{"iphone", plain, uaIPhoneSafari, EnvMobile, []string{"pay-wechat wechatpay/h5", "pay-alipay alipay/h5"}, "", false},
		{"android", plain, uaAndroidChrome, EnvMobile, []string{"pay-wechat wechatpay/h5", "pay-alipay alipay/h5"}, "", false},
		{"alipay app", plain, uaAlipayIOS, EnvAlipay, []string{"pay-alipay alipay/h5"}, "pay-alipay alipay/h5", false},
		{"wechat with openid", withOpenID, uaWeChatAndroid, EnvWeChat, []string{"pay-wechat wechatpay/miniprogram"}, "pay-wechat wechatpay/miniprogram", false},
		{"wechat without openid", plain, uaWeChatIOS, EnvWeChat, nil, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.get("/checkout/"+tc.p.ID, "User-Agent", tc.ua)
			if r.StatusCode != http.StatusOK {
				t.Fatalf("status %d", r.StatusCode)
			}
			if got := methods(r.body); !slices.Equal(got, tc.want) {
				t.Errorf("methods = %q, want %q", got, tc.want)
			}
			d := pageDataOf(t, r.body)
			if d.Env != tc.env {
				t.Errorf("env = %s, want %s", d.Env, tc.env)
			}
			auto := ""
			if d.AutoChoose != nil {
				auto = d.AutoChoose.ID + " " + string(d.AutoChoose.Provider) + "/" + string(d.AutoChoose.Channel)
			}
			if auto != tc.auto {
				t.Errorf("auto choice = %q, want %q", auto, tc.auto)
			}
			if got := hasID(r.body, "wechat-oauth-missing"); got != tc.noOpenID {
				t.Errorf("wechat-oauth-missing shown = %v, want %v", got, tc.noOpenID)
			}
			if !strings.Contains(r.body, `data-env="`+string(tc.env)+`"`) {
				t.Errorf("body has no data-env=%s", tc.env)
			}
		})
	}
	// Showing the page places nothing: the choice is the buyer's (or the script's, in a wallet).
	if n := f.wx.Calls(fakewallet.OpCreatePayment) + f.ali.Calls(fakewallet.OpCreatePayment); n != 0 {
		t.Fatalf("wallet orders placed by viewing pages: %d", n)
	}
}

// Inside WeChat without an openid the page hands over to WeChat web authorization once it is mounted.
func TestWeChatOAuthHook(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.WeChatOAuth = true })
	p := f.create()
	r := f.get("/checkout/"+p.ID+"?lang=en", "User-Agent", uaWeChatIOS)
	if r.StatusCode != http.StatusFound || r.Header.Get("Location") != "/checkout/"+p.ID+"/wechat-oauth?lang=en" {
		t.Fatalf("got %d to %q, want 302 to the wechat-oauth hook", r.StatusCode, r.Header.Get("Location"))
	}
	// Elsewhere, and once the openid is known, there is no detour.
	if r := f.get("/checkout/"+p.ID, "User-Agent", uaIPhoneSafari); r.StatusCode != http.StatusOK {
		t.Fatalf("phone browser: %d", r.StatusCode)
	}
	q := f.create(func(in *gateway.CreatePaymentParams) { in.Payer = &payment.Payer{OpenID: "o_buyer_2"} })
	if r := f.get("/checkout/"+q.ID, "User-Agent", uaWeChatIOS); r.StatusCode != http.StatusOK {
		t.Fatalf("with openid: %d", r.StatusCode)
	}
}

// The /wechat-oauth route someone else mounts must not conflict with the checkout's patterns.
func TestRegisterLeavesRoomForWeChatOAuth(t *testing.T) {
	f := newFixture(t)
	mux := http.NewServeMux()
	f.co.Register(mux)
	mux.HandleFunc("GET /checkout/{id}/wechat-oauth", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	for path, want := range map[string]int{
		"/checkout/pay_000000000000000000000000/wechat-oauth": http.StatusTeapot,
		"/checkout/assets/checkout.js":                        http.StatusOK,
		"/checkout/assets/wechat-oauth":                       http.StatusTeapot,
	} {
		rec := httptestRecorder(mux, "GET", path)
		if rec != want {
			t.Errorf("GET %s = %d, want %d", path, rec, want)
		}
	}
}

func httptestRecorder(h http.Handler, method, path string) int {
	req, _ := http.NewRequest(method, path, nil)
	rw := &statusRecorder{header: http.Header{}}
	h.ServeHTTP(rw, req)
	return rw.status
}

type statusRecorder struct {
	header http.Header
	status int
}

func (r *statusRecorder) Header() http.Header { return r.header }
func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = 200
	}
	return len(b), nil
}
func (r *statusRecorder) WriteHeader(s int) { r.status = s }

func TestLanguage(t *testing.T) {
	f := newFixture(t)
	p := f.create()
	page := "/checkout/" + p.ID
	for _, tc := range []struct {
		name, path, accept, cookie string
		want                       Lang
	}{
		{"default", page, "", "", LangZH},
		{"accept english", page, "en-US,en;q=0.9", "", LangEN},
		{"accept chinese", page, "zh-CN,zh;q=0.9,en;q=0.8", "", LangZH},
		{"accept traditional", page, "zh-TW", "", LangZH},
		{"accept other", page, "fr-FR,de;q=0.5", "", LangZH},
		{"accept other then english", page, "fr-FR, en;q=0.5", "", LangEN},
		{"query wins", page + "?lang=en", "zh-CN", "", LangEN},
		{"query zh-CN", page + "?lang=zh-CN", "en", "", LangZH},
		{"bad query ignored", page + "?lang=klingon", "en", "", LangEN},
		{"cookie", page, "zh-CN", "en", LangEN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := []string{"User-Agent", uaDesktopChrome}
			if tc.accept != "" {
				h = append(h, "Accept-Language", tc.accept)
			}
			if tc.cookie != "" {
				h = append(h, "Cookie", langCookie+"="+tc.cookie)
			}
			r := f.get(tc.path, h...)
			d := pageDataOf(t, r.body)
			if d.Lang != tc.want {
				t.Fatalf("lang = %s, want %s", d.Lang, tc.want)
			}
			wantTitle, wantHTML := "选择支付方式", `<html lang="zh-CN">`
			if tc.want == LangEN {
				wantTitle, wantHTML = "Choose how to pay", `<html lang="en">`
			}
			if !strings.Contains(r.body, wantTitle) || !strings.Contains(r.body, wantHTML) {
				t.Fatalf("page does not read %q in %s", wantTitle, wantHTML)
			}
			if d.Messages["err_network"] != tc.want.T("err_network") {
				t.Fatalf("script messages not in %s", tc.want)
			}
		})
	}
	// An explicit choice is remembered for the trip to the wallet and back.
	r := f.get(page+"?lang=en", "Accept-Language", "zh-CN")
	var cookie *http.Cookie
	for _, c := range r.Cookies() {
		if c.Name == langCookie {
			cookie = c
		}
	}
	if cookie == nil || cookie.Value != "en" || cookie.Path != "/checkout" || !cookie.HttpOnly {
		t.Fatalf("language cookie = %+v", cookie)
	}
	back := f.get(page+"/return", "Accept-Language", "zh-CN", "Cookie", cookie.Name+"="+cookie.Value)
	if !strings.Contains(back.body, `<html lang="en">`) {
		t.Fatal("return page forgot the chosen language")
	}
	if r := f.get(page, "Accept-Language", "en"); len(r.Cookies()) != 0 {
		t.Fatal("a cookie was set without an explicit choice")
	}
}

func TestAcceptLang(t *testing.T) {
	for header, want := range map[string]Lang{
		"":                         LangZH,
		"en":                       LangEN,
		"en-GB;q=0.8, zh;q=0.9":    LangZH,
		"en;q=0.9, zh-Hans;q=0.1":  LangEN,
		"ja, en;q=0.2":             LangEN,
		"*":                        LangZH,
		";;;garbage===":            LangZH,
		"zh-Hant-HK, en-US;q=0.01": LangZH,
	} {
		if got := acceptLang(header); got != want {
			t.Errorf("acceptLang(%q) = %s, want %s", header, got, want)
		}
	}
}

func TestAmountFormatting(t *testing.T) {
	for amount, want := range map[int64]string{1: "¥0.01", 10: "¥0.10", 100: "¥1.00", 1234: "¥12.34", 10000000000: "¥100000000.00"} {
		if got := FormatAmount(amount, "CNY"); got != want {
			t.Errorf("FormatAmount(%d) = %q, want %q", amount, got, want)
		}
	}
	f := newFixture(t)
	for amount, want := range map[int64]string{1234: "¥12.34", 5: "¥0.05", 99999: "¥999.99"} {
		p := f.create(func(in *gateway.CreatePaymentParams) { in.Amount = amount })
		r := f.get("/checkout/" + p.ID)
		if !strings.Contains(r.body, `<span id="amount-value">`+want+`</span>`) {
			t.Errorf("page of %d fen does not show %s", amount, want)
		}
		if st := f.status(p.ID); st.AmountDisplay != want || st.Amount != amount {
			t.Errorf("status of %d fen: %d %q", amount, st.Amount, st.AmountDisplay)
		}
	}
}

func TestPageShowsMerchantAndDescription(t *testing.T) {
	f := newFixture(t)
	p := f.create()
	r := f.get("/checkout/" + p.ID)
	if !strings.Contains(r.body, `<span id="merchant">胡同茶馆 Hutong Tea</span>`) {
		t.Error("merchant name from the store missing")
	}
	if !strings.Contains(r.body, `<span id="description">龙井茶 250g</span>`) {
		t.Error("description missing")
	}
	g := newFixture(t, func(c *Config) { c.MerchantName = func(context.Context, string) string { return "" } })
	q := g.create()
	if r := g.get("/checkout/" + q.ID); hasID(r.body, "merchant") {
		t.Error("merchant shown although MerchantName gave none")
	}
}

// Nothing the buyer does not need leaves the checkout: not the merchant, reference, metadata,
// payer or wallet order numbers.
func TestNoMerchantDataExposed(t *testing.T) {
	f := newFixture(t)
	p := f.create(func(in *gateway.CreatePaymentParams) {
		in.Payer = &payment.Payer{OpenID: "o_secret_openid"}
		in.CustomerID = "cus_secret"
	})
	_, st := f.chooseJSON(p.ID, "wechatpay", "qr")
	if st == nil {
		t.Fatal("choose failed")
	}
	p = f.payment(p.ID)
	leaks := []string{f.merchant.ID, "order-42", "vip-secret", "internal_note", "o_secret_openid", "cus_secret", "127.0.0.1"}
	for _, ua := range []string{uaDesktopChrome, uaWeChatIOS} {
		for _, path := range []string{"/checkout/" + p.ID, "/checkout/" + p.ID + "/status", "/checkout/" + p.ID + "/return"} {
			r := f.get(path, "User-Agent", ua)
			for _, s := range leaks {
				if strings.Contains(r.body, s) {
					t.Errorf("%s (%s) exposes %q", path, DetectEnv(ua), s)
				}
			}
		}
	}
}

func TestChoose(t *testing.T) {
	f := newFixture(t)

	t.Run("qr", func(t *testing.T) {
		p := f.create()
		r, st := f.chooseJSON(p.ID, "wechatpay", "qr")
		if st == nil {
			t.Fatalf("choose: %d %s", r.StatusCode, r.body)
		}
		want := "weixin://wxpay/bizpayurl?pr=" + p.ProviderRef.OutTradeNo
		if st.NextAction == nil || st.NextAction.Type != "qr_code" || st.NextAction.QRCode != want ||
			st.NextAction.QRImage != "/checkout/"+p.ID+"/qr/wechatpay.png" {
			t.Fatalf("next action = %+v", st.NextAction)
		}
		if st.Provider != payment.WeChatPay || st.Channel != payment.ChannelQR || r.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("status = %+v, cache %q", st, r.Header.Get("Cache-Control"))
		}
		got := f.payment(p.ID)
		if got.Provider != payment.WeChatPay || got.Channel != payment.ChannelQR || got.Payer == nil || got.Payer.ClientIP != "127.0.0.1" {
			t.Fatalf("stored payment: %s %s payer %+v", got.Provider, got.Channel, got.Payer)
		}
		// The same choice again is harmless and places nothing new; another wallet is refused.
		calls := f.wx.Calls(fakewallet.OpCreatePayment)
		if r, st := f.chooseJSON(p.ID, "wechatpay", "qr"); st == nil || st.NextAction.QRCode != want {
			t.Fatalf("repeat: %d %s", r.StatusCode, r.body)
		}
		if f.wx.Calls(fakewallet.OpCreatePayment) != calls {
			t.Fatal("repeated choice placed another order")
		}
		r, _ = f.chooseJSON(p.ID, "alipay", "qr")
		if r.StatusCode != http.StatusConflict || !strings.Contains(r.body, `"code":"method_chosen"`) {
			t.Fatalf("second wallet: %d %s", r.StatusCode, r.body)
		}
		if f.ali.Calls(fakewallet.OpCreatePayment) != 0 {
			t.Fatal("second wallet was called")
		}
		// The page now shows the QR code instead of the choice.
		page := f.get("/checkout/"+p.ID, "User-Agent", uaDesktopChrome)
		if !hasID(page.body, "qr-wechatpay") || hasID(page.body, "methods") {
			t.Fatal("page after choosing does not show the QR code alone")
		}
	})

	t.Run("h5 redirect returns to checkout", func(t *testing.T) {
		p := f.create()
		_, st := f.chooseJSON(p.ID, "wechatpay", "h5")
		if st == nil || st.NextAction.Type != "redirect" {
			t.Fatalf("next action %+v", st)
		}
		u, err := url.Parse(st.NextAction.URL)
		if err != nil || !strings.HasPrefix(st.NextAction.URL, "https://fakewallet.invalid/wechatpay/h5/"+p.ProviderRef.OutTradeNo+"?") {
			t.Fatalf("url %q", st.NextAction.URL)
		}
		if got := u.Query().Get("redirect_url"); got != publicURL+"/checkout/"+p.ID+"/return" {
			t.Fatalf("redirect_url = %q", got)
		}
		_, st = f.chooseJSON(f.create().ID, "alipay", "h5")
		if st == nil || st.NextAction.URL != "https://fakewallet.invalid/alipay/h5/"+f.lastOutTradeNo(st.ID) {
			t.Fatalf("alipay wap url %+v", st.NextAction)
		}
	})

	t.Run("form post redirects back to the page", func(t *testing.T) {
		p := f.create()
		r := f.do("POST", "/checkout/"+p.ID+"/choose?lang=en", "provider=alipay&channel=qr", "Content-Type", "application/x-www-form-urlencoded")
		if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/checkout/"+p.ID+"?lang=en" {
			t.Fatalf("form choose: %d to %q", r.StatusCode, r.Header.Get("Location"))
		}
		page := f.get(r.Header.Get("Location"), "User-Agent", uaDesktopChrome)
		if !hasID(page.body, "qr-alipay") {
			t.Fatal("page after form choice has no Alipay QR")
		}
		r = f.do("POST", "/checkout/"+p.ID+"/choose?lang=en", "provider=wechatpay&channel=qr", "Content-Type", "application/x-www-form-urlencoded")
		if r.StatusCode != http.StatusSeeOther || !strings.Contains(r.Header.Get("Location"), "error=err_method_chosen") {
			t.Fatalf("refused form choice: %d to %q", r.StatusCode, r.Header.Get("Location"))
		}
		page = f.get(r.Header.Get("Location"))
		if !strings.Contains(page.body, `role="alert">This payment is already being paid another way.</p>`) {
			t.Fatal("refusal not explained on the page")
		}
		// Only known message keys are shown.
		page = f.get("/checkout/" + p.ID + "?error=err_%3Cb%3E")
		if !strings.Contains(page.body, `role="alert" hidden></p>`) {
			t.Fatal("unknown error key shown")
		}
	})

	t.Run("jsapi needs openid", func(t *testing.T) {
		p := f.create()
		r, _ := f.chooseJSON(p.ID, "wechatpay", "miniprogram")
		if r.StatusCode != http.StatusConflict || !strings.Contains(r.body, `"code":"openid_required"`) {
			t.Fatalf("jsapi without openid: %d %s", r.StatusCode, r.body)
		}
		if got := f.payment(p.ID); got.Status != payment.StatusPending || got.Provider != "" {
			t.Fatalf("payment changed: %s %s", got.Status, got.Provider)
		}
		q := f.create(func(in *gateway.CreatePaymentParams) { in.Payer = &payment.Payer{OpenID: "o_buyer_3"} })
		_, st := f.chooseJSON(q.ID, "wechatpay", "miniprogram")
		if st == nil || st.NextAction.Type != "wechat_jsapi" || st.NextAction.Params["package"] != "prepay_id=wx"+q.ProviderRef.OutTradeNo ||
			st.NextAction.Params["paySign"] == "" || st.NextAction.Params["appId"] == "" {
			t.Fatalf("jsapi next action %+v", st)
		}
		if got := f.payment(q.ID); got.Payer.OpenID != "o_buyer_3" || got.Payer.ClientIP == "" {
			t.Fatalf("payer = %+v; the openid must survive the choice", got.Payer)
		}
		// In WeChat the page offers to (re)start the payment sheet; elsewhere it says where to pay.
		in := f.get("/checkout/"+q.ID, "User-Agent", uaWeChatIOS)
		if !strings.Contains(in.body, `id="pay-wechat" class="method method-wechatpay" data-action="jsapi"`) {
			t.Fatal("no JSAPI pay button inside WeChat")
		}
		if d := pageDataOf(t, in.body); d.Status.NextAction.Params["package"] != "prepay_id=wx"+q.ProviderRef.OutTradeNo {
			t.Fatal("page script lacks the JSAPI parameters")
		}
		if out := f.get("/checkout/"+q.ID, "User-Agent", uaDesktopChrome); !hasID(out.body, "open-in-wechat") || hasID(out.body, "pay-wechat") {
			t.Fatal("desktop page of a JSAPI payment should say to open it in WeChat")
		}
	})

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			name, body, ctype string
			want              int
			code              string
		}{
			{"unknown wallet", `{"provider":"paypal","channel":"qr"}`, "application/json", 400, "invalid"},
			{"app channel", `{"provider":"alipay","channel":"app"}`, "application/json", 400, "invalid"},
			{"wechat web", `{"provider":"wechatpay","channel":"web"}`, "application/json", 400, "invalid"},
			{"bad json", `{"provider":`, "application/json", 400, "invalid"},
			{"other type", `provider=alipay&channel=qr`, "text/plain", 400, "invalid"},
			{"too large", `{"provider":"alipay","channel":"qr","x":"` + strings.Repeat("a", 5000) + `"}`, "application/json", 400, "invalid"},
		} {
			p := f.create()
			r := f.do("POST", "/checkout/"+p.ID+"/choose", tc.body, "Content-Type", tc.ctype, "Accept", "application/json")
			if r.StatusCode != tc.want || !strings.Contains(r.body, `"code":"`+tc.code+`"`) {
				t.Errorf("%s: %d %s", tc.name, r.StatusCode, r.body)
			}
		}
		r, _ := f.chooseJSON("pay_000000000000000000000000", "alipay", "qr")
		if r.StatusCode != http.StatusNotFound {
			t.Errorf("unknown payment: %d", r.StatusCode)
		}
	})

	t.Run("wallet refuses", func(t *testing.T) {
		p := f.create()
		f.ali.SetError(fakewallet.OpCreatePayment, fakewallet.Refused("ACQ.SYSTEM_ERROR", "busy"))
		defer f.ali.SetError(fakewallet.OpCreatePayment, nil)
		r, _ := f.chooseJSON(p.ID, "alipay", "qr")
		if r.StatusCode != http.StatusBadGateway || !strings.Contains(r.body, `"code":"provider"`) {
			t.Fatalf("wallet refusal: %d %s", r.StatusCode, r.body)
		}
		if st := f.status(p.ID); st.Status != payment.StatusFailed || st.State != StateFailed || !st.Final {
			t.Fatalf("status after refusal: %+v", st)
		}
	})

	t.Run("cross-site post refused", func(t *testing.T) {
		p := f.create()
		r := f.do("POST", "/checkout/"+p.ID+"/choose", "provider=alipay&channel=qr",
			"Content-Type", "application/x-www-form-urlencoded", "Sec-Fetch-Site", "cross-site")
		if r.StatusCode != http.StatusForbidden {
			t.Fatalf("cross-site: %d", r.StatusCode)
		}
		r = f.do("POST", "/checkout/"+p.ID+"/choose", "provider=alipay&channel=qr",
			"Content-Type", "application/x-www-form-urlencoded", "Origin", "https://evil.example")
		if r.StatusCode != http.StatusForbidden || r.Header.Get("X-Frame-Options") != "DENY" {
			t.Fatalf("foreign origin: %d", r.StatusCode)
		}
		if f.payment(p.ID).Provider != "" {
			t.Fatal("cross-site post placed an order")
		}
		r = f.do("POST", "/checkout/"+p.ID+"/choose", "provider=alipay&channel=qr",
			"Content-Type", "application/x-www-form-urlencoded", "Sec-Fetch-Site", "same-origin")
		if r.StatusCode != http.StatusSeeOther {
			t.Fatalf("same-origin: %d", r.StatusCode)
		}
	})
}

func (f *fixture) lastOutTradeNo(id string) string { return f.payment(id).ProviderRef.OutTradeNo }

func TestStatusForEachState(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	check := func(t *testing.T, id string, status payment.Status, state State, final bool, reason, action string) *Status {
		t.Helper()
		r := f.get("/checkout/" + id + "/status")
		if r.Header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("headers %v", r.Header)
		}
		st := f.status(id)
		gotAction := ""
		if st.NextAction != nil {
			gotAction = st.NextAction.Type
		}
		if st.ID != id || st.Status != status || st.State != state || st.Final != final || st.CancelReason != reason || gotAction != action {
			t.Fatalf("status = %+v (action %q), want %s/%s final=%v reason=%q action=%q", st, gotAction, status, state, final, reason, action)
		}
		return st
	}
	t.Run("pending", func(t *testing.T) {
		p := f.create(func(in *gateway.CreatePaymentParams) { in.ReturnURL = "https://shop.example/done" })
		st := check(t, p.ID, payment.StatusPending, StatePending, false, "", "")
		if st.ReturnURL != "https://shop.example/done" || !st.ExpiresAt.Equal(p.ExpiresAt) {
			t.Fatalf("return url %q expires %v", st.ReturnURL, st.ExpiresAt)
		}
		f.chooseJSON(p.ID, "alipay", "qr")
		check(t, p.ID, payment.StatusPending, StatePending, false, "", "qr_code")
	})
	t.Run("succeeded", func(t *testing.T) {
		p := f.create()
		f.chooseJSON(p.ID, "alipay", "web")
		f.pay(f.payment(p.ID))
		check(t, p.ID, payment.StatusSucceeded, StateSucceeded, true, "", "")
	})
	t.Run("failed", func(t *testing.T) {
		p := f.create()
		f.wx.SetError(fakewallet.OpCreatePayment, fakewallet.Refused("NOAUTH", "no"))
		f.chooseJSON(p.ID, "wechatpay", "h5")
		f.wx.SetError(fakewallet.OpCreatePayment, nil)
		check(t, p.ID, payment.StatusFailed, StateFailed, true, "", "")
	})
	t.Run("canceled", func(t *testing.T) {
		p := f.create()
		f.chooseJSON(p.ID, "wechatpay", "qr")
		if _, err := f.svc.CancelPayment(ctx, f.merchant.ID, p.ID, "requested_by_customer"); err != nil {
			t.Fatal(err)
		}
		check(t, p.ID, payment.StatusCanceled, StateCanceled, true, "requested_by_customer", "")
	})
	t.Run("expired", func(t *testing.T) {
		p := f.create(func(in *gateway.CreatePaymentParams) {
			at := f.clock.Now().Add(10 * time.Minute)
			in.ExpiresAt = &at
		})
		f.chooseJSON(p.ID, "wechatpay", "qr")
		f.clock.Add(11 * time.Minute)
		// Past expires_at, before the expiry job: shown expired, still followed, no longer payable.
		check(t, p.ID, payment.StatusPending, StateExpired, false, "", "")
		if r := f.get("/checkout/" + p.ID + "/qr/wechatpay.png"); r.StatusCode != http.StatusNotFound {
			t.Fatalf("QR code of an expired payment: %d", r.StatusCode)
		}
		q := f.create()
		f.clock.Add(3 * time.Hour)
		if r, _ := f.chooseJSON(q.ID, "alipay", "qr"); r.StatusCode != http.StatusConflict || !strings.Contains(r.body, `"code":"expired"`) {
			t.Fatalf("choosing on an expired payment: %d %s", r.StatusCode, r.body)
		}
		if _, err := f.svc.ExpirePayment(ctx, p.ID); err != nil {
			t.Fatal(err)
		}
		check(t, p.ID, payment.StatusCanceled, StateExpired, true, payment.CancelReasonExpired, "")
		page := f.get("/checkout/"+p.ID+"?lang=en", "User-Agent", uaDesktopChrome)
		if !strings.Contains(page.body, `<section id="result" class="result result-expired"`) || !strings.Contains(page.body, "Payment expired") ||
			hasID(page.body, "methods") || hasID(page.body, "qr-wechatpay") {
			t.Fatal("expired page wrong")
		}
		if r, _ := f.chooseJSON(p.ID, "wechatpay", "qr"); r.StatusCode != http.StatusConflict {
			t.Fatalf("choosing on a closed payment: %d", r.StatusCode)
		}
	})
}

// A page following a placed payment recovers a lost notification by asking the wallet, at most
// once per interval.
func TestStatusSyncsWithWallet(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.SyncInterval = time.Minute })
	p := f.create()
	f.chooseJSON(p.ID, "wechatpay", "qr")
	if st := f.status(p.ID); st.Status != payment.StatusPending {
		t.Fatalf("before paying: %s", st.Status)
	}
	if n := f.wx.Calls(fakewallet.OpQueryPayment); n != 1 {
		t.Fatalf("wallet queries = %d, want 1", n)
	}
	if _, err := f.wx.Pay(p.ProviderRef.OutTradeNo); err != nil { // the notification is lost
		t.Fatal(err)
	}
	if st := f.status(p.ID); st.Status != payment.StatusPending {
		t.Fatal("synced again within the interval")
	}
	f.clock.Add(time.Minute)
	if st := f.status(p.ID); st.Status != payment.StatusSucceeded {
		t.Fatalf("after the interval: %s, want succeeded from the wallet", st.Status)
	}
	if n := f.wx.Calls(fakewallet.OpQueryPayment); n != 2 {
		t.Fatalf("wallet queries = %d, want 2", n)
	}
	// A wallet that does not answer leaves the page showing what the store knows.
	q := f.create()
	f.chooseJSON(q.ID, "wechatpay", "qr")
	f.wx.SetError(fakewallet.OpQueryPayment, fakewallet.ErrUnavailable)
	if st := f.status(q.ID); st.Status != payment.StatusPending {
		t.Fatalf("wallet down: %s", st.Status)
	}
}

func TestQRCode(t *testing.T) {
	f := newFixture(t)
	p := f.create()
	qr := "/checkout/" + p.ID + "/qr/"
	if r := f.get(qr + "wechatpay.png"); r.StatusCode != http.StatusNotFound {
		t.Fatalf("QR before an order: %d", r.StatusCode)
	}
	f.chooseJSON(p.ID, "wechatpay", "qr")
	content := "weixin://wxpay/bizpayurl?pr=" + p.ProviderRef.OutTradeNo
	for _, tc := range []struct {
		query string
		size  int
	}{{"", 256}, {"?size=128", 128}, {"?size=300", 300}, {"?size=1024", 1024}} {
		r := f.get(qr + "wechatpay.png" + tc.query)
		if r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != "image/png" {
			t.Fatalf("%s: %d %s", tc.query, r.StatusCode, r.Header.Get("Content-Type"))
		}
		img, err := png.Decode(strings.NewReader(r.body))
		if err != nil {
			t.Fatalf("%s: not a PNG: %v", tc.query, err)
		}
		if b := img.Bounds(); b.Dx() != tc.size || b.Dy() != tc.size {
			t.Fatalf("%s: %dx%d, want %d square", tc.query, b.Dx(), b.Dy(), tc.size)
		}
		want, err := qrcode.Encode(content, qrcode.Medium, tc.size)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal([]byte(r.body), want) {
			t.Fatalf("%s: the PNG does not encode the wallet's code_url", tc.query)
		}
	}
	for path, want := range map[string]int{
		qr + "alipay.png":             http.StatusNotFound, // another wallet's
		qr + "paypal.png":             http.StatusNotFound,
		qr + "wechatpay.gif":          http.StatusNotFound,
		qr + "wechatpay.png?size=64":  http.StatusBadRequest,
		qr + "wechatpay.png?size=abc": http.StatusBadRequest,
		"/checkout/pay_000000000000000000000000/qr/wechatpay.png": http.StatusNotFound,
		"/checkout/nope/qr/wechatpay.png":                         http.StatusNotFound,
	} {
		if r := f.get(path); r.StatusCode != want {
			t.Errorf("GET %s = %d, want %d", path, r.StatusCode, want)
		}
	}
	// A phone cashier URL (WeChat H5 / Alipay wap) placed from a desktop is drawn for the phone.
	q := f.create(func(in *gateway.CreatePaymentParams) { in.Provider, in.Channel = payment.Alipay, payment.ChannelH5 })
	r := f.get("/checkout/" + q.ID + "/qr/alipay.png")
	want, _ := qrcode.Encode("https://fakewallet.invalid/alipay/h5/"+q.ProviderRef.OutTradeNo, qrcode.Medium, 256)
	if r.StatusCode != http.StatusOK || !bytes.Equal([]byte(r.body), want) {
		t.Fatalf("h5 QR: %d", r.StatusCode)
	}
	// A paid payment has no code any more.
	f.pay(f.payment(p.ID))
	if r := f.get(qr + "wechatpay.png"); r.StatusCode != http.StatusNotFound {
		t.Fatalf("QR of a paid payment: %d", r.StatusCode)
	}
}

// A payment created with its wallet and channel shows that method at once.
func TestPaymentCreatedWithMethod(t *testing.T) {
	f := newFixture(t)
	wap := f.create(func(in *gateway.CreatePaymentParams) { in.Provider, in.Channel = payment.Alipay, payment.ChannelH5 })
	r := f.get("/checkout/"+wap.ID, "User-Agent", uaIPhoneSafari)
	if hasID(r.body, "methods") || !strings.Contains(r.body, `<a id="continue" class="button" href="https://fakewallet.invalid/alipay/h5/`+wap.ProviderRef.OutTradeNo+`"`) {
		t.Fatalf("wap payment page:\n%s", r.body)
	}
	if hasID(r.body, "qr-alipay") {
		t.Fatal("phone page shows a QR code of its own cashier")
	}
	if r := f.get("/checkout/"+wap.ID, "User-Agent", uaDesktopChrome); !hasID(r.body, "qr-alipay") || !hasID(r.body, "continue") {
		t.Fatal("desktop page of a wap payment should offer the QR code and the link")
	}
	native := f.create(func(in *gateway.CreatePaymentParams) { in.Provider, in.Channel = payment.WeChatPay, payment.ChannelQR })
	r = f.get("/checkout/"+native.ID, "User-Agent", uaAndroidChrome)
	if !strings.Contains(r.body, `<img id="qr-wechatpay" src="/checkout/`+native.ID+`/qr/wechatpay.png"`) || hasID(r.body, "methods") {
		t.Fatal("native payment page has no QR code")
	}
	precreate := f.create(func(in *gateway.CreatePaymentParams) { in.Provider, in.Channel = payment.Alipay, payment.ChannelQR })
	r = f.get("/checkout/"+precreate.ID, "User-Agent", uaIPhoneSafari)
	if !hasID(r.body, "qr-alipay") || !strings.Contains(r.body, `id="open-alipay" class="button" href="https://qr.alipay.com/`) {
		t.Fatal("Alipay QR on a phone should also open Alipay")
	}
	app := f.create(func(in *gateway.CreatePaymentParams) { in.Provider, in.Channel = payment.Alipay, payment.ChannelApp })
	r = f.get("/checkout/" + app.ID)
	if !hasID(r.body, "open-in-app") || strings.Contains(r.body, "app_id=fake") {
		t.Fatal("app payment page should point to the app and not carry the order string")
	}
}

func TestReturnPage(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.SyncInterval = time.Minute; c.ReturnDelay = 3 * time.Second })
	ret := "https://shop.example/orders/42?x=1&y=2"
	p := f.create(func(in *gateway.CreatePaymentParams) { in.ReturnURL = ret })
	f.chooseJSON(p.ID, "alipay", "web")
	p = f.payment(p.ID)
	// Not paid: Alipay's sync-return parameters (forged here) do not make it paid.
	forged := "?out_trade_no=" + p.ProviderRef.OutTradeNo + "&trade_no=2088x&total_amount=12.34&sign=AAAA&method=alipay.trade.page.pay.return"
	r := f.get("/checkout/" + p.ID + "/return" + forged + "&lang=en")
	if r.StatusCode != http.StatusOK || !hasID(r.body, "confirming") || hasID(r.body, "result") ||
		!strings.Contains(r.body, `href="/checkout/`+p.ID+`?lang=en"`) {
		t.Fatalf("unpaid return page:\n%s", r.body)
	}
	if f.payment(p.ID).Status != payment.StatusPending {
		t.Fatal("return parameters changed the payment")
	}
	if d := pageDataOf(t, r.body); !d.Returned || d.Status.Final {
		t.Fatal("return page data")
	}
	// Paid, notification not yet here: the return page asks the wallet and shows the result.
	if _, err := f.ali.Pay(p.ProviderRef.OutTradeNo); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(time.Minute)
	r = f.get("/checkout/" + p.ID + "/return" + forged)
	if !strings.Contains(r.body, `<section id="result" class="result result-succeeded"`) || !strings.Contains(r.body, "支付成功") {
		t.Fatalf("paid return page:\n%s", r.body)
	}
	if !strings.Contains(r.body, `<a id="return-link" class="button" href="https://shop.example/orders/42?x=1&amp;y=2">`) ||
		!strings.Contains(r.body, `data-return-url="https://shop.example/orders/42?x=1&amp;y=2"`) ||
		!strings.Contains(r.body, `id="countdown" class="countdown" data-seconds="3">3 秒后自动返回商户`) {
		t.Fatalf("return target missing:\n%s", r.body)
	}
	d := pageDataOf(t, r.body)
	if d.Status.ReturnURL != ret || d.ReturnDelay != 3 || !d.Status.Final {
		t.Fatalf("script return target %q after %d s", d.Status.ReturnURL, d.ReturnDelay)
	}
	// Without return_url the buyer is told to close the page.
	q := f.create()
	f.chooseJSON(q.ID, "alipay", "qr")
	f.pay(f.payment(q.ID))
	r = f.get("/checkout/" + q.ID + "/return")
	if !hasID(r.body, "close-page") || hasID(r.body, "return-link") || hasID(r.body, "countdown") {
		t.Fatal("return page without return_url")
	}
	// The main page of a final payment returns to the merchant too.
	r = f.get("/checkout/" + p.ID)
	if !hasID(r.body, "return-link") || !hasID(r.body, "countdown") || hasID(r.body, "methods") {
		t.Fatal("final checkout page does not return to the merchant")
	}
}

// Everything merchant-supplied is escaped, in HTML and in the script data.
func TestEscaping(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.MerchantName = func(context.Context, string) string { return `<b onmouseover="x">Shop</b>` }
	})
	p := f.create(func(in *gateway.CreatePaymentParams) {
		in.Description = `<script>alert("描述")</script>'&"`
		in.ReturnURL = `https://shop.example/done?q=</script><script>alert(1)</script>&"x"`
	})
	r := f.get("/checkout/" + p.ID)
	for _, bad := range []string{`<script>alert`, `<b onmouseover`, `</script><script>`, `"x"`} {
		if strings.Contains(r.body, bad) {
			t.Errorf("page contains unescaped %q", bad)
		}
	}
	if !strings.Contains(r.body, `<span id="description">&lt;script&gt;alert(&#34;描述&#34;)&lt;/script&gt;&#39;&amp;&#34;</span>`) {
		t.Errorf("description not escaped as expected:\n%s", r.body)
	}
	if d := pageDataOf(t, r.body); d.Status.ReturnURL != `https://shop.example/done?q=</script><script>alert(1)</script>&"x"` {
		t.Errorf("script data return_url = %q", d.Status.ReturnURL)
	}
	if got := strings.Count(r.body, "<script"); got != 2 { // the data block and checkout.js
		t.Errorf("%d script elements, want 2", got)
	}
}

func TestNotFound(t *testing.T) {
	f := newFixture(t)
	p := f.create()
	for _, path := range []string{
		"/checkout/pay_000000000000000000000000",
		"/checkout/pay_0000",
		"/checkout/" + strings.ToUpper(p.ID),
		"/checkout/mch_000000000000000000000000",
		"/checkout/%3Cscript%3E",
		"/checkout/pay_000000000000000000000000/return",
		"/checkout/" + p.ID + "/nonsense",
		"/checkout/assets/missing.js",
		"/checkout/assets/",
	} {
		r := f.get(path+"?lang=en", "Accept", "text/html")
		if r.StatusCode != http.StatusNotFound || !strings.Contains(r.body, `<h1 id="title">Payment not found</h1>`) ||
			r.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s = %d, want the friendly 404 page:\n%s", path, r.StatusCode, r.body)
		}
		if strings.Contains(r.body, "%3Cscript") || strings.Contains(r.body, "<script>") {
			t.Errorf("GET %s echoes the path", path)
		}
	}
	r := f.get("/checkout/pay_000000000000000000000000/status")
	if r.StatusCode != http.StatusNotFound || !strings.Contains(r.body, `"code":"not_found"`) {
		t.Errorf("status of unknown payment: %d %s", r.StatusCode, r.body)
	}
}

func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t)
	p := f.create()
	f.chooseJSON(p.ID, "wechatpay", "qr")
	want := "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
	for _, path := range []string{"/checkout/" + p.ID, "/checkout/" + p.ID + "/status", "/checkout/" + p.ID + "/return",
		"/checkout/" + p.ID + "/qr/wechatpay.png", "/checkout/assets/checkout.js", "/checkout/pay_000000000000000000000000"} {
		r := f.get(path, "User-Agent", uaWeChatIOS)
		h := r.Header
		if h.Get("Content-Security-Policy") != want || h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s headers: %q %q %q", path, h.Get("Content-Security-Policy"), h.Get("X-Frame-Options"), h.Get("X-Content-Type-Options"))
		}
		if strings.Contains(r.body, "bridge.js") {
			t.Errorf("%s loads a bridge outside sandbox mode", path)
		}
	}
	for _, path := range []string{"/checkout/" + p.ID, "/checkout/" + p.ID + "/status", "/checkout/" + p.ID + "/return"} {
		if cc := f.get(path).Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s Cache-Control %q", path, cc)
		}
	}

	s := newFixture(t, func(c *Config) { c.SandboxURL = "http://127.0.0.1:8091/" })
	q := s.create()
	r := s.get("/checkout/"+q.ID, "User-Agent", uaWeChatAndroid)
	csp := r.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self' http://127.0.0.1:8091;") || !strings.Contains(csp, "connect-src 'self' http://127.0.0.1:8091;") ||
		!strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("sandbox CSP %q", csp)
	}
	if !strings.Contains(r.body, `<script src="http://127.0.0.1:8091/sandbox/wechatpay/bridge.js" defer></script>`) || !hasID(r.body, "sandbox-banner") {
		t.Fatal("sandbox page inside WeChat does not load the bridge")
	}
	if r := s.get("/checkout/"+q.ID, "User-Agent", uaDesktopChrome); strings.Contains(r.body, "bridge.js") || !hasID(r.body, "sandbox-banner") {
		t.Fatal("bridge loaded outside WeChat")
	}
	if r := newFixture(t, func(c *Config) { c.SandboxURL = "javascript:alert(1)" }); strings.Contains(r.co.csp, "javascript") || r.co.bridgeURL != "" {
		t.Fatal("a bad sandbox URL was trusted")
	}
}

func TestAssets(t *testing.T) {
	f := newFixture(t)
	p := f.create()
	page := f.get("/checkout/" + p.ID)
	for name, ctype := range map[string]string{"checkout.js": "text/javascript; charset=utf-8", "checkout.css": "text/css; charset=utf-8"} {
		m := regexp.MustCompile(`"(/checkout/assets/` + regexp.QuoteMeta(name) + `\?v=[0-9a-f]{12})"`).FindStringSubmatch(page.body)
		if m == nil {
			t.Fatalf("page does not link %s", name)
		}
		r := f.get(m[1])
		want, _ := os.ReadFile("assets/" + name)
		if r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != ctype || r.body != string(want) ||
			r.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
			t.Fatalf("%s: %d %q %q", name, r.StatusCode, r.Header.Get("Content-Type"), r.Header.Get("Cache-Control"))
		}
		if r := f.get("/checkout/assets/" + name + "?v=old"); r.Header.Get("Cache-Control") != "no-cache" {
			t.Fatalf("%s with a stale version is cached for long", name)
		}
	}
	// No external asset anywhere.
	for _, s := range []string{page.body, readFile(t, "assets/checkout.js"), readFile(t, "assets/checkout.css")} {
		if regexp.MustCompile(`(src|href)="?https?://|url\(|@import|//cdn`).MatchString(s) {
			t.Fatal("an asset refers to another site")
		}
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Every string the pages use exists in both languages.
func TestMessagesComplete(t *testing.T) {
	for k, m := range messages {
		if m.zh == "" || m.en == "" {
			t.Errorf("message %q lacks a language", k)
		}
	}
	used := map[string]bool{}
	for _, k := range jsMessages {
		used[k] = true
	}
	for _, name := range []string{"templates/page.html", "templates/message.html"} {
		for _, m := range regexp.MustCompile(`\.T "([a-z_]+)"`).FindAllStringSubmatch(readFile(t, name), -1) {
			used[m[1]] = true
		}
	}
	for _, s := range []State{StateSucceeded, StateFailed, StateCanceled, StateExpired} {
		used["state_"+string(s)], used["body_"+string(s)] = true, true
	}
	for _, p := range payment.Providers {
		used["scan_"+string(p)], used["continue_"+string(p)], used["qr_alt_"+string(p)] = true, true, true
	}
	for _, code := range []string{"method_chosen", "payment_state", "expired", "openid_required", "provider", "invalid", "unavailable"} {
		used["err_"+code] = true
	}
	for k := range used {
		if _, ok := messages[k]; !ok {
			t.Errorf("message %q is used but not in the table", k)
		}
	}
	// The JSON the script reads carries the placeholders it fills.
	if !strings.Contains(LangEN.T("returning_in"), "{n}") || !strings.Contains(LangZH.T("pay_before"), "{t}") {
		t.Error("placeholders missing")
	}
}

// The WeChat connector may already have told WeChat H5 where to return; the checkout adds
// redirect_url only when it is missing, and never to another wallet's URL.
func TestWeChatH5RedirectURL(t *testing.T) {
	f := newFixture(t)
	ret := publicURL + "/checkout/pay_000000000000000000000001/return"
	for _, tc := range []struct {
		provider payment.Provider
		in, want string
	}{
		{payment.WeChatPay, "https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx1&package=2",
			"https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx1&package=2&redirect_url=" + url.QueryEscape(ret)},
		{payment.WeChatPay, "https://wx.tenpay.com/checkmweb?prepay_id=wx1&redirect_url=https%3A%2F%2Fpay.example.test%2Fx", "https://wx.tenpay.com/checkmweb?prepay_id=wx1&redirect_url=https%3A%2F%2Fpay.example.test%2Fx"},
		{payment.WeChatPay, "https://wx.tenpay.com/checkmweb", "https://wx.tenpay.com/checkmweb?redirect_url=" + url.QueryEscape(ret)},
		{payment.Alipay, "https://openapi.alipay.com/gateway.do?sign=abc", "https://openapi.alipay.com/gateway.do?sign=abc"},
		{payment.WeChatPay, "javascript:alert(1)", ""},
	} {
		p := &payment.Payment{ID: "pay_000000000000000000000001", Status: payment.StatusPending, Provider: tc.provider, Channel: payment.ChannelH5,
			ExpiresAt: f.clock.Now().Add(time.Hour), NextAction: &payment.NextAction{Type: payment.ActionRedirect, URL: tc.in}}
		if got := f.co.buildStatus(p, f.clock.Now()).NextAction.URL; got != tc.want {
			t.Errorf("%s %q → %q, want %q", tc.provider, tc.in, got, tc.want)
		}
	}
}
