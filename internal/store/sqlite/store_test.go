package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
	"github.com/hutong-pay/hutong/internal/store/migrate"
)

var ctx = context.Background()

func TestOpenRefusesOutdatedSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hutong.db")
	_, err := Open(ctx, path, Options{})
	if !errors.Is(err, migrate.ErrSchemaBehind) || !strings.Contains(err.Error(), "version 0") ||
		!strings.Contains(err.Error(), "0001_init.sql") || !strings.Contains(err.Error(), "hutong migrate") {
		t.Fatalf("open of an empty file: %v, want a schema-behind error naming the versions", err)
	}

	s, err := Open(ctx, path, Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	cur, latest, err := s.SchemaVersion(ctx)
	if err != nil || cur != latest || latest < 1 {
		t.Fatalf("schema version %d of %d (%v)", cur, latest, err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	// A database migrated by a newer binary is refused too.
	if _, err := s.wdb.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'future.sql', 0)`, latest+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(ctx, path, Options{}); !errors.Is(err, migrate.ErrSchemaAhead) {
		t.Fatalf("open of a newer schema: %v", err)
	}
	if _, err := Open(ctx, path, Options{Migrate: true}); !errors.Is(err, migrate.ErrSchemaAhead) {
		t.Fatalf("migrate of a newer schema: %v", err)
	}
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hutong.db")
	s, err := Open(ctx, path, Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	m := &payment.Merchant{ID: "mch_1", Name: "m", CreatedAt: time.Unix(1, 0).UTC()}
	if err := s.CreateMerchant(ctx, m); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Merchant(ctx, "mch_1"); err != nil {
		t.Fatal(err)
	}
}

func TestSynchronousOption(t *testing.T) {
	for opt, want := range map[string]int{"": 2, "FULL": 2, "normal": 1} {
		s := openTest(t, Options{Synchronous: opt})
		var got int
		if err := s.wdb.QueryRow(`PRAGMA synchronous`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		var mode string
		if err := s.wdb.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
			t.Fatalf("journal mode %q (%v)", mode, err)
		}
		if got != want {
			t.Errorf("synchronous %q: pragma is %d, want %d", opt, got, want)
		}
	}
	if _, err := Open(ctx, filepath.Join(t.TempDir(), "x.db"), Options{Synchronous: "OFF", Migrate: true}); err == nil {
		t.Fatal("synchronous OFF accepted")
	}
}

func TestReadPoolIsReadOnly(t *testing.T) {
	s := openTest(t, Options{})
	if _, err := s.rdb.Exec(`DELETE FROM merchants`); err == nil {
		t.Fatal("the read pool wrote")
	}
}

func insertMerchantOp(id string) func(context.Context, *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO merchants (id, name, created_at) VALUES (?, 'm', 0)`, id)
		return wrap("insert merchant", err)
	}
}

// One batch, several callers: each failure undoes only its own writes.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	s := openTest(t, Options{})
	mine := errors.New("mine")
	ops := []*writeOp{
		{fn: insertMerchantOp("mch_a")},
		{fn: func(ctx context.Context, tx *sql.Tx) error {
			if err := insertMerchantOp("mch_b")(ctx, tx); err != nil {
				return err
			}
			return mine // after a write: the write must go
		}},
		{fn: insertMerchantOp("mch_a")}, // duplicate of the first, in the same transaction
		{fn: func(context.Context, *sql.Tx) error { panic("boom") }},
		{fn: insertMerchantOp("mch_c")},
	}
	for _, op := range ops {
		op.ctx, op.done = ctx, make(chan error, 1)
	}
	if again := s.commit(ops); len(again) != 0 {
		t.Fatalf("%d ops to run again", len(again))
	}
	results := make([]error, len(ops))
	for i, op := range ops {
		results[i] = <-op.done
	}
	if results[0] != nil || results[4] != nil {
		t.Fatalf("good ops failed: %v, %v", results[0], results[4])
	}
	if results[1] != mine {
		t.Fatalf("op error %v, want the op's own", results[1])
	}
	if payment.KindOf(results[2]) != payment.Conflict {
		t.Fatalf("duplicate: %v", results[2])
	}
	if _, ok := results[3].(panicked); !ok {
		t.Fatalf("panic: %v", results[3])
	}
	for id, want := range map[string]bool{"mch_a": true, "mch_b": false, "mch_c": true} {
		_, err := s.Merchant(ctx, id)
		if got := err == nil; got != want {
			t.Errorf("merchant %s stored: %v, want %v (%v)", id, got, want, err)
		}
	}
}

