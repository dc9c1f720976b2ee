package wechatpay

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/h5"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/jsapi"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/native"
)

// page is an HTML answer, fetched without following redirects.
type page struct {
	status   int
	header   http.Header
	body     string
	location string
}

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (e *testEnv) get(path string) page {
	e.t.Helper()
	resp, err := noRedirects.Get(e.srv.URL + path)
	if err != nil {
		e.t.Fatal(err)
	}
	return readPage(e.t, resp)
}

func (e *testEnv) postForm(path string, form url.Values) page {
	e.t.Helper()
	resp, err := noRedirects.PostForm(e.srv.URL+path, form)
	if err != nil {
		e.t.Fatal(err)
	}
	return readPage(e.t, resp)
}

func readPage(t testing.TB, resp *http.Response) page {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return page{status: resp.StatusCode, header: resp.Header, body: string(b), location: resp.Header.Get("Location")}
}

// byID returns the text inside the element with id, or false if there is none.
func (p page) byID(id string) (string, bool) {
	m := regexp.MustCompile(`<[a-z]+ id="` + regexp.QuoteMeta(id) + `"[^>]*>([^<]*)<`).FindStringSubmatch(p.body)
	if m == nil {
		return "", false
	}
	return m[1], true
}

func (p page) has(id string) bool {
	return regexp.MustCompile(`\sid="` + regexp.QuoteMeta(id) + `"`).MatchString(p.body)
}

// result is #result's data-result attribute.
func (p page) result() string {
	m := regexp.MustCompile(`id="result" data-result="([a-z]+)"`).FindStringSubmatch(p.body)
	if m == nil {
		return ""
	}
	return m[1]
}

func (e *testEnv) queryOrder(outTradeNo string) (state, openid string) {
	e.t.Helper()
	js := jsapi.JsapiApiService{Client: e.pubKeyClient()}
	tx, _, err := js.QueryOrderByOutTradeNo(context.Background(), jsapi.QueryOrderByOutTradeNoRequest{
		OutTradeNo: core.String(outTradeNo), Mchid: core.String(e.creds.MchID)})
	if err != nil {
		e.t.Fatalf("query %s: %v", outTradeNo, err)
	}
	if tx.Payer != nil && tx.Payer.Openid != nil {
		openid = *tx.Payer.Openid
	}
	return *tx.TradeState, openid
}

const hostileDescription = `<script>alert("x")</script> & "quoted" 'single'`

