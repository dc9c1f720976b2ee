package browsertest

import (
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// Each test pays a payment in the browser, the way its buyer would, and ends with the payment
// succeeded in the merchant API and the checkout page showing it.

// checkoutSucceeded waits for the checkout page to show the payment succeeded.
func checkoutSucceeded(tb *tab) {
	tb.t.Helper()
	tb.waitVisible(`#result[data-state="succeeded"]`)
	if got := tb.attr("#status", "data-status"); got != "succeeded" {
		tb.t.Errorf("%s: #status data-status = %q, want succeeded", tb.name, got)
	}
}

// qrShown waits for the QR code of wallet to be drawn on the checkout and returns what it encodes.
func qrShown(tb *tab, wallet string) string {
	tb.t.Helper()
	sel := "#qr-" + wallet
	tb.waitVisible(sel)
	tb.do("wait for the QR image to load", pollTrue(`(function(){var i=document.querySelector('`+sel+`');return !!i && i.complete && i.naturalWidth >= 128})()`))
	return tb.attr(sel, "data-content")
}

func TestDesktopPaysWeChatQRCodeFromPhone(t *testing.T) {
	s := start(t)
	p := s.createPayment(map[string]any{"description": "龙井 Longjing QR"})
	pc := s.tab("desktop", desktop)
	pc.open(p.CheckoutURL)
	pc.click("#pay-wechat")
	codeURL := qrShown(pc, "wechatpay")
	placed := s.payment(p.ID)
	if placed.Provider != "wechatpay" || placed.Channel != "qr" || placed.NextAction["qr_code"] != codeURL {
		t.Fatalf("after the choice the payment is %s/%s with next_action %v; the page shows %q", placed.Provider, placed.Channel, placed.NextAction, codeURL)
	}
	if !strings.HasPrefix(codeURL, "weixin://wxpay/bizpayurl?pr=") {
		t.Fatalf("QR code encodes %q, want a WeChat Native code_url", codeURL)
	}

	// The buyer scans the code with WeChat on a phone: the sandbox's scan page shows the order.
	phone := s.tab("phone", insideWeChat)
	phone.open(s.info.SandboxURL + "/sandbox/wechatpay/scan?code_url=" + url.QueryEscape(codeURL))
	if got := phone.text("#order-amount"); !strings.Contains(got, "12.80") {
		t.Errorf("scan page amount %q, want 12.80", got)
	}
	if got := phone.text("#order-description"); got != "龙井 Longjing QR" {
		t.Errorf("scan page description %q", got)
	}
	phone.click("#pay")
	phone.waitVisible(`#result[data-result="success"]`)

	checkoutSucceeded(pc)
	s.succeeded(p.ID, "wechatpay", "qr")
}

func TestDesktopPaysAlipayQRCodeFromPhone(t *testing.T) {
	s := start(t)
	p := s.createPayment(nil)
	pc := s.tab("desktop", desktop)
	pc.open(p.CheckoutURL)
	pc.click("#pay-alipay")
	qr := qrShown(pc, "alipay")
	if !strings.HasPrefix(qr, s.info.SandboxURL+"/sandbox/alipay/qr/") {
		t.Fatalf("QR code encodes %q, want the Alipay sandbox's QR page", qr)
	}

	// Opening the QR code's address on the phone is the scan; the cashier then shows the trade.
	phone := s.tab("phone", insideAlipay)
	phone.open(qr)
	if got := phone.text("#amount"); !strings.Contains(got, "12.80") {
		t.Errorf("cashier amount %q, want 12.80", got)
	}
	phone.click("#pay")
	phone.waitVisible("#title")
	if got := phone.text("#title"); got != "支付成功" {
		t.Errorf("after paying the phone shows %q, want 支付成功", got)
	}

	checkoutSucceeded(pc)
	s.succeeded(p.ID, "alipay", "qr")
}

func TestPhonePaysWeChatH5(t *testing.T) {
	s := start(t)
	p := s.createPayment(nil)
	phone := s.tab("iphone", iPhone)
	phone.open(p.CheckoutURL)
	phone.click("#pay-wechat")
	at := phone.waitLocation(s.info.SandboxURL + "/sandbox/wechatpay/h5/")
	if u, _ := url.Parse(at); !strings.HasPrefix(u.Query().Get("redirect_url"), p.CheckoutURL+"/return") {
		t.Errorf("H5 page %s: redirect_url does not lead back to the checkout", at)
	}
	if got := phone.text("#order-amount"); !strings.Contains(got, "12.80") {
		t.Errorf("H5 page amount %q, want 12.80", got)
	}
	phone.click("#pay")
	phone.waitLocation(p.CheckoutURL + "/return")
	checkoutSucceeded(phone)
	s.succeeded(p.ID, "wechatpay", "h5")
}

func TestPhonePaysAlipayWap(t *testing.T) {
	s := start(t)
	p := s.createPayment(nil)
	phone := s.tab("iphone", iPhone)
	phone.open(p.CheckoutURL)
	phone.click("#pay-alipay")
	phone.waitLocation(s.info.SandboxURL + "/gateway.do")
	if got := phone.text("#amount"); !strings.Contains(got, "12.80") {
		t.Errorf("wap cashier amount %q, want 12.80", got)
	}
	phone.click("#pay")
	back := phone.waitLocation(p.CheckoutURL + "/return")
	if q, _ := url.Parse(back); q.Query().Get("method") != "alipay.trade.wap.pay.return" || q.Query().Get("sign") == "" {
		t.Errorf("returned to %s, want Alipay's signed wap return parameters", back)
	}
	checkoutSucceeded(phone)
	s.succeeded(p.ID, "alipay", "h5")
}

// Inside Alipay's own browser there is one way to pay, and the checkout starts it at once.
func TestInsideAlipayGoesStraightToTheCashier(t *testing.T) {
	s := start(t)
	p := s.createPayment(nil)
	phone := s.tab("alipay", insideAlipay)
	phone.open(p.CheckoutURL)
	phone.waitLocation(s.info.SandboxURL + "/gateway.do")
	phone.click("#pay")
	phone.waitLocation(p.CheckoutURL + "/return")
	checkoutSucceeded(phone)
	s.succeeded(p.ID, "alipay", "h5")
}

func TestInsideWeChatPaysWithJSAPIBridge(t *testing.T) {
	s := start(t)
	var login struct {
		OpenID string `json:"openid"`
	}
	if code := s.call("POST", s.info.SandboxURL+"/sandbox/wechatpay/login-codes", nil, &login); code/100 != 2 || login.OpenID == "" {
		t.Fatalf("sandbox login code: %d %+v", code, login)
	}
	p := s.createPayment(map[string]any{"provider": "wechatpay", "channel": "miniprogram", "payer": map[string]any{"openid": login.OpenID}})
	if p.NextAction["type"] != "wechat_jsapi" {
		t.Fatalf("next_action %v, want wechat_jsapi", p.NextAction)
	}
	phone := s.tab("wechat", insideWeChat)
	phone.open(p.CheckoutURL)
	// In sandbox mode the checkout loads the sandbox's emulated WeixinJSBridge, which shows
	// WeChat's payment sheet once paySign and the prepay_id check out.
	phone.waitVisible("#wx-bridge-confirm")
	if got := phone.text("#wx-bridge-amount"); !strings.Contains(got, "12.80") {
		t.Errorf("payment sheet amount %q, want 12.80", got)
	}
	phone.click("#wx-bridge-pay")
	checkoutSucceeded(phone)
	s.succeeded(p.ID, "wechatpay", "miniprogram")
}

func TestDesktopPaysOnAlipayWebCashierWithSignedReturn(t *testing.T) {
	s := start(t)
	p := s.createPayment(nil)
	pc := s.tab("desktop", desktop)
	pc.open(p.CheckoutURL)
	pc.click("#pay-alipay-web")
	pc.waitLocation(s.info.SandboxURL + "/gateway.do")
	if got := pc.text("#amount"); !strings.Contains(got, "12.80") {
		t.Errorf("web cashier amount %q, want 12.80", got)
	}
	pc.click("#pay")
	back := pc.waitLocation(p.CheckoutURL + "/return")
	q, _ := url.Parse(back)
	if q.Query().Get("method") != "alipay.trade.page.pay.return" || q.Query().Get("sign") == "" || q.Query().Get("trade_no") == "" {
		t.Errorf("returned to %s, want Alipay's signed page-pay return parameters", back)
	}
	checkoutSucceeded(pc)
	paid := s.succeeded(p.ID, "alipay", "web")
	if paid.ProviderRef.TradeNo != q.Query().Get("trade_no") {
		t.Errorf("trade_no: API %q, return %q", paid.ProviderRef.TradeNo, q.Query().Get("trade_no"))
	}
}

// A buyer who declines on WeChat's H5 page comes back to the checkout, is told the payment has
// not arrived, goes back to it and pays after all.
func TestPhoneDeclinesWeChatH5ThenPays(t *testing.T) {
	s := start(t)
	p := s.createPayment(nil)
	phone := s.tab("iphone", iPhone)
	phone.open(p.CheckoutURL)
	phone.click("#pay-wechat")
	phone.waitLocation(s.info.SandboxURL + "/sandbox/wechatpay/h5/")
	phone.click("#decline")
	phone.waitLocation(p.CheckoutURL + "/return")
	phone.waitVisible("#confirming")
	if got := phone.attr("#status", "data-status"); got != "pending" {
		t.Fatalf("after declining, the return page says %q, want pending", got)
	}
	if got := s.payment(p.ID).Status; got != "pending" {
		t.Fatalf("after declining, the payment is %s, want pending", got)
	}
	phone.click("#back-to-checkout")
	phone.waitLocation(p.CheckoutURL)
	phone.click("#continue") // the order is placed already: straight back to WeChat
	phone.waitLocation(s.info.SandboxURL + "/sandbox/wechatpay/h5/")
	phone.click("#pay")
	phone.waitLocation(p.CheckoutURL + "/return")
	checkoutSucceeded(phone)
	s.succeeded(p.ID, "wechatpay", "h5")
}

// Inside WeChat, a payment created without the buyer's openid gets it by WeChat web
// authorization: the checkout sends the buyer through WeChat's authorize page (silent for
// snsapi_base) and back, places the JSAPI order with that openid, and the bridge pays it.
func TestInsideWeChatGetsOpenIDByWebAuthorization(t *testing.T) {
	s := start(t)
	p := s.createPayment(nil)
	phone := s.tab("wechat", insideWeChat)
	phone.open(p.CheckoutURL)
	if n := run(phone, "look for #wechat-oauth-missing", chromedp.Evaluate[int](`document.querySelectorAll('#wechat-oauth-missing').length`)); n > 0 {
		t.Fatal("the checkout has no WeChat web authorization to get the buyer's openid: the node does not mount " +
			"identity.WebAuth and set checkout.Config.WeChatOAuth yet")
	}
	phone.waitVisible("#wx-bridge-confirm")
	placed := s.payment(p.ID)
	if placed.Provider != "wechatpay" || placed.Channel != "miniprogram" || placed.NextAction["type"] != "wechat_jsapi" {
		t.Fatalf("after web authorization the payment is %s/%s with %v, want a wechatpay JSAPI order", placed.Provider, placed.Channel, placed.NextAction)
	}
	phone.click("#wx-bridge-pay")
	checkoutSucceeded(phone)
	s.succeeded(p.ID, "wechatpay", "miniprogram")
}
