// Package checkout serves Hutong's hosted checkout: one public page per payment that picks the
// wallet and channel for where the buyer is (inside WeChat, inside Alipay, a phone browser, a
// desktop), places the order through gateway.Service.ChooseMethod, follows the payment live and
// returns the buyer to the merchant. Pages are html/template, the script is small vanilla
// JavaScript, and every asset is embedded: nothing is loaded from anywhere else.
package checkout

import (
	"context"
	"embed"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

// Config wires a Checkout.
type Config struct {
	Service *gateway.Service
	Logger  *slog.Logger
	Now     func() time.Time
	// SandboxURL is the wallet sandbox's base URL, set only in sandbox/demo mode. The page then
	// loads the sandbox's emulated WeChat bridge (SandboxURL + "/sandbox/wechatpay/bridge.js")
	// inside WeChat, and the Content-Security-Policy allows that origin.
	SandboxURL string
	// MerchantName returns the name the buyer sees. Optional: by default the merchant's name
	// from the store; "" hides it.
	MerchantName func(ctx context.Context, merchantID string) string
	// WeChatOAuth tells that GET /checkout/{id}/wechat-oauth is mounted: it gets the buyer's
	// openid by WeChat web authorization, records it (ChooseMethod with payer.openid) and sends
	// the buyer back to /checkout/{id}. Without it, a buyer inside WeChat whose payment has no
	// openid gets an explanation instead of a redirect.
	WeChatOAuth bool
	// ClientIP returns the buyer's IP for the wallets (WeChat H5 requires it). Default: the
	// host of RemoteAddr; set it when a trusted proxy stands in front.
	ClientIP func(r *http.Request) string
	// SyncInterval is how often, at most, a page following a placed payment asks the wallet
	// for its truth (recovering a lost or late notification). Default 10s; negative: never.
	SyncInterval time.Duration
	// ReturnDelay is how long a final page waits before sending the buyer to return_url. Default 5s.
	ReturnDelay time.Duration
}

// Checkout serves the hosted checkout pages. It is safe for concurrent use.
type Checkout struct {
	svc          *gateway.Service
	log          *slog.Logger
	now          func() time.Time
	merchantName func(ctx context.Context, merchantID string) string
	wechatOAuth  bool
	clientIP     func(r *http.Request) string
	returnDelay  time.Duration
	bridgeURL    string // "" outside sandbox mode
	csp          string
	tmpl         *template.Template
	assets       map[string]asset
	sync         *syncThrottle
	qrs          qrCache
	csrf         *http.CrossOriginProtection
}

//go:embed templates/*.html
var templateFS embed.FS

// New returns a Checkout.
func New(cfg Config) *Checkout {
	c := &Checkout{
		svc: cfg.Service, log: cfg.Logger, now: cfg.Now, merchantName: cfg.MerchantName,
		wechatOAuth: cfg.WeChatOAuth, clientIP: cfg.ClientIP, returnDelay: cfg.ReturnDelay,
		assets: loadAssets(), csrf: http.NewCrossOriginProtection(), qrs: qrCache{m: map[qrKey][]byte{}},
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.merchantName == nil {
		c.merchantName = c.storeMerchantName
	}
	if c.clientIP == nil {
		c.clientIP = remoteIP
	}
	if c.returnDelay <= 0 {
		c.returnDelay = 5 * time.Second
	}
	interval := cfg.SyncInterval
	if interval == 0 {
		interval = 10 * time.Second
	}
	c.sync = newSyncThrottle(interval)
	sandboxOrigin := ""
	if cfg.SandboxURL != "" {
		if u, err := url.Parse(cfg.SandboxURL); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
			sandboxOrigin = u.Scheme + "://" + u.Host
			c.bridgeURL = strings.TrimRight(cfg.SandboxURL, "/") + "/sandbox/wechatpay/bridge.js"
		} else {
			c.log.Warn("checkout: ignoring sandbox URL that is not an absolute http(s) URL", "sandbox_url", cfg.SandboxURL)
		}
	}
	c.csp = contentSecurityPolicy(sandboxOrigin)
	c.tmpl = template.Must(template.New("").ParseFS(templateFS, "templates/*.html"))
	return c
}

// Register mounts the checkout on mux:
//
//	GET  /checkout/{id}                 the page
//	GET  /checkout/{id}/status          the buyer's view of the payment, JSON, for polling
//	POST /checkout/{id}/choose          place the order with {provider, channel} (form or JSON)
//	GET  /checkout/{id}/return          where wallet cashiers send the buyer back
//	GET  /checkout/{id}/qr/{wallet}.png the payment's QR code as a PNG
//	GET  /checkout/assets/{file}        script and stylesheet
//
// The assets are served through the /checkout/{id}/{file} pattern rather than their own
// /checkout/assets/ one, which the mux would find in conflict with /checkout/{id}/status and
// with /checkout/{id}/wechat-oauth, mounted elsewhere.
func (c *Checkout) Register(mux *http.ServeMux) {
	handle := func(pattern string, h http.Handler) { mux.Handle(pattern, c.secure(h)) }
	handle("GET /checkout/{id}", http.HandlerFunc(c.servePage))
	handle("GET /checkout/{id}/status", http.HandlerFunc(c.serveStatus))
	// Choosing places an order at a wallet: refuse it from other sites' pages.
	handle("POST /checkout/{id}/choose", c.csrf.Handler(http.HandlerFunc(c.serveChoose)))
	handle("GET /checkout/{id}/return", http.HandlerFunc(c.serveReturn))
	handle("GET /checkout/{id}/qr/{file}", http.HandlerFunc(c.serveQR))
	handle("GET /checkout/{id}/{file}", http.HandlerFunc(c.serveAsset))
	// Anything else under /checkout/ gets the friendly page too.
	handle("GET /checkout/", http.HandlerFunc(c.notFound))
}

// contentSecurityPolicy allows only our own scripts, styles, images and fetches, and in
// sandbox mode the sandbox's origin, whose bridge script runs in the page and talks to it.
func contentSecurityPolicy(sandboxOrigin string) string {
	extra := ""
	if sandboxOrigin != "" {
		extra = " " + sandboxOrigin
	}
	return "default-src 'none'; script-src 'self'" + extra + "; style-src 'self'" + extra +
		"; img-src 'self'" + extra + "; connect-src 'self'" + extra + "; form-action 'self'" +
		"; base-uri 'none'; frame-ancestors 'none'"
}

// secure sets the headers every checkout response carries.
func (c *Checkout) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", c.csp)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		// WeChat H5 checks that the Referer's host is the merchant's registered domain, so the
		// origin must still be sent across sites; the path (the payment id) is not.
		h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
		next.ServeHTTP(w, r)
	})
}

