package checkout

import (
	"bytes"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hutong-pay/hutong/internal/payment"
)

// Option is one way to pay the page offers: a button with a stable id.
type Option struct {
	ID       string           `json:"id"` // pay-wechat, pay-alipay, pay-alipay-web
	Provider payment.Provider `json:"provider"`
	Channel  payment.Channel  `json:"channel"`
	Label    string           `json:"-"`
}

// pageView is what the page template renders.
type pageView struct {
	Lang        Lang
	Env         Env
	Returned    bool // the return page: the buyer is back from a wallet's cashier
	Sandbox     bool
	BridgeURL   string
	ScriptURL   string
	StyleURL    string
	Merchant    string
	Description string
	PayBefore   string
	St          *Status
	Options     []Option
	// NeedsOAuth: inside WeChat with no openid and no /wechat-oauth to get one.
	NeedsOAuth bool
	ErrorKey   string
	ReturnIn   string
	Data       pageData
}

// pageData is handed to the script as JSON in the page.
type pageData struct {
	ID          string            `json:"id"`
	Base        string            `json:"base"`
	Env         Env               `json:"env"`
	Lang        Lang              `json:"lang"`
	Returned    bool              `json:"returned"`
	Status      *Status           `json:"status"`
	AutoChoose  *Option           `json:"auto_choose"`
	ReturnDelay int               `json:"return_delay"` // seconds
	PollMS      int               `json:"poll_ms"`
	Messages    map[string]string `json:"messages"`
}

// T translates a message key; the templates call it.
func (v *pageView) T(key string) string { return v.Lang.T(key) }

// chinaTime is the wallets' (and most buyers') clock; a fixed zone needs no tz database.
var chinaTime = time.FixedZone("CST", 8*3600)

func (c *Checkout) servePage(w http.ResponseWriter, r *http.Request) { c.page(w, r, false) }

func (c *Checkout) serveReturn(w http.ResponseWriter, r *http.Request) { c.page(w, r, true) }

// page renders the checkout page, or with returned the page the wallet sends the buyer back to.
// The return page ignores its query (Alipay adds signed sync-return parameters): the wallet is
// asked directly, and only its answer, or a verified notification, changes the payment.
func (c *Checkout) page(w http.ResponseWriter, r *http.Request, returned bool) {
	lang := c.lang(w, r)
	id := r.PathValue("id")
	p, err := c.loadPayment(r.Context(), id)
	if err != nil {
		c.pageError(w, r, lang, id, err)
		return
	}
	if returned {
		p = c.maybeSync(r.Context(), p)
	}
	now := c.now()
	env := DetectEnv(r.UserAgent())
	v := &pageView{
		Lang: lang, Env: env, Returned: returned, Sandbox: c.bridgeURL != "",
		ScriptURL: c.assetURL("checkout.js"), StyleURL: c.assetURL("checkout.css"),
		Merchant: c.merchantName(r.Context(), p.MerchantID), Description: p.Description,
		St:        c.buildStatus(p, now),
		PayBefore: strings.ReplaceAll(lang.T("pay_before"), "{t}", p.ExpiresAt.In(chinaTime).Format("2006-01-02 15:04")),
	}
	if env == EnvWeChat {
		v.BridgeURL = c.bridgeURL
	}
	var auto *Option
	if !returned {
		var needsOpenID bool
		v.Options, auto, needsOpenID = c.options(p, v.St, env, lang)
		if needsOpenID {
			if c.wechatOAuth {
				// The hook for WeChat web authorization: it records the openid and comes back here.
				http.Redirect(w, r, "/checkout/"+p.ID+"/wechat-oauth"+langQuery(r), http.StatusFound)
				return
			}
			v.NeedsOAuth = true
		}
		if k := r.URL.Query().Get("error"); strings.HasPrefix(k, "err_") {
			if _, ok := messages[k]; ok {
				v.ErrorKey = k
			}
		}
	}
	delay := int(c.returnDelay / time.Second)
	v.ReturnIn = strings.ReplaceAll(lang.T("returning_in"), "{n}", strconv.Itoa(delay))
	v.Data = pageData{
		ID: p.ID, Base: "/checkout/" + p.ID, Env: env, Lang: lang, Returned: returned, Status: v.St,
		AutoChoose: auto, ReturnDelay: delay, PollMS: 1500, Messages: lang.jsMessages(),
	}
	w.Header().Set("Cache-Control", "no-store")
	c.render(w, http.StatusOK, "page", v)
}

