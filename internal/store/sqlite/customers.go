package sqlite

import (
	"context"
	"database/sql"
	"errors"

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

func scanCustomer(rows *sql.Rows) (*identity.Customer, error) {
	var c *identity.Customer
	for rows.Next() {
		var id, merchantID string
		var live bool
		var created int64
		var provider, appID, openID, unionID, userID, openIDAlipay sql.NullString
		var linked sql.NullInt64
		if err := rows.Scan(&id, &merchantID, &live, &created, &provider, &appID, &openID, &unionID, &userID, &openIDAlipay, &linked); err != nil {
			return nil, err
		}
		if c == nil {
			c = &identity.Customer{ID: id, Object: "customer", MerchantID: merchantID, Livemode: live,
				Identities: []identity.Identity{}, CreatedAt: fromMicros(created)}
		}
		if provider.Valid {
			c.Identities = append(c.Identities, identity.Identity{
				Provider: payment.Provider(provider.String), AppID: appID.String, OpenID: openID.String, UnionID: unionID.String,
				UserID: userID.String, OpenIDAlipay: openIDAlipay.String, CreatedAt: fromMicros(linked.Int64),
			})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if c == nil {
		return nil, sql.ErrNoRows
	}
	return c, nil
}

// CreateCustomer stores c and its identities in one transaction.
func (s *Store) CreateCustomer(ctx context.Context, c *identity.Customer) error {
	c.CreatedAt = norm(c.CreatedAt)
	for i := range c.Identities {
		c.Identities[i].CreatedAt = norm(c.Identities[i].CreatedAt)
	}
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		st, err := s.stmt(ctx, tx, `INSERT INTO customers (id, merchant_id, livemode, created_at) VALUES (?, ?, ?, ?)`)
		if err == nil {
			_, err = st.ExecContext(ctx, c.ID, c.MerchantID, c.Livemode, micros(c.CreatedAt))
		}
		for i := 0; err == nil && i < len(c.Identities); i++ {
			err = s.insertIdentity(ctx, tx, c.MerchantID, c.Livemode, c.ID, c.Identities[i])
		}
		return wrap("create customer", err)
	})
}

func (s *Store) insertIdentity(ctx context.Context, tx *sql.Tx, merchantID string, livemode bool, customerID string, i identity.Identity) error {
	st, err := s.stmt(ctx, tx, `INSERT INTO customer_identities (merchant_id, livemode, provider, app_id, subject, customer_id,
		openid, unionid, user_id, open_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	_, err = st.ExecContext(ctx, merchantID, livemode, string(i.Provider), i.AppID, i.Subject(), customerID,
		i.OpenID, i.UnionID, i.UserID, i.OpenIDAlipay, micros(i.CreatedAt))
	return err
}

// Customer returns customer id of merchantID.
func (s *Store) Customer(ctx context.Context, merchantID, id string) (*identity.Customer, error) {
	st, err := s.read(ctx, customerQuery+`WHERE c.id = ? AND c.merchant_id = ?`+customerOrder)
	if err != nil {
		return nil, wrap("customer", err)
	}
	c, err := queryCustomer(ctx, st, id, merchantID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, wrap("customer", payment.ErrNotFound("customer", id))
	}
	return c, wrap("customer", err)
}

func queryCustomer(ctx context.Context, st *sql.Stmt, args ...any) (*identity.Customer, error) {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return scanCustomer(rows)
}

// CustomerByIdentity returns the customer holding the identity (provider, appID, subject).
func (s *Store) CustomerByIdentity(ctx context.Context, merchantID string, livemode bool, provider payment.Provider, appID, subject string) (*identity.Customer, error) {
	st, err := s.read(ctx, customerQuery+`WHERE c.id = (SELECT customer_id FROM customer_identities
		WHERE merchant_id = ? AND livemode = ? AND provider = ? AND app_id = ? AND subject = ?)`+customerOrder)
	if err != nil {
		return nil, wrap("customer by identity", err)
	}
	c, err := queryCustomer(ctx, st, merchantID, livemode, string(provider), appID, subject)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, wrap("customer by identity", payment.ErrNotFound("customer", "(by "+string(provider)+" identity)"))
	}
	return c, wrap("customer by identity", err)
}

// AddIdentity links idn to customer customerID and returns the customer as it then stands.
func (s *Store) AddIdentity(ctx context.Context, merchantID string, livemode bool, customerID string, idn identity.Identity) (*identity.Customer, error) {
	idn.CreatedAt = norm(idn.CreatedAt)
	var c *identity.Customer
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var found int
		err := tx.QueryRowContext(ctx, `SELECT count(*) FROM customers WHERE id = ? AND merchant_id = ? AND livemode = ?`,
			customerID, merchantID, livemode).Scan(&found)
		if err == nil && found == 0 {
			err = payment.ErrNotFound("customer", customerID)
		}
		if err == nil {
			err = s.insertIdentity(ctx, tx, merchantID, livemode, customerID, idn)
		}
		if err == nil {
			var rows *sql.Rows
			rows, err = tx.QueryContext(ctx, customerQuery+`WHERE c.id = ?`+customerOrder, customerID)
			if err == nil {
				c, err = scanCustomer(rows)
				rows.Close()
			}
		}
		return wrap("add identity", err)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}
