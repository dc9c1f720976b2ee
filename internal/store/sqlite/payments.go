package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

const paymentColumns = `id, merchant_id, livemode, status, amount, amount_refunded, currency, description,
	reference, provider, channel, out_trade_no, provider_ref, next_action, checkout_url, customer_id, payer,
	return_url, metadata, cancel_reason, failure_code, failure_message, created_at, updated_at, expires_at, paid_at`

// normPayment puts p's times in the form they are stored in, so that p equals what a later
// read returns.
func normPayment(p *payment.Payment) {
	p.Object = "payment"
	p.CreatedAt, p.UpdatedAt, p.ExpiresAt, p.PaidAt = norm(p.CreatedAt), norm(p.UpdatedAt), norm(p.ExpiresAt), normPtr(p.PaidAt)
}

// paymentArgs returns p's values in paymentColumns order.
func paymentArgs(p *payment.Payment) ([]any, error) {
	ref, err := jsonText(p.ProviderRef)
	if err != nil {
		return nil, err
	}
	next, err := nullJSON(p.NextAction, p.NextAction == nil)
	if err != nil {
		return nil, err
	}
	payer, err := nullJSON(p.Payer, p.Payer == nil)
	if err != nil {
		return nil, err
	}
	meta, err := nullJSON(p.Metadata, p.Metadata == nil)
	if err != nil {
		return nil, err
	}
	return []any{p.ID, p.MerchantID, p.Livemode, string(p.Status), p.Amount, p.AmountRefunded, p.Currency, p.Description,
		p.Reference, string(p.Provider), string(p.Channel), p.ProviderRef.OutTradeNo, ref, next, p.CheckoutURL, p.CustomerID, payer,
		p.ReturnURL, meta, p.CancelReason, p.FailureCode, p.FailureMessage,
		micros(p.CreatedAt), micros(p.UpdatedAt), nullMicros(p.ExpiresAt), nullMicrosPtr(p.PaidAt)}, nil
}

func scanPayment(sc interface{ Scan(...any) error }) (*payment.Payment, error) {
	p := payment.Payment{Object: "payment"}
	var (
		ref, next, payer, meta []byte
		created, updated       int64
		expires, paid          sql.NullInt64
	)
	err := sc.Scan(&p.ID, &p.MerchantID, &p.Livemode, &p.Status, &p.Amount, &p.AmountRefunded, &p.Currency, &p.Description,
		&p.Reference, &p.Provider, &p.Channel, new(string), &ref, &next, &p.CheckoutURL, &p.CustomerID, &payer,
		&p.ReturnURL, &meta, &p.CancelReason, &p.FailureCode, &p.FailureMessage, &created, &updated, &expires, &paid)
	if err != nil {
		return nil, err
	}
	if err := fromJSON(ref, &p.ProviderRef); err != nil {
		return nil, fmt.Errorf("payment %s provider_ref: %w", p.ID, err)
	}
	if err := fromJSON(next, &p.NextAction); err != nil {
		return nil, fmt.Errorf("payment %s next_action: %w", p.ID, err)
	}
	if err := fromJSON(payer, &p.Payer); err != nil {
		return nil, fmt.Errorf("payment %s payer: %w", p.ID, err)
	}
	if err := fromJSON(meta, &p.Metadata); err != nil {
		return nil, fmt.Errorf("payment %s metadata: %w", p.ID, err)
	}
	p.CreatedAt, p.UpdatedAt = fromMicros(created), fromMicros(updated)
	p.ExpiresAt, p.PaidAt = fromNullMicros(expires), fromNullMicrosPtr(paid)
	return &p, nil
}

var insertPayment = `INSERT INTO payments (` + paymentColumns + `) VALUES (` + placeholders(26) + `)`

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }

