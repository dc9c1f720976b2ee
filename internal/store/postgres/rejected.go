package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

// RecordRejected keeps a rejected wallet notification for operators.
func (s *Store) RecordRejected(ctx context.Context, n *gateway.RejectedNotification) error {
	n.At = norm(n.At)
	fields := n.Fields
	if fields == nil {
		fields = map[string]string{}
	}
	fj, err := jsonText(fields)
	if err == nil {
		_, err = s.pool.Exec(ctx, `INSERT INTO rejected_notifications (provider, kind, reason, fields, at) VALUES ($1, $2, $3, $4, $5)`,
			string(n.Provider), n.Kind, n.Reason, fj, n.At)
	}
	return wrap("record rejected notification", err)
}

// ListRejected returns up to limit rejected notifications, newest first.
func (s *Store) ListRejected(ctx context.Context, limit int) ([]*gateway.RejectedNotification, error) {
	rows, err := s.pool.Query(ctx, `SELECT provider, kind, reason, fields, at FROM rejected_notifications ORDER BY seq DESC LIMIT $1`, pageLimit(limit))
	if err != nil {
		return nil, wrap("list rejected notifications", err)
	}
	defer rows.Close()
	list := []*gateway.RejectedNotification{}
	for rows.Next() {
		var n gateway.RejectedNotification
		var provider string
		var fields []byte
		if err := rows.Scan(&provider, &n.Kind, &n.Reason, &fields, &n.At); err != nil {
			return nil, wrap("list rejected notifications", err)
		}
		if err := fromJSON(fields, &n.Fields); err != nil {
			return nil, wrap("list rejected notifications", fmt.Errorf("fields: %w", err))
		}
		n.Provider, n.At = payment.Provider(provider), n.At.UTC()
		list = append(list, &n)
	}
	return list, wrap("list rejected notifications", rows.Err())
}

// PurgeRejected deletes the rejected notifications recorded before t and returns how many.
func (s *Store) PurgeRejected(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM rejected_notifications WHERE at < $1`, norm(before))
	if err != nil {
		return 0, wrap("purge rejected notifications", err)
	}
	return tag.RowsAffected(), nil
}
