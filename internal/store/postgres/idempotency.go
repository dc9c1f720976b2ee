package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

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
	err := s.tx(ctx, func(tx pgx.Tx) error {
		// A concurrent claim of the same new key waits here for the other transaction and
		// then inserts nothing.
		tag, err := tx.Exec(ctx, `INSERT INTO idempotency_keys
			(merchant_id, idempotency_key, request_hash, status, body, created_at, locked_at) VALUES ($1, $2, $3, 0, NULL, $4, $4)
			ON CONFLICT (merchant_id, idempotency_key) DO NOTHING`, merchantID, key, hash, now)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			created = true
			rec = &gateway.IdempotencyRecord{MerchantID: merchantID, Key: key, RequestHash: hash, CreatedAt: now, LockedAt: now}
			return nil
		}
		r := gateway.IdempotencyRecord{MerchantID: merchantID, Key: key}
		err = tx.QueryRow(ctx, `SELECT request_hash, status, body, created_at, locked_at FROM idempotency_keys
			WHERE merchant_id = $1 AND idempotency_key = $2 FOR UPDATE`, merchantID, key).
			Scan(&r.RequestHash, &r.Status, &r.Body, &r.CreatedAt, &r.LockedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			// Purged or aborted between the two statements: the caller may simply retry.
			return payment.Errorf(payment.Conflict, "idempotency_key_in_use", "idempotency key %s changed while it was claimed; retry", key)
		}
		if err != nil {
			return err
		}
		r.CreatedAt, r.LockedAt = r.CreatedAt.UTC(), r.LockedAt.UTC()
		if r.Status != 0 || now.Sub(r.LockedAt) <= staleAfter {
			rec = &r
			return nil
		}
		// The first request's process died while it held the key.
		if _, err := tx.Exec(ctx, `UPDATE idempotency_keys SET request_hash = $3, created_at = $4, locked_at = $4
			WHERE merchant_id = $1 AND idempotency_key = $2`, merchantID, key, hash, now); err != nil {
			return err
		}
		created = true
		rec = &gateway.IdempotencyRecord{MerchantID: merchantID, Key: key, RequestHash: hash, CreatedAt: now, LockedAt: now}
		return nil
	})
	if err != nil {
		return nil, false, wrap("begin idempotent", err)
	}
	return rec, created, nil
}

// FinishIdempotent stores the response to replay for (merchantID, key).
func (s *Store) FinishIdempotent(ctx context.Context, merchantID, key string, status int, body []byte) error {
	tag, err := s.pool.Exec(ctx, `UPDATE idempotency_keys SET status = $3, body = $4 WHERE merchant_id = $1 AND idempotency_key = $2`,
		merchantID, key, status, body)
	if err == nil && tag.RowsAffected() == 0 {
		err = payment.ErrNotFound("idempotency key", key)
	}
	return wrap("finish idempotent", err)
}

// AbortIdempotent forgets an in-flight claim; a finished record, or none, is left as it is.
func (s *Store) AbortIdempotent(ctx context.Context, merchantID, key string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE merchant_id = $1 AND idempotency_key = $2 AND status = 0`, merchantID, key)
	return wrap("abort idempotent", err)
}

// PurgeIdempotent deletes the records created before t and returns how many.
func (s *Store) PurgeIdempotent(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < $1`, norm(before))
	if err != nil {
		return 0, wrap("purge idempotent", err)
	}
	return tag.RowsAffected(), nil
}
