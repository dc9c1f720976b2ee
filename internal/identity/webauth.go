package identity

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

// WebAuthConfig wires a WebAuth.
type WebAuthConfig struct {
	Gateway *gateway.Service
	WeChat  *WeChat
	// StateKey signs the OAuth state. Every node behind the public URL must use the same key, as
	// the callback may reach another node than the start. Nil: derived from the WeChat app
	// secret, which those nodes share anyway.
	StateKey []byte
	// StateTTL is how long a buyer has to come back from WeChat; default 10 minutes.
	StateTTL time.Duration
	Now      func() time.Time
	Logger   *slog.Logger
}

// WebAuth serves WeChat web authorization for the hosted checkout: a buyer inside WeChat whose
// payment has no openid goes through WeChat's /connect/oauth2/authorize and back, and the openid
// obtained places the payment's JSAPI order (gateway ChooseMethod, wechatpay miniprogram).
type WebAuth struct {
	gw     *gateway.Service
	wx     *WeChat
	key    []byte
	ttl    time.Duration
	now    func() time.Time
	log    *slog.Logger
	secure bool // the public URL is https: cookies are Secure
}

// NewWebAuth returns a WebAuth.
func NewWebAuth(cfg WebAuthConfig) *WebAuth {
	a := &WebAuth{gw: cfg.Gateway, wx: cfg.WeChat, key: cfg.StateKey, ttl: cfg.StateTTL, now: cfg.Now, log: cfg.Logger}
	if a.key == nil {
		m := hmac.New(sha256.New, []byte(cfg.WeChat.secret))
		m.Write([]byte("hutong identity: wechat web authorization state v1"))
		a.key = m.Sum(nil)
	}
	if a.ttl <= 0 {
		a.ttl = 10 * time.Minute
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.secure = strings.HasPrefix(a.gw.CheckoutURL(""), "https:")
	return a
}

// Register mounts on mux, beside the checkout (checkout.Config.WeChatOAuth tells it they are there):
//
//	GET /checkout/{id}/wechat-oauth            sends the buyer to WeChat's authorize page
//	GET /checkout/{id}/wechat-oauth/callback   where WeChat sends them back with a code
func (a *WebAuth) Register(mux *http.ServeMux) {
	mux.Handle("GET /checkout/{id}/wechat-oauth", secure(a.serveStart))
	mux.Handle("GET /checkout/{id}/wechat-oauth/callback", secure(a.serveCallback))
}

// secure sets the headers of every answer: nothing is cached, framed or sniffed, and no
// Referer leaves with the callback's URL, which holds a code.
func secure(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Cache-Control", "no-store")
		hd.Set("Content-Security-Policy", "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		h(w, r)
	})
}

// cookieName holds the browser's nonce that the state is bound to, so that only the browser
// that started an authorization can finish it (a callback URL with someone else's code, sent
// to a buyer, is refused).
const cookieName = "hutong_wxoauth"

func (a *WebAuth) serveStart(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	p, ok := a.payment(w, r, id)
	if !ok {
		return
	}
	if !a.needsOpenID(p) {
		a.backToCheckout(w, r, id)
		return
	}
	nonce := randomToken()
	exp := a.now().Add(a.ttl).Unix()
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: nonce, Path: "/checkout/" + id + "/wechat-oauth", MaxAge: int(a.ttl / time.Second),
		HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteLaxMode, // Lax: sent on WeChat's top-level redirect back
	})
	redirect := a.gw.CheckoutURL(id) + "/wechat-oauth/callback" + langQuery(r)
	http.Redirect(w, r, a.wx.AuthorizeURL(redirect, signState(a.key, id, nonce, exp)), http.StatusFound)
}

func (a *WebAuth) serveCallback(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	q := r.URL.Query()
	p, ok := a.payment(w, r, id)
	if !ok {
		return
	}
	if !a.needsOpenID(p) {
		// Already done (the callback reloaded, say), or no longer payable: the checkout shows
		// the payment as it is, and the code would be refused as used anyway.
		a.backToCheckout(w, r, id)
		return
	}
	cookie, err := r.Cookie(cookieName)
	if err != nil || !verifyState(a.key, id, cookie.Value, q.Get("state"), a.now()) {
		a.page(w, r, id, http.StatusBadRequest, msgExpired)
		return
	}
	a.clearCookie(w, id)
	code := q.Get("code")
	if code == "" || checkCode(code) != nil {
		a.page(w, r, id, http.StatusBadRequest, msgDenied)
		return
	}
	idn, err := a.wx.ExchangeWebCode(r.Context(), code)
	if err != nil {
		a.log.WarnContext(r.Context(), "identity: web authorization code exchange failed", "payment_id", id, "err", err)
		status := http.StatusBadGateway
		if payment.KindOf(err) == payment.Invalid {
			status = http.StatusBadRequest
		}
		a.page(w, r, id, status, msgFailed)
		return
	}
	_, err = a.gw.ChooseMethod(r.Context(), id, payment.WeChatPay, payment.ChannelMiniProgram, &payment.Payer{OpenID: idn.OpenID})
	if err != nil {
		switch payment.KindOf(err) {
		case payment.Internal:
			a.log.ErrorContext(r.Context(), "identity: place the JSAPI order after web authorization", "payment_id", id, "err", err)
			a.page(w, r, id, http.StatusInternalServerError, msgFailed)
			return
		case payment.Invalid:
			a.log.WarnContext(r.Context(), "identity: JSAPI order refused after web authorization", "payment_id", id, "err", err)
			a.page(w, r, id, http.StatusBadRequest, msgFailed)
			return
		}
		// Conflicts (expired, another method chosen) and wallet refusals are on the payment
		// now: the checkout page shows them.
		a.log.InfoContext(r.Context(), "identity: JSAPI order not placed after web authorization", "payment_id", id, "err", err)
	}
	a.backToCheckout(w, r, id)
}

