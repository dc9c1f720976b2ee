package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

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
		p.CreatedAt, p.UpdatedAt, nullTime(p.ExpiresAt), nullTimePtr(p.PaidAt)}, nil
}

func scanPayment(row pgx.Row) (*payment.Payment, error) {
	p := payment.Payment{Object: "payment"}
	var (
		ref, next, payer, meta []byte
		status, provider, ch   string
		outTradeNo             string
		expires, paid          *time.Time
	)
	err := row.Scan(&p.ID, &p.MerchantID, &p.Livemode, &status, &p.Amount, &p.AmountRefunded, &p.Currency, &p.Description,
		&p.Reference, &provider, &ch, &outTradeNo, &ref, &next, &p.CheckoutURL, &p.CustomerID, &payer,
		&p.ReturnURL, &meta, &p.CancelReason, &p.FailureCode, &p.FailureMessage, &p.CreatedAt, &p.UpdatedAt, &expires, &paid)
	if err != nil {
		return nil, err
	}
	p.Status, p.Provider, p.Channel = payment.Status(status), payment.Provider(provider), payment.Channel(ch)
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
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	p.ExpiresAt, p.PaidAt = fromNullTime(expires), fromNullTimePtr(paid)
	return &p, nil
}

// placeholders returns "$from, …, $(from+n-1)".
func placeholders(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(from+i))
	}
	return b.String()
}

var insertPayment = `INSERT INTO payments (` + paymentColumns + `) VALUES (` + placeholders(1, 26) + `)`

// CreatePayment stores p and enqueues jobs. It leaves p as stored: times in UTC, to the
// microsecond.
func (s *Store) CreatePayment(ctx context.Context, p *payment.Payment, jobs []gateway.Job) error {
	normPayment(p)
	args, err := paymentArgs(p)
	if err != nil {
		return wrap("create payment", err)
	}
	if len(jobs) == 0 {
		_, err = s.pool.Exec(ctx, insertPayment, args...)
		return wrap("create payment", err)
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, insertPayment, args...); err != nil {
			return wrap("create payment", err)
		}
		return wrap("create payment", s.jobs.InsertTx(ctx, tx, jobs))
	})
}

// Payment returns payment id of merchantID, or of anyone when merchantID is "".
func (s *Store) Payment(ctx context.Context, merchantID, id string) (*payment.Payment, error) {
	p, err := scanPayment(s.pool.QueryRow(ctx, `SELECT `+paymentColumns+` FROM payments WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && merchantID != "" && p.MerchantID != merchantID) {
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
	// out_trade_no <> '' lets the planner use the partial unique index.
	p, err := scanPayment(s.pool.QueryRow(ctx, `SELECT `+paymentColumns+` FROM payments
		WHERE provider = $1 AND out_trade_no = $2 AND out_trade_no <> ''`, string(provider), outTradeNo))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, wrap("payment by out_trade_no", payment.ErrNotFound("payment", string(provider)+" "+outTradeNo))
	}
	if err != nil {
		return nil, wrap("payment by out_trade_no", err)
	}
	return p, nil
}

// ListPayments returns the merchant's payments newest first (by created_at, then id), after
// the payment f.StartingAfter, which must be the merchant's.
func (s *Store) ListPayments(ctx context.Context, merchantID string, f gateway.PaymentFilter) ([]*payment.Payment, error) {
	q := `SELECT ` + paymentColumns + ` FROM payments WHERE merchant_id = $1 AND livemode = $2`
	args := []any{merchantID, f.Livemode}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Reference != "" {
		q += ` AND reference = ` + arg(f.Reference)
	}
	if f.Status != "" {
		q += ` AND status = ` + arg(string(f.Status))
	}
	return listPage(ctx, s, "payments", "payment", q, args, merchantID, f.StartingAfter, f.Limit, scanPayment)
}

// lockPayment reads payment id and locks its row until tx ends.
func lockPayment(ctx context.Context, tx pgx.Tx, id string) (*payment.Payment, error) {
	p, err := scanPayment(tx.QueryRow(ctx, `SELECT `+paymentColumns+` FROM payments WHERE id = $1 FOR UPDATE`, id))
	if errors.Is(err, pgx.ErrNoRows) {
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

const updatePayment = `UPDATE payments SET livemode = $1, status = $2, amount = $3, amount_refunded = $4, currency = $5,
	description = $6, reference = $7, provider = $8, channel = $9, out_trade_no = $10, provider_ref = $11, next_action = $12,
	checkout_url = $13, customer_id = $14, payer = $15, return_url = $16, metadata = $17, cancel_reason = $18, failure_code = $19,
	failure_message = $20, updated_at = $21, expires_at = $22, paid_at = $23 WHERE id = $24`

// writePayment stores p's mutable fields after checking them against before.
func writePayment(ctx context.Context, tx pgx.Tx, before, p *payment.Payment) error {
	if err := checkPaymentChange(before, p); err != nil {
		return err
	}
	normPayment(p)
	a, err := paymentArgs(p)
	if err != nil {
		return err
	}
	// paymentArgs order without id, merchant_id and created_at, then the id.
	_, err = tx.Exec(ctx, updatePayment, append(append(a[2:22:22], a[23:]...), p.ID)...)
	return err
}

// UpdatePayment locks payment id, lets fn change it and writes it with fn's events and jobs, in
// one transaction. fn's error rolls everything back and is returned unchanged.
func (s *Store) UpdatePayment(ctx context.Context, id string, fn func(p *payment.Payment) (gateway.Effects, error)) (*payment.Payment, error) {
	var out *payment.Payment
	err := s.tx(ctx, func(tx pgx.Tx) error {
		p, err := lockPayment(ctx, tx, id)
		if err != nil {
			return wrap("update payment", err)
		}
		before := *p
		fx, err := fn(p)
		if err != nil {
			return err
		}
		if err := writePayment(ctx, tx, &before, p); err != nil {
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

// listPage runs q, a query of table filtered by its caller with args ($1…), as one page newest
// first (by created_at, then id): after the row startingAfter, which must be merchantID's, and at
// most limit rows (pageLimit). scan reads one row.
func listPage[T any](ctx context.Context, s *Store, table, what, q string, args []any, merchantID, startingAfter string, limit int,
	scan func(pgx.Row) (T, error)) ([]T, error) {
	op := "list " + table
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if startingAfter != "" {
		var created time.Time
		err := s.pool.QueryRow(ctx, `SELECT created_at FROM `+table+` WHERE id = $1 AND merchant_id = $2`, startingAfter, merchantID).Scan(&created)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, wrap(op, payment.ErrNotFound(what, startingAfter))
		}
		if err != nil {
			return nil, wrap(op, err)
		}
		q += ` AND (created_at, id) < (` + arg(created) + `, ` + arg(startingAfter) + `)`
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ` + arg(pageLimit(limit))
	rows, err := s.pool.Query(ctx, q, args...)
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