// CreatePayment stores p and enqueues jobs. It leaves p as stored: times in UTC, to the
// microsecond.
func (s *Store) CreatePayment(ctx context.Context, p *payment.Payment, jobs []gateway.Job) error {
	normPayment(p)
	args, err := paymentArgs(p)
	if err != nil {
		return wrap("create payment", err)
	}
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		st, err := s.stmt(ctx, tx, insertPayment)
		if err == nil {
			_, err = st.ExecContext(ctx, args...)
		}
		if err == nil {
			err = s.jobs.InsertTx(ctx, tx, jobs)
		}
		return wrap("create payment", err)
	})
}

// Payment returns payment id of merchantID, or of anyone when merchantID is "".
func (s *Store) Payment(ctx context.Context, merchantID, id string) (*payment.Payment, error) {
	st, err := s.read(ctx, `SELECT `+paymentColumns+` FROM payments WHERE id = ?`)
	if err != nil {
		return nil, wrap("payment", err)
	}
	p, err := scanPayment(st.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) || (err == nil && merchantID != "" && p.MerchantID != merchantID) {
		return nil, wrap("payment", payment.ErrNotFound("payment", id))
	}
	if err != nil {
		return nil, wrap("payment", err)
	}
	return p, nil
}

// PaymentByOutTradeNo returns the payment a wallet knows by outTradeNo.
func (s *Store) PaymentByOutTradeNo(ctx context.Context, provider payment.Provider, outTradeNo string) (*payment.Payment, error) {
	if outTradeNo == "" {
		return nil, wrap("payment by out_trade_no", payment.ErrNotFound("payment", "(empty out_trade_no)"))
	}
	// out_trade_no <> '' lets SQLite use the partial unique index.
	st, err := s.read(ctx, `SELECT `+paymentColumns+` FROM payments WHERE provider = ? AND out_trade_no = ? AND out_trade_no <> ''`)
	if err != nil {
		return nil, wrap("payment by out_trade_no", err)
	}
	p, err := scanPayment(st.QueryRowContext(ctx, string(provider), outTradeNo))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, wrap("payment by out_trade_no", payment.ErrNotFound("payment", string(provider)+" "+outTradeNo))
	}
	if err != nil {
		return nil, wrap("payment by out_trade_no", err)
	}
	return p, nil
}

// maxPage bounds a list query, well above what the API asks (its limit of 100, plus one to
// learn whether more follow): a guard against a runaway caller, not the API's page size.
const maxPage = 1000

// pageLimit applies the default and the ceiling of list sizes.
func pageLimit(n int) int {
	switch {
	case n <= 0:
		return 10
	case n > maxPage:
		return maxPage
	}
	return n
}

// ListPayments returns the merchant's payments newest first (by created_at, then id), after
// the payment f.StartingAfter, which must be the merchant's.
func (s *Store) ListPayments(ctx context.Context, merchantID string, f gateway.PaymentFilter) ([]*payment.Payment, error) {
	q := `SELECT ` + paymentColumns + ` FROM payments WHERE merchant_id = ? AND livemode = ?`
	args := []any{merchantID, f.Livemode}
	if f.Reference != "" {
		q += ` AND reference = ?`
		args = append(args, f.Reference)
	}
	if f.Status != "" {
		q += ` AND status = ?`
		args = append(args, string(f.Status))
	}
	return listPage(ctx, s, "payments", "payment", q, args, merchantID, f.StartingAfter, f.Limit, scanPayment)
}

// lockPayment reads payment id inside the write transaction. The transaction holds SQLite's
// write lock, so nobody changes the row until it ends.
func (s *Store) lockPayment(ctx context.Context, tx *sql.Tx, id string) (*payment.Payment, error) {
	st, err := s.stmt(ctx, tx, `SELECT `+paymentColumns+` FROM payments WHERE id = ?`)
	if err != nil {
		return nil, err
	}
	p, err := scanPayment(st.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, payment.ErrNotFound("payment", id)
	}
	return p, err
}

