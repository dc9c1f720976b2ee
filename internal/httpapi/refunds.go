package httpapi

import (
	"fmt"
	"net/http"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

// createRefundBody is POST /v1/refunds' body. A missing amount refunds everything refundable.
type createRefundBody struct {
	PaymentID string            `json:"payment_id"`
	Amount    *int64            `json:"amount"`
	Reason    string            `json:"reason"`
	Metadata  map[string]string `json:"metadata"`
}

func (a *api) createRefund(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in createRefundBody
	if err := decodeJSON(body, &in); err != nil {
		return err
	}
	if in.PaymentID == "" {
		return payment.InvalidParam("payment_id", "payment_id is required")
	}
	params := gateway.CreateRefundParams{PaymentID: in.PaymentID, Reason: in.Reason, Metadata: in.Metadata,
		IdempotencyKey: idempotencyScope(r)}
	if in.Amount != nil {
		if err := payment.CheckAmount("amount", *in.Amount); err != nil {
			return err
		}
		params.Amount = *in.Amount
	}
	if _, err := a.paymentOfKey(r, in.PaymentID); err != nil {
		if payment.IsNotFound(err) {
			return &payment.Error{Kind: payment.NotFound, Code: "resource_missing", Param: "payment_id",
				Message: fmt.Sprintf("no such payment: %s", in.PaymentID)}
		}
		return err
	}
	re, err := a.svc.CreateRefund(r.Context(), keyFrom(r.Context()).MerchantID, params)
	if err != nil {
		return err
	}
	a.writeJSON(w, r, http.StatusOK, re)
	return nil
}

func (a *api) getRefund(w http.ResponseWriter, r *http.Request) error {
	key, id := keyFrom(r.Context()), r.PathValue("id")
	re, err := a.svc.Refund(r.Context(), key.MerchantID, id)
	if err != nil {
		return err
	}
	// A test key cannot see a live refund, nor the other way round.
	if re.Livemode != key.Livemode {
		return payment.ErrNotFound("refund", id)
	}
	a.writeJSON(w, r, http.StatusOK, re)
	return nil
}

func (a *api) listEvents(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "limit", "starting_after", "type")
	if err != nil {
		return err
	}
	limit, err := parseLimit(q.Get("limit"))
	if err != nil {
		return err
	}
	typ := payment.EventType(q.Get("type"))
	if typ != "" && !typ.Valid() {
		return payment.InvalidParam("type", "type must be one of payment.succeeded, payment.failed, payment.canceled, refund.succeeded, refund.failed")
	}
	// One more than asked tells whether another page follows.
	key := keyFrom(r.Context())
	es, err := a.store.ListEvents(r.Context(), key.MerchantID, gateway.EventFilter{Livemode: key.Livemode, Type: typ, Limit: limit + 1, StartingAfter: q.Get("starting_after")})
	if err != nil {
		return cursorError(err, "event", q.Get("starting_after"))
	}
	more := len(es) > limit
	if more {
		es = es[:limit]
	}
	if es == nil {
		es = []*payment.Event{}
	}
	a.writeJSON(w, r, http.StatusOK, list[*payment.Event]{Object: "list", Data: es, HasMore: more, URL: "/v1/events"})
	return nil
}
