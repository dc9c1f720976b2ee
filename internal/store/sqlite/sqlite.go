// Package sqlite is Hutong's embedded gateway.Store: one SQLite file (modernc.org/sqlite, pure Go)
// in the data folder.
//
// SQLite lets one connection write at a time. The store therefore keeps two pools on the same
// file: a read pool for queries, which WAL mode lets run beside the writer, and a single write
// connection owned by one goroutine. Concurrent writes queue for that goroutine, which runs
// the writes that arrived together in one transaction (each in its own savepoint, so that one
// write's failure does not touch the others) and commits them at once: with
// synchronous=FULL one fsync then acknowledges many payments (group commit).
//
// The write transaction is the row lock: UpdatePayment and CreateRefund read, call back and
// write while no other write can run (BEGIN IMMEDIATE, so even another process cannot slip in).
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
	"github.com/hutong-pay/hutong/internal/store/migrate"
	"github.com/hutong-pay/hutong/internal/store/queue"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Options tune Open. The zero value is the safe default.
type Options struct {
	// Synchronous is "FULL" (the default) or "NORMAL".
	//
	// FULL syncs the write-ahead log to disk at every commit: a payment acknowledged to a
	// merchant survives a power loss or kernel crash. NORMAL syncs only at checkpoints: commits
	// are cheaper and the database is never corrupted, but the last commits before a power
	// loss (not a mere process crash) may be lost. Group commit makes FULL cheap under load,
	// so choose NORMAL only for throwaway data (demos, tests).
	Synchronous string
	// Migrate applies pending migrations at Open. Without it Open refuses a database whose
	// schema is behind this binary's (`hutong migrate` applies them; `hutong serve` refuses).
	Migrate bool
	// ReadConns is the size of the read pool; 0 means max(4, 2×GOMAXPROCS).
	ReadConns int
	// BusyTimeout bounds the wait for another process's lock on the file; 0 means 10s.
	BusyTimeout time.Duration
	// MaxBatch caps the writes committed together; 0 means 128, 1 turns group commit off.
	MaxBatch int
}

// Store is a gateway.Store on one SQLite file.
type Store struct {
	path       string
	wdb        *sql.DB // exactly one connection, used by the writer goroutine only
	rdb        *sql.DB
	migrations []migrate.Migration
	maxBatch   int
	// River, the job queue, keeps its tables in the same file and works through the write
	// connection: jobs are inserted in the writer's transactions.
	jobs          *queue.Inserter[*sql.Tx]
	riverMigrator *rivermigrate.Migrator[*sql.Tx]

	ops       chan *writeOp
	closing   chan struct{}
	closeOnce sync.Once
	done      chan struct{}
	// Write statements prepared on the write connection, and those still to prepare; only
	// the writer goroutine uses them.
	stmts      map[string]*sql.Stmt
	unprepared map[string]bool
	reads      sync.Map // query → *sql.Stmt prepared on the read pool
	commits    atomic.Int64
}

var _ gateway.Store = (*Store)(nil)

