package alipay

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	sdk "github.com/smartwalle/alipay/v3"
)

// noRedirect is a browser that shows us each redirect instead of following it.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

var payAction = regexp.MustCompile(`action="(/sandbox/alipay/cashier/[0-9]+/pay)"`)
var declineAction = regexp.MustCompile(`action="(/sandbox/alipay/cashier/[0-9]+/decline)"`)

func getPage(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := noRedirect.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func submit(t *testing.T, e *env, page string, action *regexp.Regexp) *http.Response {
	t.Helper()
	m := action.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no form %s on the page:\n%s", action, page)
	}
	resp, err := noRedirect.PostForm(e.srv.URL+m[1], url.Values{"buyer_id": {""}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// returnServer is the merchant's return_url: it verifies what the browser brings back.
func returnServer(t *testing.T, client *sdk.Client) (*httptest.Server, chan error) {
	verdicts := make(chan error, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		verdicts <- client.VerifySign(r.URL.Query())
		_, _ = w.Write([]byte("thanks"))
	}))
	t.Cleanup(srv.Close)
	return srv, verdicts
}

func TestPagePayRedirectFlow(t *testing.T) {
	e := newEnv(t)
	ns := newNotifyServer(t, 0)
	ret, verdicts := returnServer(t, e.client)
	u, err := e.client.TradePagePay(sdk.TradePagePay{Trade: sdk.Trade{NotifyURL: ns.srv.URL, ReturnURL: ret.URL + "/return",
		Subject: "桌面商品", OutTradeNo: "page-1", TotalAmount: "66.60", ProductCode: "FAST_INSTANT_TRADE_PAY"}})
	if err != nil {
		t.Fatal(err)
	}
	status, page := getPage(t, u.String())
	if status != 200 || !strings.Contains(page, "桌面商品") || !strings.Contains(page, "66.60") {
		t.Fatalf("cashier page: got %d\n%s", status, page)
	}
	q := e.query("page-1")
	if q.TradeStatus != sdk.TradeStatusWaitBuyerPay {
		t.Fatalf("opened page trade: got %+v", q)
	}
	if _, again := getPage(t, u.String()); !strings.Contains(again, q.TradeNo) {
		t.Fatal("reopening the cashier must show the same trade")
	}

	resp := submit(t, e, page, payAction)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("pay: got %d, want 303", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), ret.URL+"/return?") {
		t.Fatalf("redirect: got %q", resp.Header.Get("Location"))
	}
	v := loc.Query()
	if err := e.client.VerifySign(v); err != nil {
		t.Fatalf("VerifySign on the return parameters: %v", err)
	}
	if v.Get("method") != "alipay.trade.page.pay.return" || v.Get("out_trade_no") != "page-1" || v.Get("total_amount") != "66.60" ||
		v.Get("trade_no") != q.TradeNo || v.Get("app_id") != e.sb.Credentials().AppID || v.Get("auth_app_id") != v.Get("app_id") ||
		v.Get("seller_id") == "" || v.Get("charset") != "utf-8" || v.Get("version") != "1.0" || v.Get("sign_type") != "RSA2" || v.Get("timestamp") == "" {
		t.Fatalf("return parameters: got %v", v)
	}
	// The browser follows the redirect to the merchant.
	follow, err := http.Get(loc.String())
	if err != nil {
		t.Fatal(err)
	}
	follow.Body.Close()
	if err := <-verdicts; err != nil {
		t.Fatalf("return_url verification: %v", err)
	}
	if n, err := e.client.DecodeNotification(ns.next(t)); err != nil || n.TradeStatus != sdk.TradeStatusSuccess || n.OutTradeNo != "page-1" {
		t.Fatalf("notification: %v %+v", err, n)
	}
	if q := e.query("page-1"); q.TradeStatus != sdk.TradeStatusSuccess {
		t.Fatalf("after pay: got %s", q.TradeStatus)
	}

	// Paying again from the same page, or reopening the paid trade, is refused.
	if resp := submit(t, e, page, payAction); resp.StatusCode != http.StatusConflict {
		t.Fatalf("second pay: got %d, want 409", resp.StatusCode)
	}
	if _, paid := getPage(t, u.String()); !strings.Contains(paid, "ACQ.TRADE_HAS_SUCCESS") {
		t.Fatalf("reopening a paid trade:\n%s", paid)
	}
}

