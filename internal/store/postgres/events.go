package postgres

import (
	"context"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

// writeEffects writes the events of a change to merchantID's objects (the outbox) and enqueues
// its jobs, in the change's transaction. An event for another merchant is refused: it would leak.
func (s *Store) writeEffects(ctx context.Context, tx pgx.Tx, merchantID string, fx gateway.Effects) error {
	for _, e := range fx.Events {
		if e.ID == "" || e.Type == "" || e.MerchantID != merchantID {
			return payment.Errorf(payment.Internal, "event_invalid", "event %q of type %q for merchant %q cannot be written with a change to merchant %q's objects",
				e.ID, e.Type, e.MerchantID, merchantID)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO events (id, merchant_id, livemode, type, data, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			e.ID, e.MerchantID, e.Livemode, string(e.Type), string(e.Data), norm(e.CreatedAt)); err != nil {
			return err
		}
	}
	return s.jobs.InsertTx(ctx, tx, fx.Jobs)
}

const eventColumns = `id, merchant_id, livemode, type, data, created_at`

func scanEvent(row pgx.Row) (*payment.Event, error) {
	e := payment.Event{Object: "event"}
	var typ string
	var data []byte
	if err := row.Scan(&e.ID, &e.MerchantID, &e.Livemode, &typ, &data, &e.CreatedAt); err != nil {
		return nil, err
	}
	e.Type, e.Data, e.CreatedAt = payment.EventType(typ), data, e.CreatedAt.UTC()
	return &e, nil
}

// ListEvents returns the merchant's events newest first (by created_at, then id), after the
// event f.StartingAfter, which must be the merchant's.
func (s *Store) ListEvents(ctx context.Context, merchantID string, f gateway.EventFilter) ([]*payment.Event, error) {
	q := `SELECT ` + eventColumns + ` FROM events WHERE merchant_id = $1 AND livemode = $2`
	args := []any{merchantID, f.Livemode}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Type != "" {
		q += ` AND type = ` + arg(string(f.Type))
	}
	return listPage(ctx, s, "events", "event", q, args, merchantID, f.StartingAfter, f.Limit, scanEvent)
}