func TestNativeScanPageAndPay(t *testing.T) {
	e := newEnv(t, "")
	sink := e.newSink()
	c := e.pubKeyClient()
	svc := native.NativeApiService{Client: c}
	resp, _, err := svc.Prepay(context.Background(), native.PrepayRequest{
		Appid: core.String(e.creds.AppID), Mchid: core.String(e.creds.MchID), Description: core.String(hostileDescription),
		OutTradeNo: core.String("scan_00001"), NotifyUrl: core.String(sink.srv.URL + "/n"), Amount: &native.Amount{Total: core.Int64(1234)},
	})
	if err != nil {
		t.Fatal(err)
	}
	codeURL := *resp.CodeUrl
	token := strings.TrimPrefix(codeURL, codeURLPrefix)

	p := e.get("/sandbox/wechatpay/scan?code_url=" + url.QueryEscape(codeURL))
	if p.status != http.StatusOK || !strings.HasPrefix(p.header.Get("Content-Type"), "text/html") {
		t.Fatalf("scan page: %d %s", p.status, p.header.Get("Content-Type"))
	}
	if amt, _ := p.byID("order-amount"); amt != "¥12.34" {
		t.Errorf("#order-amount = %q, want ¥12.34", amt)
	}
	// The description is shown escaped, never as markup.
	if strings.Contains(p.body, "<script>") {
		t.Error("description rendered as markup")
	}
	if d, _ := p.byID("order-description"); d != `&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#34;quoted&#34; &#39;single&#39;` {
		t.Errorf("#order-description = %q", d)
	}
	if !p.has("pay") || !p.has("decline") || p.has("result") {
		t.Errorf("an unpaid order needs #pay and #decline and no #result:\n%s", p.body)
	}
	if !strings.Contains(p.body, `action="/sandbox/wechatpay/native/`+token+`/pay"`) {
		t.Errorf("pay form does not post to the native pay action:\n%s", p.body)
	}
	if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP = %q", csp)
	}
	// The code_url's own page shows the same order.
	n := e.get("/sandbox/wechatpay/native/" + token)
	if o, _ := n.byID("order-out-trade-no"); n.status != http.StatusOK || o != "scan_00001" || !n.has("pay") {
		t.Errorf("native page: %d %q", n.status, o)
	}

	// Declining changes nothing.
	d := e.postForm("/sandbox/wechatpay/native/"+token+"/decline", nil)
	if d.status != http.StatusOK || d.result() != resultDeclined || d.has("pay") {
		t.Errorf("decline: %d %q\n%s", d.status, d.result(), d.body)
	}
	if st, _ := e.queryOrder("scan_00001"); st != "NOTPAY" {
		t.Errorf("after decline: %s", st)
	}

	// Paying from the page pays the order, as the default sandbox buyer, and notifies the merchant.
	paid := e.postForm("/sandbox/wechatpay/native/"+token+"/pay", url.Values{"openid": {""}})
	if paid.status != http.StatusOK || paid.result() != resultSuccess || paid.has("pay") {
		t.Fatalf("pay: %d %q\n%s", paid.status, paid.result(), paid.body)
	}
	st, openid := e.queryOrder("scan_00001")
	if st != "SUCCESS" || openid != e.sb.defaultBuyer() {
		t.Errorf("after pay: %s payer %s, want SUCCESS by %s", st, openid, e.sb.defaultBuyer())
	}
	tid, _ := paid.byID("order-transaction-id")
	got := sink.wait("TRANSACTION.SUCCESS", nil)
	if got.plaintext["out_trade_no"] != "scan_00001" || got.plaintext["transaction_id"] != tid || tid == "" {
		t.Errorf("notification %v, page transaction %q", got.plaintext, tid)
	}

	// Paid: the page says so and offers nothing; paying again is a conflict.
	again := e.get("/sandbox/wechatpay/scan?code_url=" + url.QueryEscape(codeURL))
	if again.status != http.StatusOK || again.result() != resultPaid || again.has("pay") {
		t.Errorf("paid page: %d %q", again.status, again.result())
	}
	if p := e.postForm("/sandbox/wechatpay/native/"+token+"/pay", nil); p.status != http.StatusConflict || p.result() != resultError {
		t.Errorf("pay twice: %d %q", p.status, p.result())
	}
	if p := e.postForm("/sandbox/wechatpay/native/"+token+"/decline", nil); p.status != http.StatusConflict {
		t.Errorf("decline paid: %d", p.status)
	}
}

func TestPayerPageChoosesBuyer(t *testing.T) {
	e := newEnv(t, "")
	codeURL := nativePrepay(t, e, e.pubKeyClient(), "scan_00002", "http://127.0.0.1:1/n", 1)
	token := strings.TrimPrefix(codeURL, codeURLPrefix)
	p := e.get("/sandbox/wechatpay/native/" + token + "?sandbox_openid=oTestBuyer_42")
	if !strings.Contains(p.body, `name="openid" value="oTestBuyer_42"`) {
		t.Fatalf("sandbox_openid not carried into the form:\n%s", p.body)
	}
	if a := e.postForm("/sandbox/wechatpay/native/"+token+"/pay", url.Values{"openid": {"oTestBuyer_42"}}); a.status != http.StatusOK {
		t.Fatalf("pay: %d", a.status)
	}
	if _, openid := e.queryOrder("scan_00002"); openid != "oTestBuyer_42" {
		t.Errorf("payer = %s", openid)
	}
	// The default buyer is stable across restarts.
	before := e.sb.defaultBuyer()
	e.restart()
	if e.sb.defaultBuyer() != before || !validOpenID(before) || len(before) != 28 {
		t.Errorf("default buyer %q then %q", before, e.sb.defaultBuyer())
	}
}

