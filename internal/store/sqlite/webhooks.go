package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hutong-pay/hutong/internal/payment"
	"github.com/hutong-pay/hutong/internal/webhook"
)

var _ webhook.Store = (*Store)(nil)

const endpointColumns = `id, merchant_id, livemode, url, events, secret, previous_secret, previous_secret_expires_at,
	disabled_reason, disabled_at, created_at`

func scanEndpoint(sc interface{ Scan(...any) error }) (*webhook.Endpoint, error) {
	var e webhook.Endpoint
	var events []byte
	var prevExpires, disabledAt sql.NullInt64
	var created int64
	err := sc.Scan(&e.ID, &e.MerchantID, &e.Livemode, &e.URL, &events, &e.Secret, &e.PreviousSecret, &prevExpires,
		&e.DisabledReason, &disabledAt, &created)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(events, &e.Events); err != nil {
		return nil, fmt.Errorf("webhook endpoint %s events: %w", e.ID, err)
	}
	if len(e.Events) == 0 {
		e.Events = nil // every event type
	}
	e.PreviousSecretExpiresAt, e.Disabled, e.CreatedAt = fromNullMicros(prevExpires), disabledAt.Valid, fromMicros(created)
	return &e, nil
}

// CreateEndpoint stores e. It leaves e as stored: times in UTC, to the microsecond.
func (s *Store) CreateEndpoint(ctx context.Context, e *webhook.Endpoint) error {
	e.CreatedAt, e.PreviousSecretExpiresAt = norm(e.CreatedAt), norm(e.PreviousSecretExpiresAt)
	events := e.Events
	if events == nil {
		events = []payment.EventType{}
	}
	ev, err := jsonText(events)
	if err != nil {
		return wrap("create webhook endpoint", err)
	}
	var disabledAt any
	if e.Disabled {
		disabledAt = micros(e.CreatedAt)
	}
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		st, err := s.stmt(ctx, tx, `INSERT INTO webhook_endpoints (`+endpointColumns+`) VALUES (`+placeholders(11)+`)`)
		if err == nil {
			_, err = st.ExecContext(ctx, e.ID, e.MerchantID, e.Livemode, e.URL, ev, e.Secret, e.PreviousSecret,
				nullMicros(e.PreviousSecretExpiresAt), e.DisabledReason, disabledAt, micros(e.CreatedAt))
		}
		return wrap("create webhook endpoint", err)
	})
}

// Endpoint returns endpoint id of merchantID, or of anyone when merchantID is "".
func (s *Store) Endpoint(ctx context.Context, merchantID, id string) (*webhook.Endpoint, error) {
	st, err := s.read(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE id = ?`)
	if err != nil {
		return nil, wrap("webhook endpoint", err)
	}
	e, err := scanEndpoint(st.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) || (err == nil && merchantID != "" && e.MerchantID != merchantID) {
		return nil, wrap("webhook endpoint", payment.ErrNotFound("webhook endpoint", id))
	}
	if err != nil {
		return nil, wrap("webhook endpoint", err)
	}
	return e, nil
}

// ListEndpoints returns a merchant's endpoints, oldest first, disabled ones included.
func (s *Store) ListEndpoints(ctx context.Context, merchantID string) ([]*webhook.Endpoint, error) {
	st, err := s.read(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE merchant_id = ? ORDER BY created_at, id`)
	if err != nil {
		return nil, wrap("list webhook endpoints", err)
	}
	rows, err := st.QueryContext(ctx, merchantID)
	if err != nil {
		return nil, wrap("list webhook endpoints", err)
	}
	defer rows.Close()
	list := []*webhook.Endpoint{}
	for rows.Next() {
		e, err := scanEndpoint(rows)
		if err != nil {
			return nil, wrap("list webhook endpoints", err)
		}
		list = append(list, e)
	}
	return list, wrap("list webhook endpoints", rows.Err())
}

// DeleteEndpoint deletes a merchant's endpoint; its delivery attempts stay.
func (s *Store) DeleteEndpoint(ctx context.Context, merchantID, id string) error {
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		st, err := s.stmt(ctx, tx, `DELETE FROM webhook_endpoints WHERE id = ? AND merchant_id = ?`)
		if err != nil {
			return wrap("delete webhook endpoint", err)
		}
		res, err := st.ExecContext(ctx, id, merchantID)
		if err != nil {
			return wrap("delete webhook endpoint", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return wrap("delete webhook endpoint", errors.Join(err, payment.ErrNotFound("webhook endpoint", id)))
		}
		return nil
	})
}

