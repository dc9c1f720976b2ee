package wechatpay

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
)

// The payer pages stand in for what the WeChat app shows a payer: the sheet a scanned Native
// code_url opens (/sandbox/wechatpay/scan?code_url=… or /sandbox/wechatpay/native/{token}) and the
// page an H5 h5_url opens in a phone browser. Both show the order with Pay and Decline buttons that
// pay exactly as POST /sandbox/wechatpay/transactions/{out_trade_no}/pay does.
//
// Stable DOM ids for browser tests: #order-description, #order-amount, #order-out-trade-no,
// #order-state, #pay, #decline, and #result once there is an outcome (data-result tells which).

var payerPage = template.Must(template.New("payer").Parse(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{.Title}}</title>
<style>body{font-family:sans-serif;max-width:30rem;margin:2rem auto;padding:0 1rem;color:#111}
h1{font-size:1.3rem}.note{color:#666;font-size:.9rem}dt{color:#666}dd{margin:0 0 .8rem}
#order-amount{font-size:1.8rem;font-weight:bold}#result{font-size:1.2rem;padding:.6rem;border-radius:6px;background:#eef}
#result[data-result=success]{background:#e7f8ee}button{font-size:1.1rem;padding:.6rem 1.6rem;border-radius:6px;border:1px solid #ccc}
#pay{background:#07c160;color:#fff;border-color:#07c160}form{display:inline-block;margin:0 1rem 1rem 0}</style></head>
<body><main>
<h1>{{.Title}}</h1>
<p class="note">微信支付沙箱：不会产生真实扣款。WeChat Pay sandbox: no money moves.</p>
{{- if .HasOrder}}
<dl>
<dt>商品 / Description</dt><dd id="order-description">{{.Description}}</dd>
<dt>金额 / Amount</dt><dd id="order-amount">¥{{.Amount}}</dd>
<dt>商户号 / Merchant</dt><dd id="order-mchid">{{.MchID}}</dd>
<dt>商户订单号 / Order</dt><dd id="order-out-trade-no">{{.OutTradeNo}}</dd>
<dt>状态 / State</dt><dd id="order-state">{{.TradeState}}</dd>
{{- if .TransactionID}}
<dt>微信支付订单号 / Transaction</dt><dd id="order-transaction-id">{{.TransactionID}}</dd>
{{- end}}
</dl>
{{- end}}
{{- if .Result}}
<p id="result" data-result="{{.ResultKind}}">{{.Result}}</p>
{{- end}}
{{- if .Payable}}
<form method="post" action="{{.PayAction}}">
<input type="hidden" name="openid" value="{{.OpenID}}">
{{- if .RedirectURL}}
<input type="hidden" name="redirect_url" value="{{.RedirectURL}}">
{{- end}}
<button type="submit" id="pay">确认支付 / Pay</button>
</form>
<form method="post" action="{{.DeclineAction}}">
{{- if .RedirectURL}}
<input type="hidden" name="redirect_url" value="{{.RedirectURL}}">
{{- end}}
<button type="submit" id="decline">取消 / Decline</button>
</form>
{{- end}}
</main></body></html>
`))

type payerView struct {
	Title                                  string
	HasOrder                               bool
	Description, Amount, MchID, OutTradeNo string
	TradeState, TransactionID              string
	Payable                                bool
	PayAction, DeclineAction, OpenID       string
	RedirectURL                            string // H5: where to go after paying or declining
	Result, ResultKind                     string // #result text and data-result
}

// Result kinds (data-result on #result).
const (
	resultSuccess  = "success"  // paid just now
	resultDeclined = "declined" // the payer cancelled; the order is still unpaid
	resultPaid     = "paid"     // already paid before
	resultClosed   = "closed"   // closed or expired
	resultError    = "error"    // no such order, bad input, or a failure
)

// payerChannel is one kind of payer page: Native (keyed by code_url token) or H5 (keyed by prepay_id).
type payerChannel struct {
	title string
	path  string // URL prefix of the page; actions are path/{key}/pay and /decline
	find  func(ctx context.Context, q querier, mchid, key string) (*order, error)
	valid func(key string) bool
	// redirects: after paying or declining, go to the redirect_url parameter if there is one.
	redirects bool
}

var (
	nativeChannel = payerChannel{
		title: "微信支付 · 扫码支付 (sandbox)", path: "/sandbox/wechatpay/native/",
		find: getNativeOrder, valid: validNativeToken,
	}
	h5Channel = payerChannel{
		title: "微信支付 · H5支付 (sandbox)", path: "/sandbox/wechatpay/h5/",
		find: func(ctx context.Context, q querier, mchid, prepayID string) (*order, error) {
			o, err := getOrderByPrepayID(ctx, q, mchid, prepayID)
			if err == nil && o.TradeType != tradeH5 {
				return nil, errNoOrder // a JSAPI or APP prepay_id is not an h5_url
			}
			return o, err
		},
		valid:     validPrepayID,
		redirects: true,
	}
)

// validNativeToken accepts what follows pr= in a code_url the sandbox issues (9 letters and digits),
// with room for other lengths.
func validNativeToken(t string) bool { return validOutNo(t, "", 1, 64) }

// validPrepayID accepts the shape of WeChat's prepay ids (wx…, letters and digits).
func validPrepayID(id string) bool { return validOutNo(id, "", 1, 64) }

// validOpenID accepts what WeChat openids are made of.
func validOpenID(id string) bool {
	if id == "" || len(id) > maxOpenIDLen {
		return false
	}
	for _, c := range []byte(id) {
		if strings.IndexByte(openidChars, c) < 0 {
			return false
		}
	}
	return true
}

// parseCodeURL returns the token of a Native code_url, weixin://wxpay/bizpayurl?pr=<token>.
func parseCodeURL(codeURL string) (string, bool) {
	if len(codeURL) > 256 {
		return "", false
	}
	u, err := url.Parse(codeURL)
	if err != nil || u.Scheme != "weixin" || u.Host != "wxpay" || u.Path != "/bizpayurl" || u.Fragment != "" || u.User != nil {
		return "", false
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil || len(q) != 1 || len(q["pr"]) != 1 || !validNativeToken(q.Get("pr")) {
		return "", false
	}
	return q.Get("pr"), true
}

// defaultBuyer is the sandbox's stable payer: the openid the payer pages and web authorization use
// when a test names none. It is derived from the appid, so it survives restarts without storage.
func (s *Sandbox) defaultBuyer() string {
	sum := sha256.Sum256([]byte("hutong sandbox buyer\n" + s.keys.doc.AppID))
	return "o" + base64.RawURLEncoding.EncodeToString(sum[:])[:27]
}

func renderPayerPage(w http.ResponseWriter, status int, v payerView) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	// No scripts, nothing external. form-action is left open: an H5 page's forms end in a redirect to the merchant.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'")
	w.WriteHeader(status)
	_ = payerPage.Execute(w, v)
}

// orderView is the page's order part; the payer buttons are shown only while the order can be paid.
func (s *Sandbox) orderView(ch payerChannel, key string, o *order) payerView {
	st := o.tradeState(s.now())
	v := payerView{
		Title: ch.title, HasOrder: true, Description: o.Description, Amount: yuan(o.Total), MchID: o.MchID,
		OutTradeNo: o.OutTradeNo, TradeState: st + " · " + stateDesc[st], TransactionID: o.TransactionID,
		Payable:   st == stateNotPay,
		PayAction: ch.path + url.PathEscape(key) + "/pay", DeclineAction: ch.path + url.PathEscape(key) + "/decline",
	}
	switch st {
	case stateSuccess, stateRefund:
		v.Result, v.ResultKind = "该订单已支付 / This order has already been paid.", resultPaid
	case stateClosed:
		v.Result, v.ResultKind = "该订单已关闭或已过期 / This order is closed or has expired.", resultClosed
	}
	return v
}

// payerPageError shows why there is no payable order: 404 unknown, 409 not payable, 400 bad input, 500.
func (s *Sandbox) payerPageError(w http.ResponseWriter, ch payerChannel, err error) {
	v := payerView{Title: ch.title, ResultKind: resultError}
	var ae *apiError
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, errNoOrder):
		status, v.Result = http.StatusNotFound, "订单不存在 / No such order."
	case errors.As(err, &ae):
		status, v.Result = ae.Status, ae.Message
	default:
		s.log.Error("wechatpay sandbox: payer page", "err", err)
		v.Result = "系统错误 / The sandbox could not complete this."
	}
	renderPayerPage(w, status, v)
}

var errBadPayerInput = &apiError{Status: http.StatusBadRequest, Code: "PARAM_ERROR", Message: "参数错误 / Bad parameters."}

// handleScan is what scanning a Native QR code opens: the order its code_url names.
func (s *Sandbox) handleScan(w http.ResponseWriter, r *http.Request) {
	token, ok := parseCodeURL(r.URL.Query().Get("code_url"))
	if !ok {
		s.payerPageError(w, nativeChannel, &apiError{Status: http.StatusBadRequest, Code: "PARAM_ERROR",
			Message: "这不是微信支付的二维码 / code_url is not a WeChat Pay Native code (weixin://wxpay/bizpayurl?pr=…)."})
		return
	}
	s.servePayerPage(w, r, nativeChannel, token)
}

func (s *Sandbox) handleNativePage(w http.ResponseWriter, r *http.Request) {
	s.servePayerPage(w, r, nativeChannel, r.PathValue("token"))
}

func (s *Sandbox) handleNativePay(w http.ResponseWriter, r *http.Request) {
	s.payFromPage(w, r, nativeChannel, r.PathValue("token"))
}

func (s *Sandbox) handleNativeDecline(w http.ResponseWriter, r *http.Request) {
	s.declineFromPage(w, r, nativeChannel, r.PathValue("token"))
}

func (s *Sandbox) handleH5Page(w http.ResponseWriter, r *http.Request) {
	s.servePayerPage(w, r, h5Channel, r.PathValue("prepay_id"))
}

func (s *Sandbox) handleH5Pay(w http.ResponseWriter, r *http.Request) {
	s.payFromPage(w, r, h5Channel, r.PathValue("prepay_id"))
}

func (s *Sandbox) handleH5Decline(w http.ResponseWriter, r *http.Request) {
	s.declineFromPage(w, r, h5Channel, r.PathValue("prepay_id"))
}

// servePayerPage shows the order. Query parameters: sandbox_openid fixes the payer (a test's buyer);
// redirect_url (H5, appended by the merchant as with real WeChat) is where the payer returns.
func (s *Sandbox) servePayerPage(w http.ResponseWriter, r *http.Request, ch payerChannel, key string) {
	q := r.URL.Query()
	openid := q.Get("sandbox_openid")
	redirect := ""
	if ch.redirects {
		redirect = q.Get("redirect_url")
	}
	if !ch.valid(key) || (openid != "" && !validOpenID(openid)) || (redirect != "" && !validRedirect(redirect)) {
		s.payerPageError(w, ch, errBadPayerInput)
		return
	}
	o, err := ch.find(r.Context(), s.db, s.keys.doc.MchID, key)
	if err != nil {
		s.payerPageError(w, ch, err)
		return
	}
	v := s.orderView(ch, key, o)
	v.OpenID, v.RedirectURL = openid, redirect
	renderPayerPage(w, http.StatusOK, v)
}

// payerForm reads a payer page's POST form: the payer's openid and the H5 redirect_url.
func payerForm(w http.ResponseWriter, r *http.Request, ch payerChannel, key string) (openid, redirect string, ok bool) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return "", "", false
	}
	openid = r.PostForm.Get("openid")
	if ch.redirects {
		redirect = r.PostForm.Get("redirect_url")
	}
	ok = ch.valid(key) && (openid == "" || validOpenID(openid)) && (redirect == "" || validRedirect(redirect))
	return openid, redirect, ok
}

// payFromPage is the Pay button: the order is paid as by the pay control endpoint, then H5 returns to
// the merchant's redirect_url, and anything else shows the result.
func (s *Sandbox) payFromPage(w http.ResponseWriter, r *http.Request, ch payerChannel, key string) {
	openid, redirect, ok := payerForm(w, r, ch, key)
	if !ok {
		s.payerPageError(w, ch, errBadPayerInput)
		return
	}
	mchid := s.keys.doc.MchID
	paid, err := s.payOrder(r.Context(), func(q querier) (*order, error) {
		return ch.find(r.Context(), q, mchid, key)
	}, openid, s.defaultBuyer)
	if err != nil {
		s.payerPageError(w, ch, err)
		return
	}
	if redirect != "" {
		http.Redirect(w, r, redirect, http.StatusSeeOther)
		return
	}
	v := s.orderView(ch, key, paid)
	v.Result, v.ResultKind = "支付成功 / Payment succeeded.", resultSuccess
	renderPayerPage(w, http.StatusOK, v)
}

// declineFromPage is the Decline button: as in WeChat, the order stays unpaid; H5 returns to the
// merchant's redirect_url, which real WeChat also does when the payer gives up.
func (s *Sandbox) declineFromPage(w http.ResponseWriter, r *http.Request, ch payerChannel, key string) {
	_, redirect, ok := payerForm(w, r, ch, key)
	if !ok {
		s.payerPageError(w, ch, errBadPayerInput)
		return
	}
	o, err := ch.find(r.Context(), s.db, s.keys.doc.MchID, key)
	if err != nil {
		s.payerPageError(w, ch, err)
		return
	}
	if st := o.tradeState(s.now()); st != stateNotPay {
		s.payerPageError(w, ch, notPayable(st))
		return
	}
	if redirect != "" {
		http.Redirect(w, r, redirect, http.StatusSeeOther)
		return
	}
	v := s.orderView(ch, key, o)
	v.Payable = false
	v.Result, v.ResultKind = "已取消支付，订单仍未支付 / You declined; the order is still unpaid.", resultDeclined
	renderPayerPage(w, http.StatusOK, v)
}

// validRedirect accepts absolute http(s) URLs only, so the page never sends the payer to javascript: or the like.
func validRedirect(s string) bool {
	if len(s) > 2048 {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.User == nil
}