// Open opens (creating if needed) the database file at path. Unless opts.Migrate is set it
// fails, with an error matching migrate.ErrSchemaBehind, when migrations are pending.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	ms, err := migrate.Load(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	sync := strings.ToUpper(opts.Synchronous)
	switch sync {
	case "":
		sync = "FULL"
	case "FULL", "NORMAL":
	default:
		return nil, fmt.Errorf("sqlite: synchronous %q: want FULL or NORMAL", opts.Synchronous)
	}
	busy := opts.BusyTimeout
	if busy <= 0 {
		busy = 10 * time.Second
	}
	readConns := opts.ReadConns
	if readConns <= 0 {
		readConns = max(4, 2*runtime.GOMAXPROCS(0))
	}
	s := &Store{
		path:       path,
		migrations: ms,
		maxBatch:   opts.MaxBatch,
		ops:        make(chan *writeOp),
		closing:    make(chan struct{}),
		done:       make(chan struct{}),
		stmts:      map[string]*sql.Stmt{},
		unprepared: map[string]bool{},
	}
	if s.maxBatch <= 0 {
		s.maxBatch = 128
	}

	// Payments are private: the file (and SQLite's -wal and -shm, which copy its mode) is the
	// owner's alone. The data folder is created if needed.
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	f.Close()

	q := url.Values{}
	q.Set("_busy_timeout", strconv.FormatInt(busy.Milliseconds(), 10))
	q.Set("_foreign_keys", "1")
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", sync)
	// BEGIN IMMEDIATE takes the write lock at the start, so that a transaction that read a
	// row never fails to upgrade to writing it: SQLite's form of SELECT … FOR UPDATE.
	q.Set("_txlock", "immediate")
	s.wdb, err = sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetMaxIdleConns(1)
	s.wdb.SetConnMaxLifetime(0)
	s.wdb.SetConnMaxIdleTime(0)
	// The first connection turns WAL on; do it before readers exist.
	if err := s.wdb.PingContext(ctx); err != nil {
		s.wdb.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}

	rq := url.Values{}
	rq.Set("_busy_timeout", strconv.FormatInt(busy.Milliseconds(), 10))
	rq.Set("_query_only", "1")
	s.rdb, err = sql.Open("sqlite", "file:"+path+"?"+rq.Encode())
	if err != nil {
		s.wdb.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	s.rdb.SetMaxOpenConns(readConns)
	s.rdb.SetMaxIdleConns(readConns)
	s.rdb.SetConnMaxIdleTime(0)

	driver := riversqlite.New(s.wdb)
	if s.jobs, err = queue.NewInserter(driver); err == nil {
		s.riverMigrator, err = queue.Migrator(driver)
	}
	if err != nil {
		s.rdb.Close()
		s.wdb.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}

	go s.writeLoop()

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
			err = fmt.Errorf("sqlite: %s: %w", path, err)
		}
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close stops the writer and closes the file. Writes queued behind it fail.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	<-s.done
	for _, st := range s.stmts {
		st.Close()
	}
	s.reads.Range(func(_, st any) bool {
		st.(*sql.Stmt).Close()
		return true
	})
	return errors.Join(s.rdb.Close(), s.wdb.Close())
}

// DB returns the write handle (one connection) for components that keep their own tables in
// the same file: the node's River client works its jobs through it. Keep its transactions
// short, as every write waits for them, and never call the store's methods while holding one:
// the store's writer would wait for the connection forever.
func (s *Store) DB() *sql.DB { return s.wdb }

// SchemaVersion returns the database's migration version and the newest this binary has.
func (s *Store) SchemaVersion(ctx context.Context) (current, latest int, err error) {
	current, err = schemaVersion(ctx, s.rdb)
	if err != nil {
		return 0, 0, fmt.Errorf("sqlite: schema version: %w", err)
	}
	return current, len(s.migrations), nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func schemaVersion(ctx context.Context, q querier) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&n)
	if err != nil || n == 0 {
		return 0, err
	}
	var v sql.NullInt64
	err = q.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v)
	return int(v.Int64), err
}

// Migrate applies the pending migrations, each in its own transaction with its
// schema_migrations row. Running it again, or from two processes at once, is harmless: the
// version is read again under the write lock.
func (s *Store) Migrate(ctx context.Context) error {
	for {
		applied := false
		err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
				version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`); err != nil {
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
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return fmt.Errorf("%s: %w", m.Name, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.Version, m.Name, time.Now().UnixMicro()); err != nil {
				return fmt.Errorf("%s: %w", m.Name, err)
			}
			applied = true
			return nil
		})
		if err != nil {
			return fmt.Errorf("sqlite: migrate: %w", err)
		}
		if !applied {
			break
		}
	}
	// River's tables, in one transaction on the writer: another process migrating at once waits
	// for the write lock and then finds nothing left to do. SQLite's DDL is transactional.
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := s.riverMigrator.MigrateTx(ctx, tx, rivermigrate.DirectionUp, nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: migrate the job queue: %w", err)
	}
	return nil
}

// read returns the read pool's prepared form of query.
func (s *Store) read(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := s.reads.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.rdb.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.reads.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// dbError gives constraint violations their domain kind; other errors pass unchanged.
func dbError(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return &payment.Error{Kind: payment.Conflict, Code: "duplicate", Message: "an object with this identifier already exists", Err: err}
	case sqlite3.SQLITE_CONSTRAINT_CHECK:
		return &payment.Error{Kind: payment.Conflict, Code: "constraint_violation", Message: "the change would break an invariant of the stored object", Err: err}
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return &payment.Error{Kind: payment.NotFound, Code: "resource_missing", Message: "a referenced object does not exist", Err: err}
	}
	return err
}

// wrap names the operation and classifies database errors.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("sqlite: %s: %w", op, dbError(err))
}
