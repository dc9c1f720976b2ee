package alipay

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
)

// The cashier stands in for Alipay's checkout pages: page.pay and wap.pay requests (GET from the
// browser, or the Node SDK's POST form), app.pay order strings and scanned QR codes all land on a
// page showing the trade with a Pay button. Paying redirects to return_url with the signed sync
// return parameters, as Alipay does.

var cashierPage = template.Must(template.New("cashier").Parse(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>支付宝沙箱收银台</title>
<style>body{font-family:sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem}
dt{color:#666}dd{margin:0 0 .8rem}#amount{font-size:1.6rem}button{font-size:1.1rem;padding:.5rem 1.5rem}
form{display:inline-block;margin-right:1rem}</style></head>
<body>
<h1>支付宝沙箱收银台</h1>
<p>Alipay sandbox cashier: no money moves.</p>
<dl>
<dt>商品 / Subject</dt><dd id="subject">{{.Subject}}</dd>
<dt>金额 / Amount</dt><dd id="amount">¥{{.Amount}}</dd>
<dt>商户订单号 / Order</dt><dd id="out_trade_no">{{.OutTradeNo}}</dd>
<dt>支付宝交易号 / Trade</dt><dd id="trade_no">{{.TradeNo}}</dd>
</dl>
<form method="post" action="/sandbox/alipay/cashier/{{.TradeNo}}/pay">
<input type="hidden" name="buyer_id" value="{{.BuyerID}}">
<button type="submit" id="pay" name="action" value="pay">确认付款 / Pay</button>
</form>
<form method="post" action="/sandbox/alipay/cashier/{{.TradeNo}}/decline">
<button type="submit" id="decline" name="action" value="decline">取消 / Cancel</button>
</form>
{{if .QuitURL}}<p><a id="quit" href="{{.QuitURL}}">返回商户 / Back to merchant</a></p>{{end}}
</body></html>
`))

var messagePage = template.Must(template.New("message").Parse(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{.Title}}</title></head>
<body><h1 id="title">{{.Title}}</h1>
{{if .Code}}<p>错误代码 / Error code: <code id="code">{{.Code}}</code> <code id="sub_code">{{.SubCode}}</code></p>{{end}}
<p id="message">{{.Message}}</p>
{{if .Link}}<p><a id="link" href="{{.Link}}">{{.Link}}</a></p>{{end}}
</body></html>
`))

type cashierView struct {
	Subject, Amount, OutTradeNo, TradeNo, BuyerID, QuitURL string
}

type messageView struct {
	Title, Code, SubCode, Message, Link string
}

func renderHTML(w http.ResponseWriter, status int, t *template.Template, v any) {
	w.Header().Set("Content-Type", "text/html;charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = t.Execute(w, v)
}

func (s *Sandbox) renderCashier(w http.ResponseWriter, t *trade) {
	renderHTML(w, http.StatusOK, cashierPage, cashierView{
		Subject: t.Subject, Amount: formatYuan(t.TotalFen), OutTradeNo: t.OutTradeNo, TradeNo: t.TradeNo,
		BuyerID: t.BuyerID, QuitURL: safeLink(t.QuitURL),
	})
}

// writeCashierError shows a gateway error as Alipay's error page does: HTTP 200, the codes on the page.
func (s *Sandbox) writeCashierError(w http.ResponseWriter, e *apiError) {
	renderHTML(w, http.StatusOK, messagePage, messageView{Title: "支付宝 - 错误", Code: e.Code, SubCode: e.SubCode, Message: e.SubMsg})
}

// serveCashierRequest opens (or reopens) the trade a verified page/wap/app pay request describes and
// shows the cashier.
func (s *Sandbox) serveCashierRequest(ctx context.Context, w http.ResponseWriter, kind string, req *gatewayRequest) {
	tr, apiErr := s.readTradeRequest(req, kind)
	if apiErr != nil {
		s.writeCashierError(w, apiErr)
		return
	}
	t, apiErr, err := s.openTrade(ctx, tr)
	if apiErr != nil || err != nil {
		s.writeCashierError(w, s.internal(err, apiErr))
		return
	}
	s.renderCashier(w, t)
}

// handleQRPage is what the Alipay app shows after scanning a precreate QR code: scanning makes the
// trade exist for the merchant, then the payer confirms on the cashier.
func (s *Sandbox) handleQRPage(w http.ResponseWriter, r *http.Request) {
	t, err := s.scan(r.Context(), "", r.PathValue("token"), "")
	if err != nil {
		s.payerErrorPage(w, err)
		return
	}
	s.renderCashier(w, t)
}

func (s *Sandbox) payerErrorPage(w http.ResponseWriter, err error) {
	status, code := payerStatus(err)
	if status == http.StatusInternalServerError {
		s.log.Error("alipay sandbox: payer action", "err", err)
	}
	renderHTML(w, status, messagePage, messageView{Title: "支付宝 - 无法支付", Code: code, Message: payerMessage(err)})
}

// handleCashierPay is the cashier's Pay button.
func (s *Sandbox) handleCashierPay(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	_ = r.ParseForm()
	t, err := s.pay(r.Context(), "", r.PathValue("trade_no"), strings.TrimSpace(r.PostForm.Get("buyer_id")))
	if err != nil {
		s.payerErrorPage(w, err)
		return
	}
	if t.ReturnURL != "" && (t.Kind == kindPage || t.Kind == kindWap) {
		target, err := s.syncReturnURL(t)
		if err == nil {
			http.Redirect(w, r, target, http.StatusSeeOther)
			return
		}
		s.log.Warn("alipay sandbox: bad return_url", "out_trade_no", t.OutTradeNo, "err", err)
	}
	renderHTML(w, http.StatusOK, messagePage, messageView{Title: "支付成功", Message: "付款成功 ¥" + formatYuan(t.TotalFen) + " — " + t.Subject})
}

// handleCashierDecline is the cashier's Cancel button: the trade is closed; wap pay goes back to quit_url.
func (s *Sandbox) handleCashierDecline(w http.ResponseWriter, r *http.Request) {
	t, err := s.decline(r.Context(), "", r.PathValue("trade_no"))
	if err != nil {
		s.payerErrorPage(w, err)
		return
	}
	if link := safeLink(t.QuitURL); link != "" {
		http.Redirect(w, r, link, http.StatusSeeOther)
		return
	}
	renderHTML(w, http.StatusOK, messagePage, messageView{Title: "交易已取消", Message: "The payer cancelled; the trade is closed."})
}

// syncReturnURL is return_url with the signed sync return parameters appended. They are signed like a
// notification (sign and sign_type left out of the signing string).
func (s *Sandbox) syncReturnURL(t *trade) (string, error) {
	u, err := url.Parse(t.ReturnURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return "", errors.New("return_url is not an http(s) URL")
	}
	method := "alipay.trade.page.pay.return"
	if t.Kind == kindWap {
		method = "alipay.trade.wap.pay.return"
	}
	v := url.Values{}
	v.Set("charset", "utf-8")
	v.Set("out_trade_no", t.OutTradeNo)
	v.Set("method", method)
	v.Set("total_amount", formatYuan(t.TotalFen))
	v.Set("trade_no", t.TradeNo)
	v.Set("auth_app_id", t.AppID)
	v.Set("version", "1.0")
	v.Set("app_id", t.AppID)
	v.Set("sign_type", "RSA2")
	v.Set("seller_id", s.app.sellerID)
	v.Set("timestamp", timeText(s.now()))
	sig, err := signRSA2(s.app.alipayKey, []byte(signContent(v, false, "sign", "sign_type")))
	if err != nil {
		return "", err
	}
	v.Set("sign", sig)
	// The merchant's own query stays as it was; Alipay appends its parameters.
	if u.RawQuery != "" {
		u.RawQuery += "&" + v.Encode()
	} else {
		u.RawQuery = v.Encode()
	}
	return u.String(), nil
}

// safeLink keeps only http(s) links for the page (html/template would neuter others anyway).
func safeLink(s string) string {
	if u, err := url.Parse(s); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		return s
	}
	return ""
}
