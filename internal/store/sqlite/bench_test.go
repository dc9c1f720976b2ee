package sqlite

import (
	"testing"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/store/storetest"
)

// go test -run '^$' -bench . -benchtime 3s ./internal/store/sqlite
func BenchmarkStore(b *testing.B) {
	for _, c := range []struct {
		name string
		opts Options
	}{
		{"FULL", Options{}},
		{"FULL-nogroup", Options{MaxBatch: 1}},
		{"NORMAL", Options{Synchronous: "NORMAL"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			storetest.Bench(b, func(b *testing.B) gateway.Store { return openTest(b, c.opts) })
		})
	}
}
