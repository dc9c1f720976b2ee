package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

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
		micros(r.CreatedAt), micros(r.UpdatedAt), nullMicrosPtr(r.SucceededAt), r.Livemode}, nil
}

func scanRefund(sc interface{ Scan(...any) error }) (*payment.Refund, error) {
	r := payment.Refund{Object: "refund"}
	var (
		ref, meta        []byte
		created, updated int64
		succeeded        sql.NullInt64
	)
	err := sc.Scan(&r.ID, &r.MerchantID, &r.PaymentID, &r.Status, &r.Amount, &r.Currency, &r.Reason, &r.Provider,
		new(string), &ref, &meta, &r.FailureCode, &r.FailureMessage, &created, &updated, &succeeded, &r.Livemode)
	if err != nil {
		return nil, err
	}
	if err := fromJSON(ref, &r.ProviderRef); err != nil {
		return nil, fmt.Errorf("refund %s provider_ref: %w", r.ID, err)
	}
	if err := fromJSON(meta, &r.Metadata); err != nil {
		return nil, fmt.Errorf("refund %s metadata: %w", r.ID, err)
	}
	r.CreatedAt, r.UpdatedAt, r.SucceededAt = fromMicros(created), fromMicros(updated), fromNullMicrosPtr(succeeded)
	return &r, nil
}

var insertRefund = `INSERT INTO refunds (` + refundColumns + `) VALUES (` + placeholders(17) + `)`

// CreateRefund locks r's payment, lets fn check and reserve the amount on it, then writes the
// payment, inserts r and enqueues jobs in one transaction. The payment must be r's merchant's
// and of its mode. r is read after fn, which may fill in its amount.
func (s *Store) CreateRefund(ctx context.Context, r *payment.Refund, jobs []gateway.Job, fn func(p *payment.Payment) error) error {
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		p, err := s.lockPayment(ctx, tx, r.PaymentID)
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
		if err := s.writePayment(ctx, tx, &before, p); err != nil {
			return wrap("create refund", err)
		}
		normRefund(r)
		args, err := refundArgs(r)
		if err != nil {
			return wrap("create refund", err)
		}
		st, err := s.stmt(ctx, tx, insertRefund)
		if err == nil {
			_, err = st.ExecContext(ctx, args...)
		}
		if err == nil {
			err = s.jobs.InsertTx(ctx, tx, jobs)
		}
		return wrap("create refund", err)
	})
}

// Refund returns refund id of merchantID, or of anyone when merchantID is "".
func (s *Store) Refund(ctx context.Context, merchantID, id string) (*payment.Refund, error) {
	st, err := s.read(ctx, `SELECT `+refundColumns+` FROM refunds WHERE id = ?`)
	if err != nil {
		return nil, wrap("refund", err)
	}
	r, err := scanRefund(st.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) || (err == nil && merchantID != "" && r.MerchantID != merchantID) {
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
	st, err := s.read(ctx, `SELECT `+refundColumns+` FROM refunds WHERE provider = ? AND out_refund_no = ? AND out_refund_no <> ''`)
	if err != nil {
		return nil, wrap("refund by out_refund_no", err)
	}
	r, err := scanRefund(st.QueryRowContext(ctx, string(provider), outRefundNo))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, wrap("refund by out_refund_no", payment.ErrNotFound("refund", string(provider)+" "+outRefundNo))
	}
	if err != nil {
		return nil, wrap("refund by out_refund_no", err)
	}
	return r, nil
}

// ListRefunds returns a payment's refunds, newest first.
func (s *Store) ListRefunds(ctx context.Context, paymentID string) ([]*payment.Refund, error) {
	st, err := s.read(ctx, `SELECT `+refundColumns+` FROM refunds WHERE payment_id = ? ORDER BY created_at DESC, id DESC`)
	if err != nil {
		return nil, wrap("list refunds", err)
	}
	rows, err := st.QueryContext(ctx, paymentID)
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

var updateRefund = `UPDATE refunds SET status = ?, amount = ?, currency = ?, reason = ?, provider = ?, out_refund_no = ?,
	provider_ref = ?, metadata = ?, failure_code = ?, failure_message = ?, updated_at = ?, succeeded_at = ? WHERE id = ?`

// UpdateRefund locks refund id and its payment, lets fn change both and writes them with fn's
// events and jobs in one transaction.
func (s *Store) UpdateRefund(ctx context.Context, id string, fn func(r *payment.Refund, p *payment.Payment) (gateway.Effects, error)) (*payment.Refund, error) {
	var out *payment.Refund
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		st, err := s.stmt(ctx, tx, `SELECT `+refundColumns+` FROM refunds WHERE id = ?`)
		if err != nil {
			return wrap("update refund", err)
		}
		r, err := scanRefund(st.QueryRowContext(ctx, id))
		if errors.Is(err, sql.ErrNoRows) {
			err = payment.ErrNotFound("refund", id)
		}
		if err != nil {
			return wrap("update refund", err)
		}
		p, err := s.lockPayment(ctx, tx, r.PaymentID)
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
		if err := s.writePayment(ctx, tx, &pBefore, p); err != nil {
			return wrap("update refund", err)
		}
		normRefund(r)
		a, err := refundArgs(r)
		if err != nil {
			return wrap("update refund", err)
		}
		if st, err = s.stmt(ctx, tx, updateRefund); err != nil {
			return wrap("update refund", err)
		}
		// refundArgs order without id, merchant_id, payment_id, created_at and livemode, then the id.
		if _, err := st.ExecContext(ctx, append(append(a[3:13:13], a[14:16]...), r.ID)...); err != nil {
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
