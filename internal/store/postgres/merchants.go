package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hutong-pay/hutong/internal/payment"
)

// CreateMerchant stores m.
func (s *Store) CreateMerchant(ctx context.Context, m *payment.Merchant) error {
	m.CreatedAt = norm(m.CreatedAt)
	_, err := s.pool.Exec(ctx, `INSERT INTO merchants (id, name, created_at) VALUES ($1, $2, $3)`, m.ID, m.Name, m.CreatedAt)
	return wrap("create merchant", err)
}

// Merchant returns merchant id.
func (s *Store) Merchant(ctx context.Context, id string) (*payment.Merchant, error) {
	var m payment.Merchant
	err := s.pool.QueryRow(ctx, `SELECT id, name, created_at FROM merchants WHERE id = $1`, id).Scan(&m.ID, &m.Name, &m.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, wrap("merchant", payment.ErrNotFound("merchant", id))
	}
	if err != nil {
		return nil, wrap("merchant", err)
	}
	m.CreatedAt = m.CreatedAt.UTC()
	return &m, nil
}

const apiKeyColumns = `id, merchant_id, livemode, prefix, hash, created_at, revoked_at`

// CreateAPIKey stores k; its hash must be unique.
func (s *Store) CreateAPIKey(ctx context.Context, k *payment.APIKey) error {
	k.CreatedAt, k.RevokedAt = norm(k.CreatedAt), normPtr(k.RevokedAt)
	_, err := s.pool.Exec(ctx, `INSERT INTO api_keys (`+apiKeyColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		k.ID, k.MerchantID, k.Livemode, k.Prefix, k.Hash, k.CreatedAt, nullTimePtr(k.RevokedAt))
	return wrap("create api key", err)
}

func scanAPIKey(row pgx.Row) (*payment.APIKey, error) {
	var k payment.APIKey
	var revoked *time.Time
	if err := row.Scan(&k.ID, &k.MerchantID, &k.Livemode, &k.Prefix, &k.Hash, &k.CreatedAt, &revoked); err != nil {
		return nil, err
	}
	k.CreatedAt, k.RevokedAt = k.CreatedAt.UTC(), fromNullTimePtr(revoked)
	return &k, nil
}

// APIKeyByHash returns the key whose secret hashes to hash, revoked or not.
func (s *Store) APIKeyByHash(ctx context.Context, hash []byte) (*payment.APIKey, error) {
	k, err := scanAPIKey(s.pool.QueryRow(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE hash = $1`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		// The hash is not an id worth echoing.
		return nil, wrap("api key by hash", payment.ErrNotFound("api key", "(by hash)"))
	}
	if err != nil {
		return nil, wrap("api key by hash", err)
	}
	return k, nil
}

// ListAPIKeys returns the merchant's keys, newest first.
func (s *Store) ListAPIKeys(ctx context.Context, merchantID string) ([]*payment.APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE merchant_id = $1 ORDER BY created_at DESC, id DESC`, merchantID)
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
	tag, err := s.pool.Exec(ctx, `UPDATE api_keys SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2`, norm(at), id)
	if err == nil && tag.RowsAffected() == 0 {
		err = payment.ErrNotFound("api key", id)
	}
	return wrap("revoke api key", err)
}
