// Package pgtest gives tests a PostgreSQL database of their own: a fresh schema in the server
// named by HUTONG_TEST_POSTGRES_URL (scripts/testpg.sh starts one), dropped when the test ends.
package pgtest

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/hutong-pay/hutong/internal/payment"
)

// URL returns the test server's URL. Without one the test fails, saying how to start one, unless
// HUTONG_SKIP_POSTGRES=1 asks explicitly to skip: a suite that silently never touched PostgreSQL
// would claim what it did not check.
func URL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv("HUTONG_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	if os.Getenv("HUTONG_SKIP_POSTGRES") == "1" {
		t.Skip("HUTONG_SKIP_POSTGRES=1: PostgreSQL tests skipped on request")
	}
	t.Fatal("HUTONG_TEST_POSTGRES_URL is not set. Start a throwaway PostgreSQL with\n" +
		"\teval \"$(scripts/testpg.sh)\"\n" +
		"(from the repository root), or set HUTONG_SKIP_POSTGRES=1 to skip these tests explicitly.")
	return ""
}

// FreshSchema creates an empty schema for one test and returns a URL whose connections use it.
func FreshSchema(t testing.TB) string {
	t.Helper()
	base := URL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to HUTONG_TEST_POSTGRES_URL: %v", err)
	}
	defer conn.Close(ctx)
	schema := "test_" + strings.ToLower(payment.RandomString(16))
	if _, err := conn.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return WithParam(base, "search_path", schema)
}

// WithParam adds a connection parameter to a postgres:// URL or a key=value connection string.
func WithParam(conn, key, value string) string {
	if strings.HasPrefix(conn, "postgres://") || strings.HasPrefix(conn, "postgresql://") {
		u, err := url.Parse(conn)
		if err == nil {
			q := u.Query()
			q.Set(key, value)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return conn + " " + key + "=" + value
}