// options returns the ways to pay offered to a buyer in env for a pending payment whose order
// is not placed yet, the one the script places at once (inside a wallet's own browser there is
// no other choice), and whether WeChat JSAPI is blocked on a missing openid.
func (c *Checkout) options(p *payment.Payment, st *Status, env Env, lang Lang) (opts []Option, auto *Option, needsOpenID bool) {
	if st.State != StatePending || st.NextAction != nil {
		return nil, nil, false
	}
	add := func(id string, prov payment.Provider, ch payment.Channel, label string) {
		if _, ok := c.svc.Provider(prov); ok {
			opts = append(opts, Option{ID: id, Provider: prov, Channel: ch, Label: lang.T(label)})
		}
	}
	switch env {
	case EnvWeChat:
		if _, ok := c.svc.Provider(payment.WeChatPay); !ok {
			return nil, nil, false
		}
		if p.Payer == nil || p.Payer.OpenID == "" {
			return nil, nil, true
		}
		add("pay-wechat", payment.WeChatPay, payment.ChannelMiniProgram, "pay_now")
	case EnvAlipay:
		add("pay-alipay", payment.Alipay, payment.ChannelH5, "pay_alipay")
	case EnvMobile:
		add("pay-wechat", payment.WeChatPay, payment.ChannelH5, "pay_wechat")
		add("pay-alipay", payment.Alipay, payment.ChannelH5, "pay_alipay")
	default:
		add("pay-wechat", payment.WeChatPay, payment.ChannelQR, "pay_wechat")
		add("pay-alipay", payment.Alipay, payment.ChannelQR, "pay_alipay")
		add("pay-alipay-web", payment.Alipay, payment.ChannelWeb, "pay_alipay_web")
	}
	if (env == EnvWeChat || env == EnvAlipay) && len(opts) == 1 {
		auto = &opts[0]
	}
	return opts, auto, false
}

// lang negotiates the page language and remembers an explicit choice in a cookie.
func (c *Checkout) lang(w http.ResponseWriter, r *http.Request) Lang {
	l, explicit := negotiateLang(r)
	if explicit {
		http.SetCookie(w, &http.Cookie{
			Name: langCookie, Value: string(l), Path: "/checkout", MaxAge: 365 * 24 * 3600,
			HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil,
		})
	}
	return l
}

// langQuery carries an explicit ?lang= along a redirect.
func langQuery(r *http.Request) string {
	if l, ok := parseLang(r.URL.Query().Get("lang")); ok {
		return "?lang=" + string(l)
	}
	return ""
}

// messageView is the template data of the not-found and error pages.
type messageView struct {
	Lang     Lang
	StyleURL string
	Title    string
	Body     string
}

func (v *messageView) T(key string) string { return v.Lang.T(key) }

// pageError renders the friendly page for a payment that cannot be shown.
func (c *Checkout) pageError(w http.ResponseWriter, r *http.Request, lang Lang, id string, err error) {
	w.Header().Set("Cache-Control", "no-store")
	if payment.IsNotFound(err) {
		c.render(w, http.StatusNotFound, "message", &messageView{Lang: lang, StyleURL: c.assetURL("checkout.css"),
			Title: lang.T("not_found_title"), Body: lang.T("not_found_body")})
		return
	}
	c.log.Error("checkout: load payment", "payment_id", id, "err", err)
	c.render(w, http.StatusInternalServerError, "message", &messageView{Lang: lang, StyleURL: c.assetURL("checkout.css"),
		Title: lang.T("error_title"), Body: lang.T("error_body")})
}

func (c *Checkout) notFound(w http.ResponseWriter, r *http.Request) {
	lang, _ := negotiateLang(r)
	c.pageError(w, r, lang, "", payment.ErrNotFound("page", r.URL.Path))
}

// render executes a template into a buffer first, so that a failure is a clean 500.
func (c *Checkout) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := c.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		c.log.Error("checkout: render", "template", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// pageURL is the checkout page of id, with a message key for a buyer without JavaScript.
func pageURL(id string, lang Lang, errKey string) string {
	q := url.Values{"lang": {string(lang)}}
	if errKey != "" {
		q.Set("error", errKey)
	}
	return "/checkout/" + id + "?" + q.Encode()
}