// validID reports whether id has the shape of a payment id ("pay_" and 24 of [0-9A-Za-z]),
// so that anything else is refused before the database is asked.
func validID(id string) bool {
	rest, ok := strings.CutPrefix(id, "pay_")
	if !ok || len(rest) != 24 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		b := rest[i]
		if !('0' <= b && b <= '9' || 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z') {
			return false
		}
	}
	return true
}

// loadPayment returns payment id, whoever owns it: the id itself is the buyer's credential.
func (c *Checkout) loadPayment(ctx context.Context, id string) (*payment.Payment, error) {
	if !validID(id) {
		return nil, payment.ErrNotFound("payment", id)
	}
	return c.svc.Store().Payment(ctx, "", id)
}

func (c *Checkout) storeMerchantName(ctx context.Context, merchantID string) string {
	m, err := c.svc.Store().Merchant(ctx, merchantID)
	if err != nil {
		if !payment.IsNotFound(err) {
			c.log.Warn("checkout: merchant name", "err", err)
		}
		return ""
	}
	return m.Name
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// syncThrottle remembers when each payment was last synced with its wallet, so that buyers'
// polling turns into at most one wallet query per payment per interval.
type syncThrottle struct {
	every time.Duration
	mu    sync.Mutex
	last  map[string]time.Time
}

func newSyncThrottle(every time.Duration) *syncThrottle {
	return &syncThrottle{every: every, last: map[string]time.Time{}}
}

// due reports whether payment id may be synced now, and if so records that it is.
func (s *syncThrottle) due(id string, now time.Time) bool {
	if s.every < 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.last[id]; ok && now.Sub(t) < s.every {
		return false
	}
	if len(s.last) >= 10000 {
		for k, t := range s.last {
			if now.Sub(t) >= s.every {
				delete(s.last, k)
			}
		}
	}
	s.last[id] = now
	return true
}

// maybeSync asks the wallet about a placed, pending payment when the throttle allows, and
// returns the payment as it then stands. A wallet that does not answer changes nothing here:
// the page keeps showing what the store knows.
func (c *Checkout) maybeSync(ctx context.Context, p *payment.Payment) *payment.Payment {
	if p.Status != payment.StatusPending || p.NextAction == nil || !c.sync.due(p.ID, c.now()) {
		return p
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	synced, err := c.svc.SyncPayment(ctx, p.ID)
	if err != nil {
		c.log.Info("checkout: sync with wallet", "payment_id", p.ID, "provider", p.Provider, "err", err)
		return p
	}
	return synced
}
