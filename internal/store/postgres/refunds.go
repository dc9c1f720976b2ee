package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

const refundColumns = `id, merchant_id, payment_id, status, amount, currency, reason, provider, out_refund_no,
	provider_ref, metadata, failure_code, failure_message, created_at, updated_at, succeeded_at, livemode`

func normRefund(r *payment.Refund) {
	r.Object = "refund"
	r.CreatedAt, r.UpdatedAt, r.SucceededAt = norm(r.CreatedAt), norm(r.UpdatedAt), normPtr(r.SucceededAt)
}

func refundArgs(r *payment.Refund) ([]any, error) {
	ref, err := jsonText(r.ProviderRef)
	if err != nil {
		return nil, err
	}
	meta, err := nullJSON(r.Metadata, r.Metadata == nil)
	if err != nil {
		return nil, err
	}
	return []any{r.ID, r.MerchantID, r.PaymentID, string(r.Status), r.Amount, r.Currency, r.Reason, string(r.Provider),
		r.ProviderRef.OutRefundNo, ref, meta, r.FailureCode, r.FailureMessage,
		r.CreatedAt, r.UpdatedAt, nullTimePtr(r.SucceededAt), r.Livemode}, nil
}

func scanRefund(row pgx.Row) (*payment.Refund, error) {
	r := payment.Refund{Object: "refund"}
	var (
		ref, meta               []byte
		status, provider, outNo string
		succeeded               *time.Time
	)
	err := row.Scan(&r.ID, &r.MerchantID, &r.PaymentID, &status, &r.Amount, &r.Currency, &r.Reason, &provider,
		&outNo, &ref, &meta, &r.FailureCode, &r.FailureMessage, &r.CreatedAt, &r.UpdatedAt, &succeeded, &r.Livemode)
	if err != nil {
		return nil, err
	}
	r.Status, r.Provider = payment.RefundStatus(status), payment.Provider(provider)
	if err := fromJSON(ref, &r.ProviderRef); err != nil {
		return nil, fmt.Errorf("refund %s provider_ref: %w", r.ID, err)
	}
	if err := fromJSON(meta, &r.Metadata); err != nil {
		return nil, fmt.Errorf("refund %s metadata: %w", r.ID, err)
	}
	r.CreatedAt, r.UpdatedAt, r.SucceededAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC(), fromNullTimePtr(succeeded)
	return &r, nil
}

var insertRefund = `INSERT INTO refunds (` + refundColumns + `) VALUES (` + placeholders(1, 17) + `)`

// CreateRefund locks r's payment, lets fn check and reserve the amount on it, then writes the
// payment, inserts r and enqueues jobs in one transaction. The payment must be r's merchant's
// and of its mode. r is read after fn, which may fill in its amount.
func (s *Store) CreateRefund(ctx context.Context, r *payment.Refund, jobs []gateway.Job, fn func(p *payment.Payment) error) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		p, err := lockPayment(ctx, tx, r.PaymentID)
		if err == nil && (p.MerchantID != r.MerchantID || p.Livemode != r.Livemode) {
			err = payment.ErrNotFound("payment", r.PaymentID)
		}
		if err != nil {
			return wrap("create refund", err)
		}
		before := *p
		if err := fn(p); err != nil {
			return err
		}
		if err := writePayment(ctx, tx, &before, p); err != nil {
			return wrap("create refund", err)
		}
		normRefund(r)
		args, err := refundArgs(r)
		if err != nil {
			return wrap("create refund", err)
		}
		if _, err = tx.Exec(ctx, insertRefund, args...); err != nil {
			return wrap("create refund", err)
		}
		return wrap("create refund", s.jobs.InsertTx(ctx, tx, jobs))
	})
}

// Refund returns refund id of merchantID, or of anyone when merchantID is "".
func (s *Store) Refund(ctx context.Context, merchantID, id string) (*payment.Refund, error) {
	r, err := scanRefund(s.pool.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && merchantID != "" && r.MerchantID != merchantID) {
		return nil, wrap("refund", payment.ErrNotFound("refund", id))
	}
	if err != nil {
		return nil, wrap("refund", err)
	}
	return r, nil
}

