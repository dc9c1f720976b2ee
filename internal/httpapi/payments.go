package httpapi

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

// createPaymentBody is POST /v1/payments' body.
type createPaymentBody struct {
	Amount      int64             `json:"amount"`
	Currency    string            `json:"currency"`
	Description string            `json:"description"`
	Reference   string            `json:"reference"`
	Provider    string            `json:"provider"`
	Channel     string            `json:"channel"`
	Customer    string            `json:"customer"`
	Payer       *payerBody        `json:"payer"`
	ExpiresAt   *string           `json:"expires_at"`
	ReturnURL   string            `json:"return_url"`
	Metadata    map[string]string `json:"metadata"`
}

type payerBody struct {
	OpenID       string `json:"openid"`
	BuyerID      string `json:"buyer_id"`
	AlipayOpenID string `json:"alipay_open_id"`
	ClientIP     string `json:"client_ip"`
}

// list is the envelope of every list response.
type list[T any] struct {
	Object  string `json:"object"` // always "list"
	Data    []T    `json:"data"`
	HasMore bool   `json:"has_more"`
	URL     string `json:"url"`
}

func (a *api) createPayment(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in createPaymentBody
	if err := decodeJSON(body, &in); err != nil {
		return err
	}
	key := keyFrom(r.Context())
	params := gateway.CreatePaymentParams{
		Amount: in.Amount, Currency: in.Currency, Description: in.Description, Reference: in.Reference,
		Provider: payment.Provider(in.Provider), Channel: payment.Channel(in.Channel), CustomerID: in.Customer,
		ReturnURL: in.ReturnURL, Metadata: in.Metadata, Livemode: key.Livemode, IdempotencyKey: idempotencyScope(r),
	}
	if in.Payer != nil {
		params.Payer = &payment.Payer{OpenID: in.Payer.OpenID, BuyerID: in.Payer.BuyerID, AlipayOpenID: in.Payer.AlipayOpenID, ClientIP: in.Payer.ClientIP}
	}
	if in.ExpiresAt != nil {
		t, err := time.Parse(time.RFC3339, *in.ExpiresAt)
		if err != nil {
			return payment.InvalidParam("expires_at", "expires_at must be an RFC 3339 timestamp such as 2026-01-02T15:04:05Z")
		}
		params.ExpiresAt = &t
	}
	p, err := a.svc.CreatePayment(r.Context(), key.MerchantID, params)
	if err != nil {
		return err
	}
	a.metrics.created.WithLabelValues(labelOr(string(p.Provider), "none"), labelOr(string(p.Channel), "none")).Inc()
	a.writeJSON(w, r, http.StatusOK, p)
	return nil
}

func (a *api) getPayment(w http.ResponseWriter, r *http.Request) error {
	p, err := a.paymentOfKey(r, r.PathValue("id"))
	if err != nil {
		return err
	}
	a.writeJSON(w, r, http.StatusOK, p)
	return nil
}

// paymentOfKey returns the payment id of the key's merchant, in the key's mode: a test key
// cannot see, cancel or refund a live payment, and the other way round.
func (a *api) paymentOfKey(r *http.Request, id string) (*payment.Payment, error) {
	key := keyFrom(r.Context())
	p, err := a.svc.Payment(r.Context(), key.MerchantID, id)
	if err != nil {
		return nil, err
	}
	if p.Livemode != key.Livemode {
		return nil, payment.ErrNotFound("payment", id)
	}
	return p, nil
}

// cancelPaymentBody is POST /v1/payments/{id}/cancel's optional body.
type cancelPaymentBody struct {
	Reason string `json:"reason"`
}

// Cancel reasons a merchant may give; the gateway itself uses "expired" and "closed_at_wallet".
var cancelReasons = map[string]bool{
	"requested_by_merchant": true, "requested_by_customer": true, "duplicate": true, "fraudulent": true, "abandoned": true,
}

func (a *api) cancelPayment(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	in := cancelPaymentBody{Reason: "requested_by_merchant"}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := decodeJSON(body, &in); err != nil {
			return err
		}
		if in.Reason == "" {
			in.Reason = "requested_by_merchant"
		}
	}
	if !cancelReasons[in.Reason] {
		return payment.InvalidParam("reason", "reason must be one of requested_by_merchant, requested_by_customer, duplicate, fraudulent, abandoned")
	}
	id := r.PathValue("id")
	if _, err := a.paymentOfKey(r, id); err != nil {
		return err
	}
	p, err := a.svc.CancelPayment(r.Context(), keyFrom(r.Context()).MerchantID, id, in.Reason)
	if err != nil {
		return err
	}
	a.writeJSON(w, r, http.StatusOK, p)
	return nil
}

func (a *api) listPayments(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "limit", "starting_after", "reference", "status")
	if err != nil {
		return err
	}
	limit, err := parseLimit(q.Get("limit"))
	if err != nil {
		return err
	}
	key := keyFrom(r.Context())
	f := gateway.PaymentFilter{Livemode: key.Livemode, Reference: q.Get("reference"), Status: payment.Status(q.Get("status")), Limit: limit, StartingAfter: q.Get("starting_after")}
	ps, more, err := a.svc.ListPayments(r.Context(), key.MerchantID, f)
	if err != nil {
		return cursorError(err, "payment", f.StartingAfter)
	}
	if ps == nil {
		ps = []*payment.Payment{}
	}
	a.writeJSON(w, r, http.StatusOK, list[*payment.Payment]{Object: "list", Data: ps, HasMore: more, URL: "/v1/payments"})
	return nil
}

// query returns the request's query parameters, refusing unknown or repeated ones: a typo in a
// filter must not silently widen a list.
func query(r *http.Request, allowed ...string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, payment.InvalidParam("query", "the query string is malformed")
	}
	for k, v := range q {
		known := false
		for _, a := range allowed {
			if k == a {
				known = true
				break
			}
		}
		if !known {
			return nil, &payment.Error{Kind: payment.Invalid, Code: "parameter_unknown", Param: k, Message: fmt.Sprintf("unknown parameter: %s", k)}
		}
		if len(v) > 1 {
			return nil, payment.InvalidParam(k, "%s is given more than once", k)
		}
	}
	return q, nil
}

const (
	defaultLimit = 10
	maxLimit     = 100
)

func parseLimit(s string) (int, error) {
	if s == "" {
		return defaultLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxLimit {
		return 0, payment.InvalidParam("limit", "limit must be an integer from 1 to %d", maxLimit)
	}
	return n, nil
}

// cursorError turns "no such object" for a starting_after cursor into the 400 it is: the
// request is wrong, not a resource missing.
func cursorError(err error, what, cursor string) error {
	if cursor != "" && payment.IsNotFound(err) {
		return payment.InvalidParam("starting_after", "starting_after: no such %s: %s", what, cursor)
	}
	return err
}