func TestWritePanicReachesCaller(t *testing.T) {
	s := openTest(t, Options{})
	func() {
		defer func() {
			if v := recover(); v != "boom" {
				t.Fatalf("recovered %v, want the callback's panic", v)
			}
		}()
		s.write(ctx, func(context.Context, *sql.Tx) error { panic("boom") })
	}()
	if err := s.write(ctx, insertMerchantOp("mch_after")); err != nil {
		t.Fatalf("write after a panic: %v", err)
	}
}

func TestConcurrentWritesShareCommits(t *testing.T) {
	s := openTest(t, Options{})
	var wg sync.WaitGroup
	const writers, each = 32, 20
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if err := s.write(ctx, insertMerchantOp(payment.NewID("mch"))); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	var n int
	if err := s.rdb.QueryRow(`SELECT count(*) FROM merchants`).Scan(&n); err != nil || n != writers*each {
		t.Fatalf("%d merchants (%v), want %d", n, err, writers*each)
	}
	// 32 writers against one fsync per commit: they must have shared commits.
	if c := s.commits.Load(); c >= writers*each {
		t.Fatalf("%d commits for %d concurrent writes: no group commit", c, writers*each)
	} else {
		t.Logf("%d writes in %d commits", writers*each, c)
	}
}

func TestCanceledAndClosed(t *testing.T) {
	s := openTest(t, Options{})
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	m := &payment.Merchant{ID: "mch_x", Name: "x"}
	if err := s.CreateMerchant(cctx, m); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled create: %v", err)
	}
	if _, err := s.Merchant(ctx, "mch_x"); !payment.IsNotFound(err) {
		t.Fatalf("canceled create was written: %v", err)
	}
	s2, err := Open(ctx, filepath.Join(t.TempDir(), "c.db"), Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
	if err := s2.CreateMerchant(ctx, m); !errors.Is(err, errClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

func TestFileIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "hutong.db")
	s, err := Open(ctx, path, Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v, want no access for others", p, fi.Mode().Perm())
		}
	}
}

// Two stores on one file stand for two processes (say `hutong migrate` beside `hutong serve`):
// SQLite's file lock and the busy timeout make their writers take turns instead of failing.
func TestTwoStoresOnOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hutong.db")
	a, err := Open(ctx, path, Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := a.CreateMerchant(ctx, &payment.Merchant{ID: "mch_1", Name: "m", CreatedAt: time.Unix(1, 0)}); err != nil {
		t.Fatal(err)
	}
	p := &payment.Payment{ID: "pay_1", MerchantID: "mch_1", Status: payment.StatusPending, Amount: 100, Currency: "CNY",
		Metadata: map[string]string{}}
	if err := a.CreatePayment(ctx, p, nil); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, s := range []*Store{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				_, err := s.UpdatePayment(ctx, "pay_1", func(p *payment.Payment) (gateway.Effects, error) {
					p.AmountRefunded++ // a counter both processes increment under the lock
					return gateway.Effects{}, nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got, err := b.Payment(ctx, "", "pay_1")
	if err != nil || got.AmountRefunded != 100 {
		t.Fatalf("counter %d (%v), want 100 increments", got.AmountRefunded, err)
	}
}

// When SQLite drops the whole transaction under a batch, the ops that ran in it fail (their
// writes are gone) and those after it run again in a fresh transaction.
func TestGroupCommitBrokenTransaction(t *testing.T) {
	s := openTest(t, Options{})
	ops := []*writeOp{
		{fn: insertMerchantOp("mch_a")},
		{fn: func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, "ROLLBACK") // as SQLite does on an I/O error
			return err
		}},
		{fn: insertMerchantOp("mch_c")},
	}
	for _, op := range ops {
		op.ctx, op.done = ctx, make(chan error, 1)
	}
	again := s.commit(ops)
	if len(again) != 1 || again[0] != ops[2] {
		t.Fatalf("ops to run again: %d, want the one after the break", len(again))
	}
	for i := range 2 {
		if err := <-ops[i].done; err == nil {
			t.Fatalf("op %d in the broken transaction reported success", i)
		}
	}
	if again = s.commit(again); len(again) != 0 {
		t.Fatal("the rerun broke too")
	}
	if err := <-ops[2].done; err != nil {
		t.Fatal(err)
	}
	if _, err := s.Merchant(ctx, "mch_a"); !payment.IsNotFound(err) {
		t.Fatalf("a write of the broken transaction survived: %v", err)
	}
	if _, err := s.Merchant(ctx, "mch_c"); err != nil {
		t.Fatalf("the rerun op's write: %v", err)
	}
}
