package shop

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"
)

type indexView struct {
	Products []Product
	Orders   []Order
}

type orderView struct {
	Order Order
	// Stale is set when Hutong could not be asked just now: the page shows what the shop knew.
	Stale bool
	// Refresh reloads the page every so many seconds while the order awaits payment.
	Refresh int
}

type messageView struct {
	Title, Body string
}

func (s *Shop) serveIndex(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "index", indexView{Products: Catalog, Orders: s.recentOrders(10)})
}

// serveBuy creates the order and its payment, then sends the buyer to Hutong's checkout.
func (s *Shop) serveBuy(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		s.render(w, http.StatusBadRequest, "message", messageView{Title: "Bad request", Body: "The order form could not be read."})
		return
	}
	product, ok := productBySKU(r.PostForm.Get("sku"))
	if !ok {
		s.render(w, http.StatusBadRequest, "message", messageView{Title: "No such product", Body: "Pick a tea from the list."})
		return
	}
	now := s.now()
	o := &Order{ID: newOrderID(), Product: product, PaymentStatus: "pending", CreatedAt: now, UpdatedAt: now}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	// The order id is both the payment's reference (how the shop recognises it in webhooks) and
	// its Idempotency-Key (a retried request never makes a second payment for the same order).
	p, err := s.api.createPayment(ctx, "order-"+o.ID, createPaymentRequest{
		Amount: product.Price, Currency: "CNY", Description: product.Name, Reference: o.ID,
		ReturnURL: s.orderURL(o.ID), Metadata: map[string]string{"sku": product.SKU},
	})
	if err == nil && (p.ID == "" || p.CheckoutURL == "" || p.Reference != o.ID || p.Amount != product.Price) {
		err = errors.New("hutong: the created payment does not match the order")
	}
	if err != nil {
		s.log.Error("shop: create payment", "order_id", o.ID, "err", err)
		s.render(w, http.StatusBadGateway, "message", messageView{Title: "Payment unavailable",
			Body: "We could not start the payment. Nothing was charged; please try again."})
		return
	}
	o.PaymentID, o.CheckoutURL = p.ID, p.CheckoutURL
	s.addOrder(o)
	s.log.Info("shop: order placed", "order_id", o.ID, "payment_id", p.ID, "amount", product.Price)
	http.Redirect(w, r, p.CheckoutURL, http.StatusSeeOther)
}

func (s *Shop) orderURL(id string) string { return s.public + "/shop/orders/" + url.PathEscape(id) }

// serveOrder shows an order, asking Hutong for its payment first.
func (s *Shop) serveOrder(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	o, ok := s.Order(id)
	if !validOrderID(id) || !ok {
		s.render(w, http.StatusNotFound, "message", messageView{Title: "No such order", Body: "This shop does not know that order (orders are kept in memory only)."})
		return
	}
	v := orderView{Order: o}
	if o.PaymentID != "" {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		p, err := s.api.payment(ctx, o.PaymentID)
		cancel()
		switch {
		case err != nil:
			s.log.Warn("shop: read payment", "order_id", o.ID, "payment_id", o.PaymentID, "err", err)
			v.Stale = true
		case p.Reference != o.ID:
			s.log.Error("shop: payment does not belong to the order", "order_id", o.ID, "payment_id", o.PaymentID)
			v.Stale = true
		default:
			s.applyPayment(p, sourceAPI)
			v.Order, _ = s.Order(id)
		}
	}
	if v.Order.State() == "awaiting_payment" {
		v.Refresh = 3
	}
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, http.StatusOK, "order", v)
}

func (s *Shop) serveCSS(w http.ResponseWriter, r *http.Request) {
	b, err := files.ReadFile("templates/style.css")
	if err != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(b)
}

// render executes a template into a buffer first, so that a failure is a clean 500.
func (s *Shop) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		s.log.Error("shop: render", "template", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
