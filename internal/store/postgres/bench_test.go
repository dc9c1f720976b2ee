package postgres

import (
	"testing"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/store/storetest"
)

// eval "$(scripts/testpg.sh)"; go test -run '^$' -bench . -benchtime 3s ./internal/store/postgres
func BenchmarkStore(b *testing.B) {
	testURL(b)
	storetest.Bench(b, func(b *testing.B) gateway.Store {
		return openTest(b, withParam(freshSchema(b), "pool_max_conns", "16"))
	})
}