// RefundByOutRefundNo returns the refund a wallet knows by outRefundNo.
func (s *Store) RefundByOutRefundNo(ctx context.Context, provider payment.Provider, outRefundNo string) (*payment.Refund, error) {
	if outRefundNo == "" {
		return nil, wrap("refund by out_refund_no", payment.ErrNotFound("refund", "(empty out_refund_no)"))
	}
	r, err := scanRefund(s.pool.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds
		WHERE provider = $1 AND out_refund_no = $2 AND out_refund_no <> ''`, string(provider), outRefundNo))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, wrap("refund by out_refund_no", payment.ErrNotFound("refund", string(provider)+" "+outRefundNo))
	}
	if err != nil {
		return nil, wrap("refund by out_refund_no", err)
	}
	return r, nil
}

// ListRefunds returns a payment's refunds, newest first.
func (s *Store) ListRefunds(ctx context.Context, paymentID string) ([]*payment.Refund, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+refundColumns+` FROM refunds WHERE payment_id = $1 ORDER BY created_at DESC, id DESC`, paymentID)
	if err != nil {
		return nil, wrap("list refunds", err)
	}
	defer rows.Close()
	list := []*payment.Refund{}
	for rows.Next() {
		r, err := scanRefund(rows)
		if err != nil {
			return nil, wrap("list refunds", err)
		}
		list = append(list, r)
	}
	return list, wrap("list refunds", rows.Err())
}

const updateRefund = `UPDATE refunds SET status = $1, amount = $2, currency = $3, reason = $4, provider = $5, out_refund_no = $6,
	provider_ref = $7, metadata = $8, failure_code = $9, failure_message = $10, updated_at = $11, succeeded_at = $12 WHERE id = $13`

// UpdateRefund locks refund id and its payment (payment first, as every other change does),
// lets fn change both and writes them with fn's events in one transaction.
func (s *Store) UpdateRefund(ctx context.Context, id string, fn func(r *payment.Refund, p *payment.Payment) (gateway.Effects, error)) (*payment.Refund, error) {
	var out *payment.Refund
	err := s.tx(ctx, func(tx pgx.Tx) error {
		// A refund never changes payment, so reading payment_id before the locks is safe.
		var paymentID string
		err := tx.QueryRow(ctx, `SELECT payment_id FROM refunds WHERE id = $1`, id).Scan(&paymentID)
		if errors.Is(err, pgx.ErrNoRows) {
			err = payment.ErrNotFound("refund", id)
		}
		if err != nil {
			return wrap("update refund", err)
		}
		p, err := lockPayment(ctx, tx, paymentID)
		if err != nil {
			return wrap("update refund", err)
		}
		r, err := scanRefund(tx.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds WHERE id = $1 FOR UPDATE`, id))
		if err != nil {
			return wrap("update refund", err)
		}
		rBefore, pBefore := *r, *p
		fx, err := fn(r, p)
		if err != nil {
			return err
		}
		if r.ID != rBefore.ID || r.PaymentID != rBefore.PaymentID || r.MerchantID != rBefore.MerchantID ||
			r.Livemode != rBefore.Livemode || !r.CreatedAt.Equal(rBefore.CreatedAt) {
			return wrap("update refund", payment.Errorf(payment.Internal, "refund_identity",
				"refund %s: its id, payment, merchant, mode and creation time cannot change", id))
		}
		if err := writePayment(ctx, tx, &pBefore, p); err != nil {
			return wrap("update refund", err)
		}
		normRefund(r)
		a, err := refundArgs(r)
		if err != nil {
			return wrap("update refund", err)
		}
		// refundArgs order without id, merchant_id, payment_id, created_at and livemode, then the id.
		if _, err := tx.Exec(ctx, updateRefund, append(append(a[3:13:13], a[14:16]...), r.ID)...); err != nil {
			return wrap("update refund", err)
		}
		if err := s.writeEffects(ctx, tx, r.MerchantID, fx); err != nil {
			return wrap("update refund", err)
		}
		out = r
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
