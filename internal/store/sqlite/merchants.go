package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/hutong-pay/hutong/internal/payment"
)

// CreateMerchant stores m.
func (s *Store) CreateMerchant(ctx context.Context, m *payment.Merchant) error {
	m.CreatedAt = norm(m.CreatedAt)
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		st, err := s.stmt(ctx, tx, `INSERT INTO merchants (id, name, created_at) VALUES (?, ?, ?)`)
		if err == nil {
			_, err = st.ExecContext(ctx, m.ID, m.Name, micros(m.CreatedAt))
		}
		return wrap("create merchant", err)
	})
	return err
}

// Merchant returns merchant id.
func (s *Store) Merchant(ctx context.Context, id string) (*payment.Merchant, error) {
	st, err := s.read(ctx, `SELECT id, name, created_at FROM merchants WHERE id = ?`)
	if err != nil {
		return nil, wrap("merchant", err)
	}
	var m payment.Merchant
	var created int64
	err = st.QueryRowContext(ctx, id).Scan(&m.ID, &m.Name, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, wrap("merchant", payment.ErrNotFound("merchant", id))
	}
	if err != nil {
		return nil, wrap("merchant", err)
	}
	m.CreatedAt = fromMicros(created)
	return &m, nil
}

const apiKeyColumns = `id, merchant_id, livemode, prefix, hash, created_at, revoked_at`

// CreateAPIKey stores k; its hash must be unique.
func (s *Store) CreateAPIKey(ctx context.Context, k *payment.APIKey) error {
	k.CreatedAt, k.RevokedAt = norm(k.CreatedAt), normPtr(k.RevokedAt)
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		st, err := s.stmt(ctx, tx, `INSERT INTO api_keys (`+apiKeyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`)
		if err == nil {
			_, err = st.ExecContext(ctx, k.ID, k.MerchantID, k.Livemode, k.Prefix, k.Hash, micros(k.CreatedAt), nullMicrosPtr(k.RevokedAt))
		}
		return wrap("create api key", err)
	})
}

func scanAPIKey(sc interface{ Scan(...any) error }) (*payment.APIKey, error) {
	var k payment.APIKey
	var created int64
	var revoked sql.NullInt64
	if err := sc.Scan(&k.ID, &k.MerchantID, &k.Livemode, &k.Prefix, &k.Hash, &created, &revoked); err != nil {
		return nil, err
	}
	k.CreatedAt, k.RevokedAt = fromMicros(created), fromNullMicrosPtr(revoked)
	return &k, nil
}

// APIKeyByHash returns the key whose secret hashes to hash, revoked or not.
func (s *Store) APIKeyByHash(ctx context.Context, hash []byte) (*payment.APIKey, error) {
	st, err := s.read(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE hash = ?`)
	if err != nil {
		return nil, wrap("api key by hash", err)
	}
	k, err := scanAPIKey(st.QueryRowContext(ctx, hash))
	if errors.Is(err, sql.ErrNoRows) {
		// The hash is not an id worth echoing.
		return nil, wrap("api key by hash", payment.ErrNotFound("api key", "(by hash)"))
	}
	return k, wrap("api key by hash", err)
}

// ListAPIKeys returns the merchant's keys, newest first.
func (s *Store) ListAPIKeys(ctx context.Context, merchantID string) ([]*payment.APIKey, error) {
	st, err := s.read(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE merchant_id = ? ORDER BY created_at DESC, id DESC`)
	if err != nil {
		return nil, wrap("list api keys", err)
	}
	rows, err := st.QueryContext(ctx, merchantID)
	if err != nil {
		return nil, wrap("list api keys", err)
	}
	defer rows.Close()
	keys := []*payment.APIKey{}
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, wrap("list api keys", err)
		}
		keys = append(keys, k)
	}
	return keys, wrap("list api keys", rows.Err())
}

// RevokeAPIKey marks key id revoked at at; a key already revoked keeps its first time.
func (s *Store) RevokeAPIKey(ctx context.Context, id string, at time.Time) error {
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		st, err := s.stmt(ctx, tx, `UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?`)
		if err != nil {
			return wrap("revoke api key", err)
		}
		res, err := st.ExecContext(ctx, micros(norm(at)), id)
		if err != nil {
			return wrap("revoke api key", err)
		}
		n, err := res.RowsAffected()
		if err == nil && n == 0 {
			err = payment.ErrNotFound("api key", id)
		}
		return wrap("revoke api key", err)
	})
}
