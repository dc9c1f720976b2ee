// Package postgres is Hutong's gateway.Store on PostgreSQL (pgx/v5), for running any number of
// stateless gateway nodes on one database.
//
// Every change is one transaction at READ COMMITTED; the methods that read, call back and
// write (UpdatePayment, CreateRefund, UpdateRefund) first lock the payment row with
// SELECT … FOR UPDATE, so concurrent changes to one payment wait for each other and each sees
// the previous one's write. The payment is always locked before its refund, so two such
// transactions never wait for each other in a circle.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
	"github.com/hutong-pay/hutong/internal/store/migrate"
	"github.com/hutong-pay/hutong/internal/store/queue"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Options tune Open.
type Options struct {
	// Migrate applies pending migrations at Open. Without it Open refuses a database whose
	// schema is behind this binary's (`hutong migrate` applies them; `hutong serve` refuses).
	Migrate bool
}

// Store is a gateway.Store on a PostgreSQL database. The tables live in the connection's
// search_path (the URL may set it, e.g. ?search_path=hutong).
type Store struct {
	pool       *pgxpool.Pool
	migrations []migrate.Migration
	// River, the job queue, keeps its tables in the same schema; jobs are inserted in the
	// store's transactions.
	jobs          *queue.Inserter[pgx.Tx]
	riverMigrator *rivermigrate.Migrator[pgx.Tx]
}

var _ gateway.Store = (*Store)(nil)

// Open connects to the database at url (postgres://… or key=value form; pool settings such
// as pool_max_conns are read from it). Unless opts.Migrate is set it fails, with an error
// matching migrate.ErrSchemaBehind, when migrations are pending.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	ms, err := migrate.Load(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The URL may hold a password: do not echo it.
		return nil, errors.New("postgres: cannot parse the database URL")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	s := &Store{pool: pool, migrations: ms}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect to %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	driver := riverpgxv5.New(pool)
	if s.jobs, err = queue.NewInserter(driver); err == nil {
		s.riverMigrator, err = queue.Migrator(driver)
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if opts.Migrate {
		err = s.Migrate(ctx)
	} else {
		var cur int
		if cur, _, err = s.SchemaVersion(ctx); err == nil {
			err = migrate.Check(ms, cur)
		}
		if err == nil {
			err = queue.Check(ctx, s.riverMigrator)
		}
		if err != nil {
			err = fmt.Errorf("postgres: %w", err)
		}
	}
	if err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Pool returns the connection pool for components that keep their own tables in the same
// database, such as a job queue.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func schemaVersion(ctx context.Context, q queryRower) (int, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var v *int
	err := q.QueryRow(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v)
	if v == nil {
		return 0, err
	}
	return *v, err
}

// SchemaVersion returns the database's migration version and the newest this binary has.
func (s *Store) SchemaVersion(ctx context.Context) (current, latest int, err error) {
	current, err = schemaVersion(ctx, s.pool)
	if err != nil {
		return 0, 0, fmt.Errorf("postgres: schema version: %w", err)
	}
	return current, len(s.migrations), nil
}

// Migrate applies the pending migrations, each in its own transaction with its
// schema_migrations row. Nodes migrating at once take turns on an advisory lock (one per
// schema) and re-read the version under it, so each file runs exactly once.
func (s *Store) Migrate(ctx context.Context) error {
	for {
		applied := false
		err := s.tx(ctx, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('hutong migrate ' || current_schema(), 0))`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
				version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
				return err
			}
			cur, err := schemaVersion(ctx, tx)
			if err != nil {
				return err
			}
			if cur > len(s.migrations) {
				return migrate.Check(s.migrations, cur)
			}
			pending := migrate.Pending(s.migrations, cur)
			if len(pending) == 0 {
				return nil
			}
			m := pending[0]
			// No arguments: pgx sends it with the simple protocol, which runs many statements.
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("%s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
				return fmt.Errorf("%s: %w", m.Name, err)
			}
			applied = true
			return nil
		})
		if err != nil {
			return fmt.Errorf("postgres: migrate: %w", err)
		}
		if !applied {
			break
		}
	}
	return s.migrateQueue(ctx)
}

// migrateQueue applies River's migrations. River runs each in its own transaction on the pool;
// nodes starting at once take turns on a session advisory lock held on one more connection.
func (s *Store) migrateQueue(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate the job queue: %w", err)
	}
	defer conn.Release()
	const lock = `hashtextextended('hutong migrate river ' || current_schema(), 0)`
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(`+lock+`)`); err != nil {
		return fmt.Errorf("postgres: migrate the job queue: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(`+lock+`)`) //nolint:errcheck // the session ends with the connection anyway
	if _, err := s.riverMigrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("postgres: migrate the job queue: %w", err)
	}
	return nil
}

// tx runs fn in a transaction, committing when it returns nil. fn's error is returned
// unchanged after the rollback.
func (s *Store) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // after Commit, a no-op
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit: %w", dbError(err))
	}
	return nil
}

// dbError gives constraint violations their domain kind; other errors pass unchanged.
func dbError(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	switch pe.Code {
	case "23505": // unique_violation
		return &payment.Error{Kind: payment.Conflict, Code: "duplicate", Message: "an object with this identifier already exists", Err: err}
	case "23514": // check_violation
		return &payment.Error{Kind: payment.Conflict, Code: "constraint_violation", Message: "the change would break an invariant of the stored object", Err: err}
	case "23503": // foreign_key_violation
		return &payment.Error{Kind: payment.NotFound, Code: "resource_missing", Message: "a referenced object does not exist", Err: err}
	case "22021", "22P05": // a NUL character, which PostgreSQL text and jsonb cannot hold
		return &payment.Error{Kind: payment.Invalid, Code: "parameter_invalid", Message: "text cannot contain NUL characters", Err: err}
	}
	return err
}

// wrap names the operation and classifies database errors.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("postgres: %s: %w", op, dbError(err))
}

// maxPage bounds a list query, well above what the API asks (its limit of 100, plus one to
// learn whether more follow): a guard against a runaway caller, not the API's page size.
const maxPage = 1000

// pageLimit applies the default and the ceiling of list sizes.
func pageLimit(n int) int {
	switch {
	case n <= 0:
		return 10
	case n > maxPage:
		return maxPage
	}
	return n
}

// Times are written in UTC to the microsecond (timestamptz's precision) and read back in UTC.

func norm(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

func normPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := norm(*t)
	return &v
}

// nullTime is NULL for the zero time.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

func nullTimePtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return nullTime(*t)
}

func fromNullTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func fromNullTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := t.UTC()
	return &v
}