func TestWapPayReturnAndQuit(t *testing.T) {
	e := newEnv(t)
	ret, verdicts := returnServer(t, e.client)
	u, err := e.client.TradeWapPay(sdk.TradeWapPay{Trade: sdk.Trade{ReturnURL: ret.URL + "/r", Subject: "手机商品",
		OutTradeNo: "wap-1", TotalAmount: "1.01", ProductCode: "QUICK_WAP_WAY"}, QuitURL: ret.URL + "/quit"})
	if err != nil {
		t.Fatal(err)
	}
	_, page := getPage(t, u.String())
	if !strings.Contains(page, ret.URL+"/quit") {
		t.Fatalf("wap cashier must link quit_url:\n%s", page)
	}
	resp := submit(t, e, page, payAction)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc.Query().Get("method") != "alipay.trade.wap.pay.return" {
		t.Fatalf("wap return: got %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if err := e.client.VerifySign(loc.Query()); err != nil {
		t.Fatalf("VerifySign: %v", err)
	}
	select {
	case err := <-verdicts:
		t.Fatalf("the test browser should not have followed: %v", err)
	default:
	}

	u2, _ := e.client.TradeWapPay(sdk.TradeWapPay{Trade: sdk.Trade{ReturnURL: ret.URL + "/r", Subject: "s",
		OutTradeNo: "wap-2", TotalAmount: "1.00", ProductCode: "QUICK_WAP_WAY"}, QuitURL: ret.URL + "/quit"})
	_, page2 := getPage(t, u2.String())
	resp = submit(t, e, page2, declineAction)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != ret.URL+"/quit" {
		t.Fatalf("decline: got %d %q, want a redirect to quit_url", resp.StatusCode, resp.Header.Get("Location"))
	}
	if q := e.query("wap-2"); q.TradeStatus != sdk.TradeStatusClosed {
		t.Fatalf("declined wap trade: got %s", q.TradeStatus)
	}
}

// The Node SDK's pageExecute posts a form to gateway.do?<common params + sign> with biz_content in the body.
func TestPageExecutePostForm(t *testing.T) {
	e := newEnv(t)
	all := e.signedParams("alipay.trade.page.pay",
		`{"out_trade_no":"node-page","total_amount":"9.90","subject":"表单","product_code":"FAST_INSTANT_TRADE_PAY"}`,
		url.Values{"alipay_sdk": {"alipay-sdk-nodejs-4.0.0"}, "return_url": {"http://127.0.0.1:9/r"}})
	body := url.Values{"biz_content": all["biz_content"]}
	all.Del("biz_content")
	resp, err := http.PostForm(e.srv.URL+"/gateway.do?"+all.Encode(), body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "表单") || !payAction.Match(b) {
		t.Fatalf("POST form cashier: got %d\n%s", resp.StatusCode, b)
	}
}

func TestCashierErrorsAndAppPay(t *testing.T) {
	e := newEnv(t)
	u, _ := e.client.TradePagePay(sdk.TradePagePay{Trade: sdk.Trade{Subject: "s", OutTradeNo: "bad-sig", TotalAmount: "1.00"}})
	q := u.Query()
	q.Set("biz_content", strings.Replace(q.Get("biz_content"), "1.00", "0.01", 1))
	u.RawQuery = q.Encode()
	status, page := getPage(t, u.String())
	if status != 200 || !strings.Contains(page, "isv.invalid-signature") || payAction.MatchString(page) {
		t.Fatalf("tampered page pay: got %d\n%s", status, page)
	}
	u, _ = e.client.TradePagePay(sdk.TradePagePay{Trade: sdk.Trade{Subject: "s", OutTradeNo: "bad-amt", TotalAmount: "1.001"}})
	if _, page := getPage(t, u.String()); !strings.Contains(page, "ACQ.INVALID_PARAMETER") {
		t.Fatalf("bad amount page pay:\n%s", page)
	}

	// app.pay's order string, handed to the gateway as the Alipay app would, opens the cashier too.
	orderString, err := e.client.TradeAppPay(sdk.TradeAppPay{Trade: sdk.Trade{Subject: "应用", OutTradeNo: "app-1", TotalAmount: "2.00"}})
	if err != nil {
		t.Fatal(err)
	}
	_, page = getPage(t, e.srv.URL+"/gateway.do?"+orderString)
	resp := submit(t, e, page, payAction)
	if resp.StatusCode != 200 {
		t.Fatalf("app pay: got %d", resp.StatusCode)
	}
	if q := e.query("app-1"); q.TradeStatus != sdk.TradeStatusSuccess {
		t.Fatalf("app trade: got %s", q.TradeStatus)
	}
}

func TestQRCodePage(t *testing.T) {
	e := newEnv(t)
	rsp := e.precreate("qr-page", "3.30", "")
	status, page := getPage(t, rsp.QRCode)
	if status != 200 || !strings.Contains(page, "3.30") {
		t.Fatalf("QR page: got %d\n%s", status, page)
	}
	if q := e.query("qr-page"); q.TradeStatus != sdk.TradeStatusWaitBuyerPay {
		t.Fatalf("scanned by opening the QR code: got %+v", q)
	}
	resp := submit(t, e, page, payAction)
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "支付成功") {
		t.Fatalf("pay from the QR page: got %d\n%s", resp.StatusCode, b)
	}
	if q := e.query("qr-page"); q.TradeStatus != sdk.TradeStatusSuccess {
		t.Fatalf("after pay: got %s", q.TradeStatus)
	}
	if status, _ := getPage(t, rsp.QRCode); status != http.StatusConflict {
		t.Fatalf("scanning a paid QR code: got %d, want 409", status)
	}
	if status, _ := getPage(t, e.srv.URL+"/sandbox/alipay/qr/nope"); status != http.StatusNotFound {
		t.Fatalf("unknown QR code: got %d, want 404", status)
	}
}
