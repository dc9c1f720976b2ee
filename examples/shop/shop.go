// Package shop is an example storefront that takes payments through Hutong the way any merchant
// would: with nothing but Hutong's public merchant API over HTTP (a base URL and a secret key)
// and its signed webhooks. Buying creates a payment without choosing a wallet, sends the buyer to
// Hutong's hosted checkout, and the checkout sends the buyer back to the shop's order page.
//
// The order page asks Hutong for the payment (GET /v1/payments/{id}) each time it is shown: that
// read is the truth. A verified webhook marks an order paid as soon as Hutong knows, without
// waiting for the buyer to come back. Orders live in memory: it is an example.
//
// Routes, under /shop/:
//
//	GET  /shop/              products and recent orders
//	POST /shop/buy           sku=…: create the order and its payment, redirect to the checkout
//	GET  /shop/orders/{id}   the order and its payment's status
//	POST /shop/webhooks      Hutong's webhooks (Standard Webhooks signatures)
//	GET  /shop/style.css
//
// Stable DOM ids for browser tests: #products, #buy-{sku}, #orders; on the order page #order-id,
// #order-product, #order-amount, #order-status (data-status: awaiting_payment, paid, failed,
// canceled), #order-confirmed-by (data-source: api or webhook), #pay-link while unpaid.
package shop

import (
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Config wires a Shop.
type Config struct {
	// APIBaseURL is Hutong's address, e.g. http://127.0.0.1:8080 (the API is under /v1).
	APIBaseURL string
	// APIKey is the merchant's secret key (sk_test_… or sk_live_…).
	APIKey string
	// PublicURL is where buyers and Hutong's webhooks reach this shop's /shop/ routes,
	// e.g. http://127.0.0.1:8080 for http://127.0.0.1:8080/shop/.
	PublicURL string
	Logger    *slog.Logger
	// HTTPClient calls Hutong; default: a client with a 10 s timeout.
	HTTPClient *http.Client
	Now        func() time.Time
}

// Shop is the storefront, an http.Handler for /shop/. It is safe for concurrent use.
type Shop struct {
	api    *hutongClient
	public string
	log    *slog.Logger
	now    func() time.Time
	mux    *http.ServeMux

	mu     sync.Mutex
	orders map[string]*Order
	recent []string // order ids, oldest first, for the list and for eviction
	key    []byte   // webhook HMAC key; nil until the endpoint is registered
}

// Order is one purchase.
type Order struct {
	ID          string
	Product     Product
	PaymentID   string
	CheckoutURL string
	// PaymentStatus is the payment's status as last learnt: pending, succeeded, failed, canceled.
	PaymentStatus string
	// Source tells how the shop learnt a final status: "api" (it asked) or "webhook" (Hutong told it).
	Source    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// State is the order's state for the buyer.
func (o Order) State() string {
	switch o.PaymentStatus {
	case "succeeded":
		return "paid"
	case "failed":
		return "failed"
	case "canceled":
		return "canceled"
	}
	return "awaiting_payment"
}

const (
	sourceAPI     = "api"
	sourceWebhook = "webhook"
	// maxOrders bounds the in-memory order book; the oldest orders are forgotten first.
	maxOrders = 10000
)

//go:embed templates/*.html templates/style.css
var files embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{"fen": FormatFen, "page": newPageHead}).ParseFS(files, "templates/*.html"))

// pageHead is what the layout's head needs: the title and, while an order awaits payment, a
// refresh interval in seconds (the pages have no script).
type pageHead struct {
	Title   string
	Refresh int
}

func newPageHead(title string, refresh int) pageHead { return pageHead{title, refresh} }