// checkPaymentChange refuses what no callback may do to a payment, whatever it believes.
func checkPaymentChange(before, after *payment.Payment) error {
	if after.ID != before.ID || after.MerchantID != before.MerchantID || !after.CreatedAt.Equal(before.CreatedAt) {
		return payment.Errorf(payment.Internal, "payment_identity", "payment %s: its id, merchant and creation time cannot change", before.ID)
	}
	if before.Status.Final() && after.Status != before.Status {
		return payment.Errorf(payment.Conflict, "payment_state", "payment %s is %s and cannot become %s", before.ID, before.Status, after.Status)
	}
	if !after.Status.Valid() {
		return payment.Errorf(payment.Internal, "payment_state", "payment %s: unknown status %q", before.ID, after.Status)
	}
	return nil
}

var updatePayment = `UPDATE payments SET livemode = ?, status = ?, amount = ?, amount_refunded = ?, currency = ?,
	description = ?, reference = ?, provider = ?, channel = ?, out_trade_no = ?, provider_ref = ?, next_action = ?,
	checkout_url = ?, customer_id = ?, payer = ?, return_url = ?, metadata = ?, cancel_reason = ?, failure_code = ?,
	failure_message = ?, updated_at = ?, expires_at = ?, paid_at = ? WHERE id = ?`

// writePayment stores p's mutable fields after checking them against before.
func (s *Store) writePayment(ctx context.Context, tx *sql.Tx, before, p *payment.Payment) error {
	if err := checkPaymentChange(before, p); err != nil {
		return err
	}
	normPayment(p)
	a, err := paymentArgs(p)
	if err != nil {
		return err
	}
	st, err := s.stmt(ctx, tx, updatePayment)
	if err != nil {
		return err
	}
	// paymentArgs order without id, merchant_id and created_at, then the id.
	_, err = st.ExecContext(ctx, append(append(a[2:22:22], a[23:]...), p.ID)...)
	return err
}

// UpdatePayment locks payment id, lets fn change it and writes it with fn's events and jobs, in
// one transaction. fn's error rolls everything back and is returned unchanged.
func (s *Store) UpdatePayment(ctx context.Context, id string, fn func(p *payment.Payment) (gateway.Effects, error)) (*payment.Payment, error) {
	var out *payment.Payment
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		p, err := s.lockPayment(ctx, tx, id)
		if err != nil {
			return wrap("update payment", err)
		}
		before := *p
		fx, err := fn(p)
		if err != nil {
			return err
		}
		if err := s.writePayment(ctx, tx, &before, p); err != nil {
			return wrap("update payment", err)
		}
		if err := s.writeEffects(ctx, tx, p.MerchantID, fx); err != nil {
			return wrap("update payment", err)
		}
		out = p
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// listPage runs q, a query of table filtered by its caller, as one page newest first (by
// created_at, then id): after the row startingAfter, which must be merchantID's, and at most
// limit rows (pageLimit). scan reads one row.
func listPage[T any](ctx context.Context, s *Store, table, what, q string, args []any, merchantID, startingAfter string, limit int,
	scan func(interface{ Scan(...any) error }) (T, error)) ([]T, error) {
	op := "list " + table
	if startingAfter != "" {
		st, err := s.read(ctx, `SELECT created_at FROM `+table+` WHERE id = ? AND merchant_id = ?`)
		if err != nil {
			return nil, wrap(op, err)
		}
		var created int64
		err = st.QueryRowContext(ctx, startingAfter, merchantID).Scan(&created)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, wrap(op, payment.ErrNotFound(what, startingAfter))
		}
		if err != nil {
			return nil, wrap(op, err)
		}
		q += ` AND (created_at, id) < (?, ?)`
		args = append(args, created, startingAfter)
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	args = append(args, pageLimit(limit))
	st, err := s.read(ctx, q)
	if err != nil {
		return nil, wrap(op, err)
	}
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	list := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		list = append(list, v)
	}
	return list, wrap(op, rows.Err())
}
