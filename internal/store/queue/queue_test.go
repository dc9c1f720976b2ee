package queue

import (
	"errors"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/store/migrate"
)

type args struct{}

func (args) Kind() string { return "queue_test" }

func TestParams(t *testing.T) {
	at := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	p := Params([]gateway.Job{{Args: args{}}, {Args: args{}, ScheduledAt: at}})
	if len(p) != 2 || p[0].InsertOpts != nil || p[1].InsertOpts == nil || !p[1].InsertOpts.ScheduledAt.Equal(at) {
		t.Fatalf("params %+v", p)
	}
	var _ river.JobArgs = p[0].Args
}

func TestCompare(t *testing.T) {
	v := func(ns ...int) []rivermigrate.Migration {
		var out []rivermigrate.Migration
		for _, n := range ns {
			out = append(out, rivermigrate.Migration{Version: n})
		}
		return out
	}
	if err := compare(v(1, 2, 3), v(1, 2, 3)); err != nil {
		t.Fatalf("same versions: %v", err)
	}
	if err := compare(v(1), v(1, 2)); !errors.Is(err, migrate.ErrSchemaBehind) {
		t.Fatalf("behind: %v", err)
	}
	if err := compare(nil, v(1)); !errors.Is(err, migrate.ErrSchemaBehind) {
		t.Fatalf("no queue tables: %v", err)
	}
	if err := compare(v(1, 2, 3), v(1, 2)); !errors.Is(err, migrate.ErrSchemaAhead) {
		t.Fatalf("ahead: %v", err)
	}
}
