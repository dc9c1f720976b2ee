package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

// BeginIdempotent claims (merchantID, key) for a request with hash; see gateway.Store. A stale
// claim is taken over as if the key were new: the new request's hash and times replace the
// dead one's, so that purging by creation time never drops a live claim.
func (s *Store) BeginIdempotent(ctx context.Context, merchantID, key, hash string, now time.Time, staleAfter time.Duration) (*gateway.IdempotencyRecord, bool, error) {
	now = norm(now)
	var rec *gateway.IdempotencyRecord
	var created bool
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		st, err := s.stmt(ctx, tx, `SELECT request_hash, status, body, created_at, locked_at
			FROM idempotency_keys WHERE merchant_id = ? AND idempotency_key = ?`)
		if err != nil {
			return err
		}
		r := gateway.IdempotencyRecord{MerchantID: merchantID, Key: key}
		var createdAt, lockedAt int64
		err = st.QueryRowContext(ctx, merchantID, key).Scan(&r.RequestHash, &r.Status, &r.Body, &createdAt, &lockedAt)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if st, err = s.stmt(ctx, tx, `INSERT INTO idempotency_keys
				(merchant_id, idempotency_key, request_hash, status, body, created_at, locked_at) VALUES (?, ?, ?, 0, NULL, ?, ?)`); err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			r.CreatedAt, r.LockedAt = fromMicros(createdAt), fromMicros(lockedAt)
			if r.Status != 0 || now.Sub(r.LockedAt) <= staleAfter {
				rec = &r
				return nil
			}
			// The first request's process died while it held the key.
			if st, err = s.stmt(ctx, tx, `UPDATE idempotency_keys SET request_hash = ?3, created_at = ?4, locked_at = ?5
				WHERE merchant_id = ?1 AND idempotency_key = ?2 AND status = 0`); err != nil {
				return err
			}
		}
		if _, err := st.ExecContext(ctx, merchantID, key, hash, micros(now), micros(now)); err != nil {
			return err
		}
		rec = &gateway.IdempotencyRecord{MerchantID: merchantID, Key: key, RequestHash: hash, CreatedAt: now, LockedAt: now}
		created = true
		return nil
	})
	if err != nil {
		return nil, false, wrap("begin idempotent", err)
	}
	return rec, created, nil
}

// FinishIdempotent stores the response to replay for (merchantID, key).
func (s *Store) FinishIdempotent(ctx context.Context, merchantID, key string, status int, body []byte) error {
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		st, err := s.stmt(ctx, tx, `UPDATE idempotency_keys SET status = ?, body = ? WHERE merchant_id = ? AND idempotency_key = ?`)
		if err != nil {
			return wrap("finish idempotent", err)
		}
		res, err := st.ExecContext(ctx, status, body, merchantID, key)
		if err != nil {
			return wrap("finish idempotent", err)
		}
		n, err := res.RowsAffected()
		if err == nil && n == 0 {
			err = payment.ErrNotFound("idempotency key", key)
		}
		return wrap("finish idempotent", err)
	})
}

// AbortIdempotent forgets an in-flight claim; a finished record, or none, is left as it is.
func (s *Store) AbortIdempotent(ctx context.Context, merchantID, key string) error {
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		st, err := s.stmt(ctx, tx, `DELETE FROM idempotency_keys WHERE merchant_id = ? AND idempotency_key = ? AND status = 0`)
		if err == nil {
			_, err = st.ExecContext(ctx, merchantID, key)
		}
		return wrap("abort idempotent", err)
	})
}

// PurgeIdempotent deletes the records created before t and returns how many.
func (s *Store) PurgeIdempotent(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE created_at < ?`, micros(norm(before)))
		if err == nil {
			n, err = res.RowsAffected()
		}
		return wrap("purge idempotent", err)
	})
	return n, err
}
