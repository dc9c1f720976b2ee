package alipay

import (
	"context"
	"crypto/rsa"
	"database/sql"
	"errors"
	"fmt"
)

// app is the one sandbox merchant application and Alipay's own key pair for it.
type app struct {
	id              string
	sellerID        string // the merchant's PID, 2088…
	appPrivatePEM   string
	appPublic       *rsa.PublicKey // verifies the merchant's requests
	alipayKey       *rsa.PrivateKey
	alipayPublicPEM string
	billSecret      []byte // authenticates bill download links
	defaultBuyer    string // the payer when a payer action names none
}

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Sandbox) loadOrCreateApp(ctx context.Context) (*app, error) {
	a, err := s.loadApp(ctx)
	if err == nil || !errors.Is(err, sql.ErrNoRows) {
		return a, err
	}
	// First run: keys are generated outside the transaction (they take a while), and the insert
	// re-checks so two sandboxes starting together over one new database agree on a single app.
	appKey, err := generateKey()
	if err != nil {
		return nil, fmt.Errorf("alipay sandbox: generate app key: %w", err)
	}
	aliKey, err := generateKey()
	if err != nil {
		return nil, fmt.Errorf("alipay sandbox: generate alipay key: %w", err)
	}
	appPEM, err := privateKeyPEM(appKey)
	if err != nil {
		return nil, err
	}
	aliPEM, err := privateKeyPEM(aliKey)
	if err != nil {
		return nil, err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("alipay sandbox: create app: %w", err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM ali_apps`).Scan(&n); err != nil {
		return nil, fmt.Errorf("alipay sandbox: create app: %w", err)
	}
	if n == 0 {
		now := s.now().UnixMilli()
		buyer, err := ensureUser(ctx, tx, newUserID(), now)
		if err != nil {
			return nil, err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO ali_apps (app_id, seller_id, app_private_key, alipay_private_key, bill_secret, default_buyer_id, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			"2021"+randomDigits(12), newUserID(), appPEM, aliPEM, randomToken(32), buyer.id, now)
		if err != nil {
			return nil, fmt.Errorf("alipay sandbox: create app: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("alipay sandbox: create app: %w", err)
	}
	return s.loadApp(ctx)
}

func (s *Sandbox) loadApp(ctx context.Context) (*app, error) {
	var a app
	var aliPEM, secret string
	err := s.db.QueryRowContext(ctx, `SELECT app_id, seller_id, app_private_key, alipay_private_key, bill_secret, default_buyer_id
		FROM ali_apps ORDER BY created_at LIMIT 1`).Scan(&a.id, &a.sellerID, &a.appPrivatePEM, &aliPEM, &secret, &a.defaultBuyer)
	if err != nil {
		return nil, fmt.Errorf("alipay sandbox: load app: %w", err)
	}
	appKey, err := parsePrivateKeyPEM(a.appPrivatePEM)
	if err != nil {
		return nil, fmt.Errorf("alipay sandbox: load app key: %w", err)
	}
	a.appPublic = &appKey.PublicKey
	if a.alipayKey, err = parsePrivateKeyPEM(aliPEM); err != nil {
		return nil, fmt.Errorf("alipay sandbox: load alipay key: %w", err)
	}
	if a.alipayPublicPEM, err = publicKeyPEM(&a.alipayKey.PublicKey); err != nil {
		return nil, err
	}
	a.billSecret = []byte(secret)
	return &a, nil
}
