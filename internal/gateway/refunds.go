package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hutong-pay/hutong/internal/payment"
)

// CreateRefundParams is a merchant's request to return money.
type CreateRefundParams struct {
	// IdempotencyKey, when the merchant gave one, names the request (with its mode): a retry of a
	// request whose node died mid-way resumes that refund instead of making a second one.
	IdempotencyKey string
	PaymentID      string
	Amount         int64 // 0 refunds everything still refundable
	Reason         string
	Metadata       map[string]string
}

const maxRefundReason = 80 // WeChat Pay's reason limit

// CreateRefund reserves the amount on the payment (so concurrent refunds cannot over-refund),
// then asks the wallet, then records its answer.
func (s *Service) CreateRefund(ctx context.Context, merchantID string, in CreateRefundParams) (*payment.Refund, error) {
	if in.PaymentID == "" {
		return nil, payment.InvalidParam("payment_id", "payment_id is required")
	}
	if in.Amount < 0 {
		return nil, payment.InvalidParam("amount", "amount must be a positive integer number of minor units")
	}
	if err := checkText("reason", in.Reason, maxRefundReason); err != nil {
		return nil, err
	}
	p, err := s.store.Payment(ctx, merchantID, in.PaymentID)
	if err != nil {
		return nil, err
	}
	if in.Metadata == nil {
		in.Metadata = map[string]string{}
	}
	now := s.clock()
	r := &payment.Refund{
		ID: payment.NewID("re"), Object: "refund", MerchantID: merchantID, Livemode: p.Livemode, PaymentID: p.ID, Status: payment.RefundPending,
		Amount: in.Amount, Currency: p.Currency, Reason: in.Reason, Provider: p.Provider,
		ProviderRef: payment.RefundRef{OutRefundNo: outTradeNo(merchantID, "refund", in.IdempotencyKey)}, Metadata: in.Metadata,
		CreatedAt: now, UpdatedAt: now,
	}
	// A retry of a request whose node died before answering carries on with the refund that run
	// recorded, rather than moving the money twice; a race between two retries ends the same way,
	// through the unique wallet number.
	if prior := s.priorRefund(ctx, merchantID, p, in, r.ProviderRef.OutRefundNo, now); prior != nil {
		if prior.Status != payment.RefundPending {
			return prior, nil
		}
		return s.askRefund(ctx, prior, p)
	}
	err = s.store.CreateRefund(ctx, r, s.planRefundCreated(r, now), func(p *payment.Payment) error {
		if r.Amount == 0 {
			r.Amount = p.Refundable()
		}
		if err := p.CheckRefund(r.Amount); err != nil {
			return err
		}
		p.AmountRefunded += r.Amount
		p.UpdatedAt = now
		return nil
	})
	if err != nil {
		prior := s.priorRefund(ctx, merchantID, p, in, r.ProviderRef.OutRefundNo, now)
		if prior == nil || payment.KindOf(err) != payment.Conflict {
			return nil, err
		}
		if prior.Status != payment.RefundPending {
			return prior, nil
		}
		r = prior
	}
	return s.askRefund(ctx, r, p)
}

// priorRefund returns the refund an earlier run of the same idempotent request recorded, if any.
func (s *Service) priorRefund(ctx context.Context, merchantID string, p *payment.Payment, in CreateRefundParams, outRefundNo string, now time.Time) *payment.Refund {
	if in.IdempotencyKey == "" {
		return nil
	}
	prior, err := s.store.RefundByOutRefundNo(ctx, p.Provider, outRefundNo)
	if err != nil {
		return nil
	}
	amount := in.Amount
	if amount == 0 {
		amount = prior.Amount // "everything still refundable" was whatever that run reserved
	}
	if prior.PaymentID != p.ID || !sameRequest(prior.MerchantID, prior.Amount, prior.CreatedAt, merchantID, amount, now) {
		return nil
	}
	return prior
}

// askRefund asks the wallet to return r's money and records its answer. Both wallets treat a
// repeated out_refund_no as the same refund, so asking again can never refund twice.
func (s *Service) askRefund(ctx context.Context, r *payment.Refund, p *payment.Payment) (*payment.Refund, error) {
	prov := s.providers[r.Provider]
	if prov == nil {
		return nil, payment.Errorf(payment.Internal, "provider_missing", "provider %s is not configured", r.Provider)
	}
	wr, callErr := prov.Refund(ctx, RefundRequest{
		OutTradeNo: p.ProviderRef.OutTradeNo, OutRefundNo: r.ProviderRef.OutRefundNo, Amount: r.Amount, Total: p.Amount,
		Currency: r.Currency, Reason: r.Reason, NotifyURL: s.NotifyURL(r.Provider, "refunds"),
	})
	if callErr != nil {
		var pe *payment.Error
		if errors.As(callErr, &pe) && pe.Kind == payment.ProviderError && pe.ProviderCode != "" {
			// The wallet answered and refused: no money moved, so the amount is released.
			return s.failRefund(ctx, r.ID, pe.ProviderCode, pe.Message)
		}
		// No clear answer (timeout, system error): the refund stays pending and is followed up by
		// querying the wallet.
		s.log.Warn("refund outcome unknown", "refund_id", r.ID, "payment_id", p.ID, "provider", r.Provider, "err", callErr)
		return r, nil
	}
	return s.ApplyWalletRefund(ctx, r.Provider, wr)
}

