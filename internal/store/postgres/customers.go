package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hutong-pay/hutong/internal/identity"
	"github.com/hutong-pay/hutong/internal/payment"
)

var _ identity.Store = (*Store)(nil)

// customerQuery reads a customer with its identities, oldest first, one row per identity (one
// row with NULL identity columns for a customer without any). One statement: one snapshot.
const customerQuery = `SELECT c.id, c.merchant_id, c.livemode, c.created_at,
	i.provider, i.app_id, i.openid, i.unionid, i.user_id, i.open_id, i.created_at
	FROM customers c LEFT JOIN customer_identities i ON i.customer_id = c.id `

const customerOrder = ` ORDER BY i.created_at, i.provider, i.app_id`

type customerQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// queryCustomer runs a customerQuery; no row is pgx.ErrNoRows.
func queryCustomer(ctx context.Context, q customerQuerier, where string, args ...any) (*identity.Customer, error) {
	rows, err := q.Query(ctx, customerQuery+where+customerOrder, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var c *identity.Customer
	for rows.Next() {
		var id, merchantID string
		var live bool
		var created time.Time
		var provider, appID, openID, unionID, userID, openIDAlipay *string
		var linked *time.Time
		if err := rows.Scan(&id, &merchantID, &live, &created, &provider, &appID, &openID, &unionID, &userID, &openIDAlipay, &linked); err != nil {
			return nil, err
		}
		if c == nil {
			c = &identity.Customer{ID: id, Object: "customer", MerchantID: merchantID, Livemode: live,
				Identities: []identity.Identity{}, CreatedAt: created.UTC()}
		}
		if provider != nil {
			c.Identities = append(c.Identities, identity.Identity{
				Provider: payment.Provider(*provider), AppID: *appID, OpenID: *openID, UnionID: *unionID,
				UserID: *userID, OpenIDAlipay: *openIDAlipay, CreatedAt: fromNullTime(linked),
			})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if c == nil {
		return nil, pgx.ErrNoRows
	}
	return c, nil
}

// CreateCustomer stores c and its identities in one transaction.
func (s *Store) CreateCustomer(ctx context.Context, c *identity.Customer) error {
	c.CreatedAt = norm(c.CreatedAt)
	for i := range c.Identities {
		c.Identities[i].CreatedAt = norm(c.Identities[i].CreatedAt)
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO customers (id, merchant_id, livemode, created_at) VALUES ($1, $2, $3, $4)`,
			c.ID, c.MerchantID, c.Livemode, c.CreatedAt)
		for i := 0; err == nil && i < len(c.Identities); i++ {
			err = insertIdentity(ctx, tx, c.MerchantID, c.Livemode, c.ID, c.Identities[i])
		}
		return wrap("create customer", err)
	})
}

func insertIdentity(ctx context.Context, tx pgx.Tx, merchantID string, livemode bool, customerID string, i identity.Identity) error {
	_, err := tx.Exec(ctx, `INSERT INTO customer_identities (merchant_id, livemode, provider, app_id, subject, customer_id,
		openid, unionid, user_id, open_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		merchantID, livemode, string(i.Provider), i.AppID, i.Subject(), customerID, i.OpenID, i.UnionID, i.UserID, i.OpenIDAlipay, i.CreatedAt)
	return err
}

// Customer returns customer id of merchantID.
func (s *Store) Customer(ctx context.Context, merchantID, id string) (*identity.Customer, error) {
	c, err := queryCustomer(ctx, s.pool, `WHERE c.id = $1 AND c.merchant_id = $2`, id, merchantID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, wrap("customer", payment.ErrNotFound("customer", id))
	}
	if err != nil {
		return nil, wrap("customer", err)
	}
	return c, nil
}

// CustomerByIdentity returns the customer holding the identity (provider, appID, subject).
func (s *Store) CustomerByIdentity(ctx context.Context, merchantID string, livemode bool, provider payment.Provider, appID, subject string) (*identity.Customer, error) {
	c, err := queryCustomer(ctx, s.pool, `WHERE c.id = (SELECT customer_id FROM customer_identities
		WHERE merchant_id = $1 AND livemode = $2 AND provider = $3 AND app_id = $4 AND subject = $5)`,
		merchantID, livemode, string(provider), appID, subject)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, wrap("customer by identity", payment.ErrNotFound("customer", "(by "+string(provider)+" identity)"))
	}
	if err != nil {
		return nil, wrap("customer by identity", err)
	}
	return c, nil
}

// AddIdentity links idn to customer customerID and returns the customer as it then stands. The
// customer row is locked so that its identities are read as this transaction leaves them.
func (s *Store) AddIdentity(ctx context.Context, merchantID string, livemode bool, customerID string, idn identity.Identity) (*identity.Customer, error) {
	idn.CreatedAt = norm(idn.CreatedAt)
	var c *identity.Customer
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var id string
		err := tx.QueryRow(ctx, `SELECT id FROM customers WHERE id = $1 AND merchant_id = $2 AND livemode = $3 FOR UPDATE`,
			customerID, merchantID, livemode).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			err = payment.ErrNotFound("customer", customerID)
		}
		if err == nil {
			err = insertIdentity(ctx, tx, merchantID, livemode, customerID, idn)
		}
		if err == nil {
			c, err = queryCustomer(ctx, tx, `WHERE c.id = $1`, customerID)
		}
		return wrap("add identity", err)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}
