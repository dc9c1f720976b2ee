package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/riverqueue/river/riverdriver/riversqlite"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/store/storetest"
)

func openTest(t testing.TB, opts Options) *Store {
	t.Helper()
	opts.Migrate = true
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "hutong.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) gateway.Store { return openTest(t, Options{}) })
}

// Without group commit every write has its own transaction: the suite must pass that way too.
func TestStoreWithoutGroupCommit(t *testing.T) {
	storetest.Run(t, func(t *testing.T) gateway.Store { return openTest(t, Options{MaxBatch: 1}) })
}

func TestStoreTruthful(t *testing.T) {
	storetest.RunTruthful(t, storetest.Harness{
		Open: func(t *testing.T) storetest.Full { return openTest(t, Options{}) },
		Jobs: func(t *testing.T, s storetest.Full) []storetest.QueuedJob {
			return storetest.QueuedJobs(t, riversqlite.New(s.(*Store).DB()))
		},
	})
}