// New returns a Shop. Call Start to register its webhook endpoint with Hutong.
func New(cfg Config) *Shop {
	s := &Shop{
		api:    &hutongClient{base: strings.TrimRight(cfg.APIBaseURL, "/"), key: cfg.APIKey, hc: cfg.HTTPClient},
		public: strings.TrimRight(cfg.PublicURL, "/"),
		log:    cfg.Logger, now: cfg.Now,
		orders: map[string]*Order{},
	}
	if s.api.hc == nil {
		s.api.hc = &http.Client{Timeout: 10 * time.Second}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	csrf := http.NewCrossOriginProtection()
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /shop/{$}", s.serveIndex)
	s.mux.Handle("POST /shop/buy", csrf.Handler(http.HandlerFunc(s.serveBuy)))
	s.mux.HandleFunc("GET /shop/orders/{id}", s.serveOrder)
	s.mux.HandleFunc("POST /shop/webhooks", s.serveWebhook) // server to server: signed, not CSRF-checked
	s.mux.HandleFunc("GET /shop/style.css", s.serveCSS)
	s.mux.HandleFunc("/shop/", func(w http.ResponseWriter, r *http.Request) {
		s.render(w, http.StatusNotFound, "message", messageView{Title: "Not found", Body: "There is no such page in this shop."})
	})
	return s
}

// ServeHTTP serves the shop's routes.
func (s *Shop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	s.mux.ServeHTTP(w, r)
}

// WebhookURL is where the shop asks Hutong to post its events.
func (s *Shop) WebhookURL() string { return s.public + "/shop/webhooks" }

// ErrWebhooksUnavailable means the Hutong it talks to has no webhook endpoints API.
var ErrWebhooksUnavailable = errors.New("shop: hutong offers no webhook endpoints")

// RegisterWebhook registers (or, after a restart, re-keys) the shop's webhook endpoint with Hutong.
func (s *Shop) RegisterWebhook(ctx context.Context) error {
	ep, err := s.api.ensureWebhookEndpoint(ctx, s.WebhookURL(), []string{"payment.succeeded", "payment.failed", "payment.canceled"})
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusMethodNotAllowed) {
			return ErrWebhooksUnavailable
		}
		return err
	}
	key, err := parseWebhookSecret(ep.Secret)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.key = key
	s.mu.Unlock()
	s.log.Info("shop: webhook endpoint registered", "endpoint_id", ep.ID, "url", s.WebhookURL())
	return nil
}

// WebhookReady reports whether the shop holds a webhook signing secret.
func (s *Shop) WebhookReady() bool { return s.webhookKey() != nil }

func (s *Shop) webhookKey() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.key
}

// Start registers the webhook endpoint, retrying for a while if Hutong is not answering yet, and
// returns once registered, given up, or ctx is done. Without webhooks the shop still works: its
// order pages ask Hutong.
func (s *Shop) Start(ctx context.Context) {
	wait := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.RegisterWebhook(rctx)
		cancel()
		switch {
		case err == nil:
			return
		case errors.Is(err, ErrWebhooksUnavailable):
			s.log.Info("shop: this Hutong has no webhook endpoints; order pages will ask for payment status")
			return
		case attempt >= 8:
			s.log.Warn("shop: could not register a webhook endpoint; order pages will ask for payment status", "err", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// Order returns a copy of order id.
func (s *Shop) Order(id string) (Order, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[id]
	if !ok {
		return Order{}, false
	}
	return *o, true
}

// recentOrders returns copies of the latest n orders, newest first.
func (s *Shop) recentOrders(n int) []Order {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Order
	for i := len(s.recent) - 1; i >= 0 && len(out) < n; i-- {
		out = append(out, *s.orders[s.recent[i]])
	}
	return out
}

func (s *Shop) addOrder(o *Order) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.recent) >= maxOrders {
		delete(s.orders, s.recent[0])
		s.recent = s.recent[1:]
	}
	s.orders[o.ID] = o
	s.recent = append(s.recent, o.ID)
}

// applyPayment records what Hutong says about an order's payment. A payment counts only if it is
// the one the order created (reference and id both match), and a final status is never replaced:
// Hutong's statuses never go backwards, and a late or repeated message must not either.
func (s *Shop) applyPayment(p *hutongPayment, source string) (changed, known bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[p.Reference]
	if !ok || o.PaymentID != p.ID {
		return false, false
	}
	if o.PaymentStatus == p.Status || o.PaymentStatus != "pending" {
		return false, true
	}
	o.PaymentStatus, o.Source, o.UpdatedAt = p.Status, source, s.now()
	return true, true
}

// newOrderID returns a fresh order id: "T" and 20 random letters and digits.
func newOrderID() string {
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 20)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "T" + string(b)
}

// validOrderID accepts what newOrderID makes, so that nothing else reaches the map or the logs.
func validOrderID(id string) bool {
	if len(id) != 21 || id[0] != 'T' {
		return false
	}
	for _, c := range []byte(id[1:]) {
		if !('A' <= c && c <= 'Z' || '2' <= c && c <= '9') {
			return false
		}
	}
	return true
}