func (s *Service) failRefund(ctx context.Context, id, code, message string) (*payment.Refund, error) {
	now := s.clock()
	return s.store.UpdateRefund(ctx, id, func(r *payment.Refund, p *payment.Payment) (Effects, error) {
		changed, err := r.Fail(code, message, now)
		if err != nil || !changed {
			return Effects{}, err
		}
		p.AmountRefunded -= r.Amount
		p.UpdatedAt = now
		return s.refundEvent(r, now)
	})
}

// Refund returns a merchant's refund.
func (s *Service) Refund(ctx context.Context, merchantID, id string) (*payment.Refund, error) {
	return s.store.Refund(ctx, merchantID, id)
}

// SyncRefund asks the wallet for refund id's truth and applies it.
func (s *Service) SyncRefund(ctx context.Context, id string) (*payment.Refund, error) {
	r, err := s.store.Refund(ctx, "", id)
	if err != nil {
		return nil, err
	}
	if r.Status != payment.RefundPending {
		return r, nil
	}
	p, err := s.store.Payment(ctx, "", r.PaymentID)
	if err != nil {
		return nil, err
	}
	prov := s.providers[r.Provider]
	if prov == nil {
		return nil, payment.Errorf(payment.Internal, "provider_missing", "provider %s is not configured", r.Provider)
	}
	wr, err := prov.QueryRefund(ctx, p.ProviderRef.OutTradeNo, r.ProviderRef.OutRefundNo)
	if err != nil {
		return nil, providerError(err, "the wallet could not be asked about refund %s", r.ID)
	}
	if wr.State == RefundNotFound {
		// The wallet never heard of it: the node that recorded the refund stopped before asking.
		return s.askRefund(ctx, r, p)
	}
	return s.ApplyWalletRefund(ctx, r.Provider, wr)
}

// ApplyWalletRefund applies what wallet provider says of a refund, exactly once.
func (s *Service) ApplyWalletRefund(ctx context.Context, provider payment.Provider, wr WalletRefund) (*payment.Refund, error) {
	r, err := s.store.RefundByOutRefundNo(ctx, provider, wr.OutRefundNo)
	if err != nil {
		if payment.IsNotFound(err) && wr.OutTradeNo != "" {
			// News of a refund we did not make (e.g. from the wallet's merchant portal) means its
			// payment was paid: if we have not heard that yet, ask the wallet now.
			if p, perr := s.store.PaymentByOutTradeNo(ctx, provider, wr.OutTradeNo); perr == nil && p.Status == payment.StatusPending {
				if _, serr := s.SyncPayment(ctx, p.ID); serr != nil {
					s.log.Warn("sync payment after unknown refund", "payment_id", p.ID, "err", serr)
				}
			}
		}
		return nil, err
	}
	if wr.State == RefundSuccess && r.Status == payment.RefundFailed {
		return r, fmt.Errorf("%w: refund %s is failed but %s says it succeeded", ErrMismatch, r.ID, provider)
	}
	switch wr.State {
	case RefundSuccess:
		if wr.Amount != 0 && wr.Amount != r.Amount {
			return r, fmt.Errorf("%w: refund %s is %d but %s says %d", ErrMismatch, r.ID, r.Amount, provider, wr.Amount)
		}
		now := s.clock()
		return s.store.UpdateRefund(ctx, r.ID, func(r *payment.Refund, p *payment.Payment) (Effects, error) {
			at := wr.SucceededAt
			if at.IsZero() {
				at = now
			}
			if wr.RefundID != "" {
				r.ProviderRef.RefundID = wr.RefundID
			}
			changed, err := r.Succeed(at.Truncate(time.Microsecond), now)
			if err != nil || !changed {
				return Effects{}, err
			}
			return s.refundEvent(r, now)
		})
	case RefundClosed:
		return s.failRefund(ctx, r.ID, "refund_closed", "the wallet closed the refund without returning the money")
	}
	return r, nil
}
