package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/hutong-pay/hutong/internal/gateway"
)

// RecordRejected keeps a rejected wallet notification for operators.
func (s *Store) RecordRejected(ctx context.Context, n *gateway.RejectedNotification) error {
	n.At = norm(n.At)
	fields := n.Fields
	if fields == nil {
		fields = map[string]string{}
	}
	fj, err := jsonText(fields)
	if err != nil {
		return wrap("record rejected notification", err)
	}
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		st, err := s.stmt(ctx, tx, `INSERT INTO rejected_notifications (provider, kind, reason, fields, at) VALUES (?, ?, ?, ?, ?)`)
		if err == nil {
			_, err = st.ExecContext(ctx, string(n.Provider), n.Kind, n.Reason, fj, micros(n.At))
		}
		return wrap("record rejected notification", err)
	})
}

// ListRejected returns up to limit rejected notifications, newest first.
func (s *Store) ListRejected(ctx context.Context, limit int) ([]*gateway.RejectedNotification, error) {
	st, err := s.read(ctx, `SELECT provider, kind, reason, fields, at FROM rejected_notifications ORDER BY seq DESC LIMIT ?`)
	if err != nil {
		return nil, wrap("list rejected notifications", err)
	}
	rows, err := st.QueryContext(ctx, pageLimit(limit))
	if err != nil {
		return nil, wrap("list rejected notifications", err)
	}
	defer rows.Close()
	list := []*gateway.RejectedNotification{}
	for rows.Next() {
		var n gateway.RejectedNotification
		var fields []byte
		var at int64
		if err := rows.Scan(&n.Provider, &n.Kind, &n.Reason, &fields, &at); err != nil {
			return nil, wrap("list rejected notifications", err)
		}
		if err := fromJSON(fields, &n.Fields); err != nil {
			return nil, wrap("list rejected notifications", fmt.Errorf("fields: %w", err))
		}
		n.At = fromMicros(at)
		list = append(list, &n)
	}
	return list, wrap("list rejected notifications", rows.Err())
}

// PurgeRejected deletes the rejected notifications recorded before t and returns how many.
func (s *Store) PurgeRejected(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM rejected_notifications WHERE at < ?`, micros(norm(before)))
		if err == nil {
			n, err = res.RowsAffected()
		}
		return wrap("purge rejected notifications", err)
	})
	return n, err
}