func TestPayerPageErrors(t *testing.T) {
	e := newEnv(t, "")
	codeURL := nativePrepay(t, e, e.pubKeyClient(), "scan_00003", "http://127.0.0.1:1/n", 1)
	token := strings.TrimPrefix(codeURL, codeURLPrefix)
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/sandbox/wechatpay/scan", http.StatusBadRequest},
		{"/sandbox/wechatpay/scan?code_url=" + url.QueryEscape("https://example.com/?pr="+token), http.StatusBadRequest},
		{"/sandbox/wechatpay/scan?code_url=" + url.QueryEscape(codeURLPrefix+"nope12345"), http.StatusNotFound},
		{"/sandbox/wechatpay/native/nope12345", http.StatusNotFound},
		{"/sandbox/wechatpay/native/" + url.PathEscape("bad token!"), http.StatusBadRequest},
		{"/sandbox/wechatpay/native/" + token + "?sandbox_openid=" + url.QueryEscape("<x>"), http.StatusBadRequest},
		{"/sandbox/wechatpay/h5/wxnope", http.StatusNotFound},
	} {
		p := e.get(tc.path)
		if p.status != tc.status || p.result() != resultError || p.has("pay") {
			t.Errorf("GET %s: %d %q, want %d error", tc.path, p.status, p.result(), tc.status)
		}
	}
	if p := e.postForm("/sandbox/wechatpay/native/nope12345/pay", nil); p.status != http.StatusNotFound {
		t.Errorf("pay unknown: %d", p.status)
	}
	if p := e.postForm("/sandbox/wechatpay/native/"+token+"/pay", url.Values{"openid": {"o\"><script>"}}); p.status != http.StatusBadRequest {
		t.Errorf("pay with a bad openid: %d", p.status)
	}
	if st, _ := e.queryOrder("scan_00003"); st != "NOTPAY" {
		t.Errorf("bad input paid the order: %s", st)
	}

	// A closed order cannot be paid from its page.
	svc := native.NativeApiService{Client: e.pubKeyClient()}
	if _, err := svc.CloseOrder(context.Background(), native.CloseOrderRequest{OutTradeNo: core.String("scan_00003"), Mchid: core.String(e.creds.MchID)}); err != nil {
		t.Fatal(err)
	}
	if p := e.get("/sandbox/wechatpay/native/" + token); p.status != http.StatusOK || p.result() != resultClosed || p.has("pay") {
		t.Errorf("closed page: %d %q", p.status, p.result())
	}
	if p := e.postForm("/sandbox/wechatpay/native/"+token+"/pay", nil); p.status != http.StatusConflict {
		t.Errorf("pay closed: %d", p.status)
	}
}