// payment loads payment id for a page, answering the buyer itself when it cannot.
func (a *WebAuth) payment(w http.ResponseWriter, r *http.Request, id string) (*payment.Payment, bool) {
	if !validPaymentID(id) {
		a.page(w, r, "", http.StatusNotFound, msgNotFound)
		return nil, false
	}
	p, err := a.gw.Store().Payment(r.Context(), "", id)
	switch {
	case payment.IsNotFound(err):
		a.page(w, r, "", http.StatusNotFound, msgNotFound)
		return nil, false
	case err != nil:
		a.log.ErrorContext(r.Context(), "identity: load payment for web authorization", "payment_id", id, "err", err)
		a.page(w, r, id, http.StatusInternalServerError, msgFailed)
		return nil, false
	}
	return p, true
}

// needsOpenID reports whether p still waits for the buyer's WeChat openid to be paid inside
// WeChat; anything else is for the checkout page to show.
func (a *WebAuth) needsOpenID(p *payment.Payment) bool {
	return p.Status == payment.StatusPending && p.NextAction == nil && (p.Payer == nil || p.Payer.OpenID == "") &&
		a.now().Before(p.ExpiresAt)
}

func (a *WebAuth) backToCheckout(w http.ResponseWriter, r *http.Request, id string) {
	http.Redirect(w, r, "/checkout/"+id+langQuery(r), http.StatusFound)
}

func (a *WebAuth) clearCookie(w http.ResponseWriter, id string) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/checkout/" + id + "/wechat-oauth", MaxAge: -1,
		HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteLaxMode})
}

// validPaymentID reports whether id has the shape of a payment id, "pay_" and 24 of [0-9A-Za-z].
func validPaymentID(id string) bool {
	rest, ok := strings.CutPrefix(id, "pay_")
	return ok && validCustomerID("cus_"+rest)
}

// langQuery carries the checkout's explicit ?lang= (zh or en) through the round trip.
func langQuery(r *http.Request) string {
	switch l := r.URL.Query().Get("lang"); l {
	case "zh", "en":
		return "?lang=" + l
	}
	return ""
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// State is "<expiry, unix seconds, base 36>.<MAC>", the MAC binding the payment id, the
// expiry and the browser's cookie nonce: 32 characters, within WeChat's 128-byte state.
func signState(key []byte, paymentID, nonce string, exp int64) string {
	e := strconv.FormatInt(exp, 36)
	return e + "." + stateMAC(key, paymentID, nonce, e)
}

func stateMAC(key []byte, paymentID, nonce, exp string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("wechat-oauth\n" + paymentID + "\n" + nonce + "\n" + exp))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}

// verifyState reports whether state was signed for paymentID and nonce and has not expired.
func verifyState(key []byte, paymentID, nonce, state string, now time.Time) bool {
	e, mac, ok := strings.Cut(state, ".")
	if !ok || nonce == "" || len(e) > 13 {
		return false
	}
	exp, err := strconv.ParseInt(e, 36, 64)
	if err != nil || !now.Before(time.Unix(exp, 0)) {
		return false
	}
	return hmac.Equal([]byte(mac), []byte(stateMAC(key, paymentID, nonce, e)))
}

// Buyer-facing messages, in both languages the checkout speaks.
type message struct{ zh, en string }

var (
	msgNotFound = message{"找不到这笔付款。", "This payment could not be found."}
	msgExpired  = message{"微信授权已过期或无效，请重试。", "The WeChat authorization expired or is not valid. Please try again."}
	msgDenied   = message{"未获得微信授权，无法在微信内付款。", "WeChat did not authorize the payment page, so it cannot pay inside WeChat."}
	msgFailed   = message{"暂时无法通过微信授权，请稍后重试。", "The WeChat authorization could not be completed. Please try again later."}
)

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{if eq .Lang "en"}}WeChat authorization{{else}}微信授权{{end}}</title></head>
<body><p id="message">{{.Text}}</p>
{{- if .Retry}}
<p><a id="retry" href="{{.Retry}}">{{if eq .Lang "en"}}Try again{{else}}重试{{end}}</a> · <a id="back" href="{{.Back}}">{{if eq .Lang "en"}}Back to the payment{{else}}返回付款页面{{end}}</a></p>
{{- end}}
</body></html>
`))

// page answers the buyer with a message; with a payment id it offers to retry and to go back.
func (a *WebAuth) page(w http.ResponseWriter, r *http.Request, id string, status int, m message) {
	lang, text := "zh", m.zh
	if l := r.URL.Query().Get("lang"); l == "en" || (l == "" && !strings.HasPrefix(r.Header.Get("Accept-Language"), "zh")) {
		lang, text = "en", m.en
	}
	v := struct{ Lang, Text, Retry, Back string }{Lang: lang, Text: text}
	if id != "" {
		v.Retry = "/checkout/" + id + "/wechat-oauth?lang=" + lang
		v.Back = "/checkout/" + id + "?lang=" + lang
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := pageTmpl.Execute(w, v); err != nil {
		a.log.Warn("identity: render page", "err", err)
	}
}