// RotateSecret makes secret the endpoint's current secret and the former one its previous
// secret until previousExpiresAt, in one statement: two rotations at once cannot lose a secret
// that a receiver may still verify with.
func (s *Store) RotateSecret(ctx context.Context, merchantID, id, secret string, previousExpiresAt time.Time) (*webhook.Endpoint, error) {
	var out *webhook.Endpoint
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		st, err := s.stmt(ctx, tx, `UPDATE webhook_endpoints SET previous_secret = secret, secret = ?, previous_secret_expires_at = ?
			WHERE id = ? AND merchant_id = ? RETURNING `+endpointColumns)
		if err != nil {
			return wrap("rotate webhook secret", err)
		}
		out, err = scanEndpoint(st.QueryRowContext(ctx, secret, micros(norm(previousExpiresAt)), id, merchantID))
		if errors.Is(err, sql.ErrNoRows) {
			err = payment.ErrNotFound("webhook endpoint", id)
		}
		return wrap("rotate webhook secret", err)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DisableEndpoint stops deliveries to endpoint id; an endpoint already disabled keeps its first
// reason and time.
func (s *Store) DisableEndpoint(ctx context.Context, id, reason string, at time.Time) error {
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		st, err := s.stmt(ctx, tx, `UPDATE webhook_endpoints SET disabled_reason = ?, disabled_at = ? WHERE id = ? AND disabled_at IS NULL`)
		if err != nil {
			return wrap("disable webhook endpoint", err)
		}
		res, err := st.ExecContext(ctx, reason, micros(norm(at)), id)
		if err != nil {
			return wrap("disable webhook endpoint", err)
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			return wrap("disable webhook endpoint", err)
		}
		var one int
		err = tx.QueryRowContext(ctx, `SELECT 1 FROM webhook_endpoints WHERE id = ?`, id).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			err = payment.ErrNotFound("webhook endpoint", id)
		}
		return wrap("disable webhook endpoint", err)
	})
}

// Event returns event id of merchantID, or of anyone when merchantID is "".
func (s *Store) Event(ctx context.Context, merchantID, id string) (*payment.Event, error) {
	st, err := s.read(ctx, `SELECT `+eventColumns+` FROM events WHERE id = ?`)
	if err != nil {
		return nil, wrap("event", err)
	}
	e, err := scanEvent(st.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) || (err == nil && merchantID != "" && e.MerchantID != merchantID) {
		return nil, wrap("event", payment.ErrNotFound("event", id))
	}
	if err != nil {
		return nil, wrap("event", err)
	}
	return e, nil
}

const attemptColumns = `id, event_id, endpoint_id, merchant_id, number, status_code, error, duration_us, at, next_attempt_at`

// RecordAttempt stores a delivery attempt. It leaves a as stored.
func (s *Store) RecordAttempt(ctx context.Context, a *webhook.Attempt) error {
	a.At, a.NextAttemptAt = norm(a.At), norm(a.NextAttemptAt)
	a.Duration = a.Duration.Truncate(time.Microsecond)
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		st, err := s.stmt(ctx, tx, `INSERT INTO webhook_attempts (`+attemptColumns+`) VALUES (`+placeholders(10)+`)`)
		if err == nil {
			_, err = st.ExecContext(ctx, a.ID, a.EventID, a.EndpointID, a.MerchantID, a.Number, a.StatusCode, a.Error,
				a.Duration.Microseconds(), micros(a.At), nullMicros(a.NextAttemptAt))
		}
		return wrap("record webhook attempt", err)
	})
}

// ListAttempts returns an event's delivery attempts to every endpoint, oldest first.
func (s *Store) ListAttempts(ctx context.Context, eventID string) ([]*webhook.Attempt, error) {
	st, err := s.read(ctx, `SELECT `+attemptColumns+` FROM webhook_attempts WHERE event_id = ? ORDER BY at, number, id`)
	if err != nil {
		return nil, wrap("list webhook attempts", err)
	}
	rows, err := st.QueryContext(ctx, eventID)
	if err != nil {
		return nil, wrap("list webhook attempts", err)
	}
	defer rows.Close()
	list := []*webhook.Attempt{}
	for rows.Next() {
		var a webhook.Attempt
		var dur, at int64
		var next sql.NullInt64
		if err := rows.Scan(&a.ID, &a.EventID, &a.EndpointID, &a.MerchantID, &a.Number, &a.StatusCode, &a.Error, &dur, &at, &next); err != nil {
			return nil, wrap("list webhook attempts", err)
		}
		a.Duration, a.At, a.NextAttemptAt = time.Duration(dur)*time.Microsecond, fromMicros(at), fromNullMicros(next)
		list = append(list, &a)
	}
	return list, wrap("list webhook attempts", rows.Err())
}
