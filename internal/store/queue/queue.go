// Package queue is what both stores share of River, the job queue that lives in their database:
// turning the gateway's jobs into River insertions, and River's own schema migrations.
package queue

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/store/migrate"
)

// Inserter is an insert-only River client: it enqueues jobs in a store's own transactions
// (InsertManyTx) and never works them. The node's working client is built apart, on the same
// database, and may be absent (tools such as `hutong migrate`).
type Inserter[TTx any] struct {
	client *river.Client[TTx]
}

// NewInserter returns an Inserter on driver.
func NewInserter[TTx any](driver riverdriver.Driver[TTx]) (*Inserter[TTx], error) {
	c, err := river.NewClient(driver, &river.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	return &Inserter[TTx]{client: c}, nil
}

// InsertTx enqueues jobs in tx. It must run with tx only: on SQLite the pool has one
// connection, which tx holds.
func (in *Inserter[TTx]) InsertTx(ctx context.Context, tx TTx, jobs []gateway.Job) error {
	if len(jobs) == 0 {
		return nil
	}
	if _, err := in.client.InsertManyTx(ctx, tx, Params(jobs)); err != nil {
		return fmt.Errorf("queue: insert %d jobs: %w", len(jobs), err)
	}
	return nil
}

// Params turns jobs into River's insert parameters. The arguments' own InsertOpts (queue,
// uniqueness, attempts) still apply: River merges them with these.
func Params(jobs []gateway.Job) []river.InsertManyParams {
	out := make([]river.InsertManyParams, len(jobs))
	for i, j := range jobs {
		out[i] = river.InsertManyParams{Args: j.Args}
		if !j.ScheduledAt.IsZero() {
			out[i].InsertOpts = &river.InsertOpts{ScheduledAt: j.ScheduledAt}
		}
	}
	return out
}

// Migrator returns River's migrator for driver.
func Migrator[TTx any](driver riverdriver.Driver[TTx]) (*rivermigrate.Migrator[TTx], error) {
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("queue: migrator: %w", err)
	}
	return m, nil
}

// Check returns nil when River's schema is at this binary's version, and otherwise an error
// matching migrate.ErrSchemaBehind or migrate.ErrSchemaAhead.
func Check[TTx any](ctx context.Context, m *rivermigrate.Migrator[TTx]) error {
	have, err := m.ExistingVersions(ctx)
	if err != nil {
		return fmt.Errorf("queue: schema version: %w", err)
	}
	return compare(have, m.AllVersions())
}

func compare(have, want []rivermigrate.Migration) error {
	cur, latest := 0, 0
	if len(have) > 0 {
		cur = have[len(have)-1].Version
	}
	if len(want) > 0 {
		latest = want[len(want)-1].Version
	}
	switch {
	case cur < latest:
		return fmt.Errorf("%w: the job queue's schema is at version %d, this binary needs version %d; run `hutong migrate` first",
			migrate.ErrSchemaBehind, cur, latest)
	case cur > latest:
		return fmt.Errorf("%w: the job queue's schema is at version %d, this binary knows versions up to %d; run a newer binary",
			migrate.ErrSchemaAhead, cur, latest)
	}
	return nil
}
