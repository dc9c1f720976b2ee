package sqlite

import (
	"context"
	"database/sql"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

// writeEffects writes the events of a change to merchantID's objects (the outbox) and enqueues
// its jobs, in the change's transaction. An event for another merchant is refused: it would leak.
func (s *Store) writeEffects(ctx context.Context, tx *sql.Tx, merchantID string, fx gateway.Effects) error {
	if len(fx.Events) > 0 {
		st, err := s.stmt(ctx, tx, `INSERT INTO events (id, merchant_id, livemode, type, data, created_at) VALUES (?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		for _, e := range fx.Events {
			if e.ID == "" || e.Type == "" || e.MerchantID != merchantID {
				return payment.Errorf(payment.Internal, "event_invalid", "event %q of type %q for merchant %q cannot be written with a change to merchant %q's objects",
					e.ID, e.Type, e.MerchantID, merchantID)
			}
			if _, err := st.ExecContext(ctx, e.ID, e.MerchantID, e.Livemode, string(e.Type), string(e.Data), micros(norm(e.CreatedAt))); err != nil {
				return err
			}
		}
	}
	return s.jobs.InsertTx(ctx, tx, fx.Jobs)
}

const eventColumns = `id, merchant_id, livemode, type, data, created_at`

func scanEvent(sc interface{ Scan(...any) error }) (*payment.Event, error) {
	e := payment.Event{Object: "event"}
	var data []byte
	var created int64
	if err := sc.Scan(&e.ID, &e.MerchantID, &e.Livemode, &e.Type, &data, &created); err != nil {
		return nil, err
	}
	e.Data, e.CreatedAt = data, fromMicros(created)
	return &e, nil
}

// ListEvents returns the merchant's events newest first (by created_at, then id), after the
// event f.StartingAfter, which must be the merchant's.
func (s *Store) ListEvents(ctx context.Context, merchantID string, f gateway.EventFilter) ([]*payment.Event, error) {
	q := `SELECT ` + eventColumns + ` FROM events WHERE merchant_id = ? AND livemode = ?`
	args := []any{merchantID, f.Livemode}
	if f.Type != "" {
		q += ` AND type = ?`
		args = append(args, string(f.Type))
	}
	return listPage(ctx, s, "events", "event", q, args, merchantID, f.StartingAfter, f.Limit, scanEvent)
}
