package checkout

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/hutong-pay/hutong/internal/payment"
)

// apiError is the JSON error of the status and choose endpoints; Message is in the buyer's language.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeAPIError answers code (a message key without its "err_" prefix, or "not_found").
func writeAPIError(w http.ResponseWriter, status int, lang Lang, code string) {
	var e apiError
	e.Error.Code = code
	if code == "not_found" {
		e.Error.Message = lang.T("not_found_title")
	} else {
		e.Error.Message = lang.T("err_" + code)
	}
	writeJSON(w, status, e)
}

// serveStatus answers the buyer's view of the payment, for the page's polling.
func (c *Checkout) serveStatus(w http.ResponseWriter, r *http.Request) {
	lang, _ := negotiateLang(r)
	p, err := c.loadPayment(r.Context(), r.PathValue("id"))
	if err != nil {
		c.apiLoadError(w, lang, r.PathValue("id"), err)
		return
	}
	p = c.maybeSync(r.Context(), p)
	writeJSON(w, http.StatusOK, c.buildStatus(p, c.now()))
}

func (c *Checkout) apiLoadError(w http.ResponseWriter, lang Lang, id string, err error) {
	if payment.IsNotFound(err) {
		writeAPIError(w, http.StatusNotFound, lang, "not_found")
		return
	}
	c.log.Error("checkout: load payment", "payment_id", id, "err", err)
	writeAPIError(w, http.StatusInternalServerError, lang, "unavailable")
}

// Choice is a buyer's choice of wallet and channel.
type Choice struct {
	Provider payment.Provider `json:"provider"`
	Channel  payment.Channel  `json:"channel"`
}

// maxChoiceBody bounds a choose request: two short words.
const maxChoiceBody = 4 << 10

// parseChoice reads a choose request, JSON or form-encoded.
func parseChoice(contentType string, body io.Reader) (Choice, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	b, err := io.ReadAll(io.LimitReader(body, maxChoiceBody+1))
	if err != nil {
		return Choice{}, err
	}
	if len(b) > maxChoiceBody {
		return Choice{}, errors.New("choose request too large")
	}
	var ch Choice
	switch mt {
	case "application/json":
		if err := json.Unmarshal(b, &ch); err != nil {
			return Choice{}, err
		}
	case "application/x-www-form-urlencoded", "":
		q, err := url.ParseQuery(string(b))
		if err != nil {
			return Choice{}, err
		}
		ch = Choice{Provider: payment.Provider(q.Get("provider")), Channel: payment.Channel(q.Get("channel"))}
	default:
		return Choice{}, errors.New("unsupported content type " + mt)
	}
	if !buyerMethod(ch.Provider, ch.Channel) {
		return Choice{}, errors.New("not a method the checkout offers")
	}
	return ch, nil
}

// buyerMethod reports whether a buyer may choose provider and channel on the checkout: app
// payments belong to the merchant's app, and Alipay's mini-program trade to Alipay's mini programs.
func buyerMethod(p payment.Provider, ch payment.Channel) bool {
	switch p {
	case payment.WeChatPay:
		return ch == payment.ChannelQR || ch == payment.ChannelH5 || ch == payment.ChannelMiniProgram
	case payment.Alipay:
		return ch == payment.ChannelQR || ch == payment.ChannelH5 || ch == payment.ChannelWeb
	}
	return false
}

// wantsJSON tells the script's fetch from a plain form post (which gets redirects).
func wantsJSON(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "application/json" || strings.Contains(r.Header.Get("Accept"), "application/json")
}

// serveChoose places the payment's order with the buyer's choice of wallet and channel.
func (c *Checkout) serveChoose(w http.ResponseWriter, r *http.Request) {
	lang, _ := negotiateLang(r)
	id := r.PathValue("id")
	asJSON := wantsJSON(r)
	fail := func(status int, code string) {
		if asJSON {
			writeAPIError(w, status, lang, code)
			return
		}
		if status == http.StatusNotFound {
			c.pageError(w, r, lang, id, payment.ErrNotFound("payment", id))
			return
		}
		http.Redirect(w, r, pageURL(id, lang, "err_"+code), http.StatusSeeOther)
	}
	choice, err := parseChoice(r.Header.Get("Content-Type"), r.Body)
	if err != nil {
		fail(http.StatusBadRequest, "invalid")
		return
	}
	p, err := c.loadPayment(r.Context(), id)
	if err != nil {
		if payment.IsNotFound(err) {
			fail(http.StatusNotFound, "not_found")
			return
		}
		c.log.Error("checkout: load payment", "payment_id", id, "err", err)
		fail(http.StatusInternalServerError, "unavailable")
		return
	}
	switch stateOf(p, c.now()) {
	case StatePending:
	case StateExpired:
		fail(http.StatusConflict, "expired")
		return
	default:
		fail(http.StatusConflict, "payment_state")
		return
	}
	if p.NextAction != nil && (p.Provider != choice.Provider || p.Channel != choice.Channel) {
		fail(http.StatusConflict, "method_chosen")
		return
	}
	payer := payment.Payer{}
	if p.Payer != nil {
		payer = *p.Payer
	}
	if choice.Provider == payment.WeChatPay && choice.Channel == payment.ChannelMiniProgram && payer.OpenID == "" {
		// Placing a JSAPI order without the openid would only fail the payment at the wallet.
		fail(http.StatusConflict, "openid_required")
		return
	}
	payer.ClientIP = c.clientIP(r)
	p, err = c.svc.ChooseMethod(r.Context(), id, choice.Provider, choice.Channel, &payer)
	if err != nil {
		status, code := chooseError(err)
		if status >= 500 {
			c.log.Warn("checkout: choose method", "payment_id", id, "provider", choice.Provider, "channel", choice.Channel, "err", err)
		}
		fail(status, code)
		return
	}
	c.log.Info("checkout: method chosen", "payment_id", id, "provider", choice.Provider, "channel", choice.Channel)
	if asJSON {
		writeJSON(w, http.StatusOK, c.buildStatus(p, c.now()))
		return
	}
	http.Redirect(w, r, pageURL(id, lang, ""), http.StatusSeeOther)
}

