package postgres

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
	"github.com/hutong-pay/hutong/internal/store/migrate"
	"github.com/hutong-pay/hutong/internal/store/pgtest"
	"github.com/hutong-pay/hutong/internal/store/storetest"
)

var ctx = context.Background()

// The test database: a fresh schema per test, from pgtest.
var (
	testURL     = pgtest.URL
	freshSchema = pgtest.FreshSchema
	withParam   = pgtest.WithParam
)

func openTest(t testing.TB, url string) *Store {
	t.Helper()
	s, err := Open(ctx, url, Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	testURL(t) // fail (or skip) once, not in every subtest
	storetest.Run(t, func(t *testing.T) gateway.Store { return openTest(t, freshSchema(t)) })
}

func TestOpenRefusesOutdatedSchema(t *testing.T) {
	url := freshSchema(t)
	_, err := Open(ctx, url, Options{})
	if !errors.Is(err, migrate.ErrSchemaBehind) || !strings.Contains(err.Error(), "version 0") ||
		!strings.Contains(err.Error(), "0001_init.sql") || !strings.Contains(err.Error(), "hutong migrate") {
		t.Fatalf("open of an empty schema: %v, want a schema-behind error naming the versions", err)
	}
	s := openTest(t, url)
	cur, latest, err := s.SchemaVersion(ctx)
	if err != nil || cur != latest || latest < 1 {
		t.Fatalf("schema version %d of %d (%v)", cur, latest, err)
	}
	again, err := Open(ctx, url, Options{})
	if err != nil {
		t.Fatalf("open of a migrated schema: %v", err)
	}
	again.Close()

	if _, err := s.pool.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, 'future.sql')`, latest+1); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, url, Options{}); !errors.Is(err, migrate.ErrSchemaAhead) {
		t.Fatalf("open of a newer schema: %v", err)
	}
	if err := s.Migrate(ctx); !errors.Is(err, migrate.ErrSchemaAhead) {
		t.Fatalf("migrate of a newer schema: %v", err)
	}
}

// Nodes starting together all migrate: each file must run once and none may fail.
func TestConcurrentMigrate(t *testing.T) {
	url := freshSchema(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(ctx, url, Options{Migrate: true})
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s := openTest(t, url)
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(s.migrations) {
		t.Fatalf("%d schema_migrations rows (%v), want %d", n, err, len(s.migrations))
	}
}

func TestOpenHidesPassword(t *testing.T) {
	_, err := Open(ctx, "postgres://u:s3cret@127.0.0.1:1/db?sslmode=bogus", Options{})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("got %v, want an error without the password", err)
	}
	_, err = Open(ctx, "postgres://u:s3cret@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", Options{})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("got %v, want an error without the password", err)
	}
}

// PostgreSQL text cannot hold NUL: that is the client's mistake (400), not a server error.
func TestNULIsInvalid(t *testing.T) {
	s := openTest(t, freshSchema(t))
	m := &payment.Merchant{ID: "mch_1", Name: "m"}
	if err := s.CreateMerchant(ctx, m); err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]*payment.Payment{
		"description": {ID: "pay_1", MerchantID: m.ID, Status: payment.StatusPending, Amount: 1, Currency: "CNY", Description: "a\x00b"},
		"metadata":    {ID: "pay_2", MerchantID: m.ID, Status: payment.StatusPending, Amount: 1, Currency: "CNY", Metadata: map[string]string{"k": "a\x00b"}},
	} {
		if err := s.CreatePayment(ctx, p, nil); payment.KindOf(err) != payment.Invalid {
			t.Errorf("NUL in %s: %v, want kind %s", name, err, payment.Invalid)
		}
	}
}

func TestStoreTruthful(t *testing.T) {
	testURL(t)
	storetest.RunTruthful(t, storetest.Harness{
		Open: func(t *testing.T) storetest.Full { return openTest(t, freshSchema(t)) },
		Jobs: func(t *testing.T, s storetest.Full) []storetest.QueuedJob {
			return storetest.QueuedJobs(t, riverpgxv5.New(s.(*Store).Pool()))
		},
	})
}