func h5Prepay(t *testing.T, e *testEnv, outTradeNo, notifyURL string) string {
	t.Helper()
	svc := h5.H5ApiService{Client: e.pubKeyClient()}
	resp, _, err := svc.Prepay(context.Background(), h5.PrepayRequest{
		Appid: core.String(e.creds.AppID), Mchid: core.String(e.creds.MchID), Description: core.String("H5 商品"),
		OutTradeNo: core.String(outTradeNo), NotifyUrl: core.String(notifyURL), Amount: &h5.Amount{Total: core.Int64(250)},
		SceneInfo: &h5.SceneInfo{PayerClientIp: core.String("127.0.0.1"), H5Info: &h5.H5Info{Type: core.String("Wap")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(*resp.H5Url, e.srv.URL)
}

// h5Path is an h5_url's path, without its query.
func h5Path(h5URL string) string { p, _, _ := strings.Cut(h5URL, "?"); return p }

func TestH5Page(t *testing.T) {
	e := newEnv(t, "")
	sink := e.newSink()
	h5URL := h5Prepay(t, e, "h5_page_01", sink.srv.URL+"/n")
	path := h5Path(h5URL)
	if !strings.HasPrefix(path, "/sandbox/wechatpay/h5/wx") || !strings.Contains(h5URL, "?package=") {
		t.Fatalf("h5_url = %q", h5URL)
	}
	back := "https://shop.example/orders/42?from=wx&x=<y>"
	// Real WeChat: the merchant appends &redirect_url= (urlencoded) to h5_url.
	p := e.get(h5URL + "&redirect_url=" + url.QueryEscape(back))
	if p.status != http.StatusOK || !p.has("pay") || !p.has("decline") {
		t.Fatalf("h5 page: %d\n%s", p.status, p.body)
	}
	if amt, _ := p.byID("order-amount"); amt != "¥2.50" {
		t.Errorf("#order-amount = %q", amt)
	}
	if !strings.Contains(p.body, `name="redirect_url" value="https://shop.example/orders/42?from=wx&amp;x=&lt;y&gt;"`) {
		t.Errorf("redirect_url not carried (escaped) into the forms:\n%s", p.body)
	}

	// Declining goes back to the merchant too, the order unpaid.
	d := e.postForm(path+"/decline", url.Values{"redirect_url": {back}})
	if d.status != http.StatusSeeOther || d.location != back {
		t.Errorf("decline: %d → %q", d.status, d.location)
	}
	// Paying goes back to the merchant, the order paid and notified.
	paid := e.postForm(path+"/pay", url.Values{"redirect_url": {back}})
	if paid.status != http.StatusSeeOther || paid.location != back {
		t.Fatalf("pay: %d → %q", paid.status, paid.location)
	}
	if st, _ := e.queryOrder("h5_page_01"); st != "SUCCESS" {
		t.Errorf("after pay: %s", st)
	}
	if n := sink.wait("TRANSACTION.SUCCESS", nil); n.plaintext["trade_type"] != "MWEB" {
		t.Errorf("notification %v", n.plaintext)
	}

	// Without redirect_url the page shows the outcome itself.
	path2 := h5Path(h5Prepay(t, e, "h5_page_02", "http://127.0.0.1:1/n"))
	if p := e.postForm(path2+"/pay", nil); p.status != http.StatusOK || p.result() != resultSuccess {
		t.Errorf("pay without redirect_url: %d %q", p.status, p.result())
	}
	// Only http(s) redirects, in the query and in the form.
	path3 := h5Path(h5Prepay(t, e, "h5_page_03", "http://127.0.0.1:1/n"))
	if p := e.get(path3 + "?redirect_url=" + url.QueryEscape("javascript:alert(1)")); p.status != http.StatusBadRequest {
		t.Errorf("javascript: redirect_url page: %d", p.status)
	}
	if p := e.postForm(path3+"/pay", url.Values{"redirect_url": {"javascript:alert(1)"}}); p.status != http.StatusBadRequest {
		t.Errorf("javascript: redirect_url pay: %d", p.status)
	}
	if st, _ := e.queryOrder("h5_page_03"); st != "NOTPAY" {
		t.Errorf("a refused redirect paid the order: %s", st)
	}

	// A JSAPI prepay_id is not an H5 page.
	js := jsapi.JsapiApiService{Client: e.pubKeyClient()}
	pr, _, err := js.Prepay(context.Background(), jsapi.PrepayRequest{
		Appid: core.String(e.creds.AppID), Mchid: core.String(e.creds.MchID), Description: core.String("x"),
		OutTradeNo: core.String("h5_jsapi_1"), NotifyUrl: core.String("http://127.0.0.1:1/n"), Amount: &jsapi.Amount{Total: core.Int64(1)},
		Payer: &jsapi.Payer{Openid: core.String("oSomeone")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if p := e.get("/sandbox/wechatpay/h5/" + *pr.PrepayId); p.status != http.StatusNotFound {
		t.Errorf("jsapi prepay_id as h5 page: %d", p.status)
	}
	if p := e.postForm("/sandbox/wechatpay/h5/"+*pr.PrepayId+"/pay", nil); p.status != http.StatusNotFound {
		t.Errorf("jsapi prepay_id paid from the h5 page: %d", p.status)
	}
}