// chooseError maps ChooseMethod's errors to a status and a message code.
func chooseError(err error) (int, string) {
	var e *payment.Error
	if !errors.As(err, &e) {
		return http.StatusInternalServerError, "unavailable"
	}
	switch e.Kind {
	case payment.NotFound:
		return http.StatusNotFound, "not_found"
	case payment.Conflict:
		if e.Code == "method_chosen" {
			return http.StatusConflict, "method_chosen"
		}
		return http.StatusConflict, "payment_state"
	case payment.Invalid:
		return http.StatusBadRequest, "invalid"
	case payment.ProviderError:
		return http.StatusBadGateway, "provider"
	}
	return http.StatusInternalServerError, "unavailable"
}

// QR code image sizes in pixels: the default fits a phone camera at arm's length on a desktop screen.
const (
	qrDefaultSize = 256
	qrMinSize     = 128
	qrMaxSize     = 1024
)

// serveQR draws the payment's QR code (or its cashier URL, to open on a phone) as a PNG.
func (c *Checkout) serveQR(w http.ResponseWriter, r *http.Request) {
	notFound := func() {
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "not found", http.StatusNotFound)
	}
	prov, ok := strings.CutSuffix(r.PathValue("file"), ".png")
	if !ok || !payment.Provider(prov).Valid() {
		notFound()
		return
	}
	size := qrDefaultSize
	if s := r.URL.Query().Get("size"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < qrMinSize || n > qrMaxSize {
			http.Error(w, "size must be an integer from 128 to 1024", http.StatusBadRequest)
			return
		}
		size = n
	}
	p, err := c.loadPayment(r.Context(), r.PathValue("id"))
	if err != nil {
		if !payment.IsNotFound(err) {
			c.log.Error("checkout: load payment", "payment_id", r.PathValue("id"), "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		notFound()
		return
	}
	content := c.qrContent(p, payment.Provider(prov))
	if content == "" {
		notFound()
		return
	}
	png, err := c.qrPNG(content, size)
	if err != nil {
		c.log.Error("checkout: draw qr code", "payment_id", p.ID, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(png)))
	_, _ = w.Write(png)
}

// qrContent is what the QR code of p for wallet prov encodes, "" when it has none (no order
// placed, another wallet's order, or no longer payable).
func (c *Checkout) qrContent(p *payment.Payment, prov payment.Provider) string {
	if p.Provider != prov {
		return ""
	}
	na := c.buildStatus(p, c.now()).NextAction
	if na == nil {
		return ""
	}
	if na.QRCode != "" {
		return na.QRCode
	}
	return na.URL
}

// qrCache keeps recently drawn QR codes: drawing one costs about a millisecond and a megabyte
// of garbage, and every page view of a QR payment fetches its image.
type qrCache struct {
	mu sync.Mutex
	m  map[qrKey][]byte
}

type qrKey struct {
	content string
	size    int
}

const qrCacheSize = 512

func (c *Checkout) qrPNG(content string, size int) ([]byte, error) {
	k := qrKey{content, size}
	c.qrs.mu.Lock()
	png, ok := c.qrs.m[k]
	c.qrs.mu.Unlock()
	if ok {
		return png, nil
	}
	png, err := qrcode.Encode(content, qrcode.Medium, size)
	if err != nil {
		return nil, err
	}
	c.qrs.mu.Lock()
	if len(c.qrs.m) >= qrCacheSize {
		clear(c.qrs.m) // crude, but bounded; a busy checkout simply redraws
	}
	c.qrs.m[k] = png
	c.qrs.mu.Unlock()
	return png, nil
}
