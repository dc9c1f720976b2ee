package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hutong-pay/hutong/internal/payment"
	"github.com/hutong-pay/hutong/internal/webhook"
)

var _ webhook.Store = (*Store)(nil)

const endpointColumns = `id, merchant_id, livemode, url, events, secret, previous_secret, previous_secret_expires_at,
	disabled_reason, disabled_at, created_at`

func scanEndpoint(row pgx.Row) (*webhook.Endpoint, error) {
	var e webhook.Endpoint
	var events []byte
	var prevExpires, disabledAt *time.Time
	err := row.Scan(&e.ID, &e.MerchantID, &e.Livemode, &e.URL, &events, &e.Secret, &e.PreviousSecret, &prevExpires,
		&e.DisabledReason, &disabledAt, &e.CreatedAt)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(events, &e.Events); err != nil {
		return nil, fmt.Errorf("webhook endpoint %s events: %w", e.ID, err)
	}
	if len(e.Events) == 0 {
		e.Events = nil // every event type
	}
	e.PreviousSecretExpiresAt, e.Disabled, e.CreatedAt = fromNullTime(prevExpires), disabledAt != nil, e.CreatedAt.UTC()
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
		disabledAt = e.CreatedAt
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO webhook_endpoints (`+endpointColumns+`) VALUES (`+placeholders(1, 11)+`)`,
		e.ID, e.MerchantID, e.Livemode, e.URL, ev, e.Secret, e.PreviousSecret, nullTime(e.PreviousSecretExpiresAt),
		e.DisabledReason, disabledAt, e.CreatedAt)
	return wrap("create webhook endpoint", err)
}

// Endpoint returns endpoint id of merchantID, or of anyone when merchantID is "".
func (s *Store) Endpoint(ctx context.Context, merchantID, id string) (*webhook.Endpoint, error) {
	e, err := scanEndpoint(s.pool.QueryRow(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && merchantID != "" && e.MerchantID != merchantID) {
		return nil, wrap("webhook endpoint", payment.ErrNotFound("webhook endpoint", id))
	}
	if err != nil {
		return nil, wrap("webhook endpoint", err)
	}
	return e, nil
}

// ListEndpoints returns a merchant's endpoints, oldest first, disabled ones included.
func (s *Store) ListEndpoints(ctx context.Context, merchantID string) ([]*webhook.Endpoint, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE merchant_id = $1 ORDER BY created_at, id`, merchantID)
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
	tag, err := s.pool.Exec(ctx, `DELETE FROM webhook_endpoints WHERE id = $1 AND merchant_id = $2`, id, merchantID)
	if err == nil && tag.RowsAffected() == 0 {
		err = payment.ErrNotFound("webhook endpoint", id)
	}
	return wrap("delete webhook endpoint", err)
}

// RotateSecret makes secret the endpoint's current secret and the former one its previous
// secret until previousExpiresAt, in one statement: two rotations at once cannot lose a secret
// that a receiver may still verify with.
func (s *Store) RotateSecret(ctx context.Context, merchantID, id, secret string, previousExpiresAt time.Time) (*webhook.Endpoint, error) {
	e, err := scanEndpoint(s.pool.QueryRow(ctx, `UPDATE webhook_endpoints SET previous_secret = secret, secret = $1,
		previous_secret_expires_at = $2 WHERE id = $3 AND merchant_id = $4 RETURNING `+endpointColumns,
		secret, norm(previousExpiresAt), id, merchantID))
	if errors.Is(err, pgx.ErrNoRows) {
		err = payment.ErrNotFound("webhook endpoint", id)
	}
	if err != nil {
		return nil, wrap("rotate webhook secret", err)
	}
	return e, nil
}

// DisableEndpoint stops deliveries to endpoint id; an endpoint already disabled keeps its first
// reason and time.
func (s *Store) DisableEndpoint(ctx context.Context, id, reason string, at time.Time) error {
	var found bool
	err := s.pool.QueryRow(ctx, `WITH upd AS (
			UPDATE webhook_endpoints SET disabled_reason = $2, disabled_at = $3 WHERE id = $1 AND disabled_at IS NULL RETURNING id)
		SELECT EXISTS (SELECT 1 FROM webhook_endpoints WHERE id = $1)`, id, reason, norm(at)).Scan(&found)
	if err == nil && !found {
		err = payment.ErrNotFound("webhook endpoint", id)
	}
	return wrap("disable webhook endpoint", err)
}

// Event returns event id of merchantID, or of anyone when merchantID is "".
func (s *Store) Event(ctx context.Context, merchantID, id string) (*payment.Event, error) {
	e, err := scanEvent(s.pool.QueryRow(ctx, `SELECT `+eventColumns+` FROM events WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && merchantID != "" && e.MerchantID != merchantID) {
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
	_, err := s.pool.Exec(ctx, `INSERT INTO webhook_attempts (`+attemptColumns+`) VALUES (`+placeholders(1, 10)+`)`,
		a.ID, a.EventID, a.EndpointID, a.MerchantID, a.Number, a.StatusCode, a.Error, a.Duration.Microseconds(), a.At, nullTime(a.NextAttemptAt))
	return wrap("record webhook attempt", err)
}

// ListAttempts returns an event's delivery attempts to every endpoint, oldest first.
func (s *Store) ListAttempts(ctx context.Context, eventID string) ([]*webhook.Attempt, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+attemptColumns+` FROM webhook_attempts WHERE event_id = $1 ORDER BY at, number, id`, eventID)
	if err != nil {
		return nil, wrap("list webhook attempts", err)
	}
	defer rows.Close()
	list := []*webhook.Attempt{}
	for rows.Next() {
		var a webhook.Attempt
		var dur int64
		var next *time.Time
		if err := rows.Scan(&a.ID, &a.EventID, &a.EndpointID, &a.MerchantID, &a.Number, &a.StatusCode, &a.Error, &dur, &a.At, &next); err != nil {
			return nil, wrap("list webhook attempts", err)
		}
		a.Duration, a.At, a.NextAttemptAt = time.Duration(dur)*time.Microsecond, a.At.UTC(), fromNullTime(next)
		list = append(list, &a)
	}
	return list, wrap("list webhook attempts", rows.Err())
}
