package notify_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/sandbox/faults"
	"github.com/hutong-pay/hutong/internal/sandbox/notify"
	"github.com/hutong-pay/hutong/internal/sandbox/sandboxdb"
)

// testWallet signs nothing: forged probes carry a header the merchant checks.
type testWallet struct{ schedule []time.Duration }

func (w testWallet) Schedule() []time.Duration { return w.schedule }
func (w testWallet) Render(p []byte, forged bool) (http.Header, []byte, error) {
	h := http.Header{}
	if forged {
		h.Set("X-Forged", "1")
	}
	return h, p, nil
}
func (w testWallet) Acknowledged(status int, body []byte) bool {
	return status == 200 && string(body) == "success"
}

type merchant struct {
	mu       sync.Mutex
	got      []string
	forged   atomic.Int32
	failNext atomic.Int32
}

func (m *merchant) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.Header.Get("X-Forged") != "" {
		m.forged.Add(1)
		w.WriteHeader(400)
		return
	}
	if m.failNext.Load() > 0 {
		m.failNext.Add(-1)
		w.WriteHeader(500)
		return
	}
	m.mu.Lock()
	m.got = append(m.got, string(body))
	m.mu.Unlock()
	io.WriteString(w, "success")
}

func (m *merchant) received() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.got...)
}

func newSender(t *testing.T, dbPath string, f *faults.Injector) *notify.Sender {
	t.Helper()
	db, err := sandboxdb.Open(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := notify.New(notify.Options{DB: db, Faults: f, TimeScale: 0.001})
	if err != nil {
		t.Fatal(err)
	}
	s.Register("test", testWallet{schedule: []time.Duration{15 * time.Second, 15 * time.Second, 30 * time.Second, 3 * time.Minute}})
	return s
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRetriesUntilAcknowledged(t *testing.T) {
	m := &merchant{}
	m.failNext.Store(2)
	srv := httptest.NewServer(m)
	defer srv.Close()
	s := newSender(t, filepath.Join(t.TempDir(), "s.db"), nil)
	ctx := context.Background()
	if err := s.Enqueue(ctx, "test", "n1", srv.URL, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue(ctx, "test", "n1", srv.URL, []byte("again")); err != nil {
		t.Fatalf("re-enqueue: %v", err)
	}
	s.Start(ctx)
	defer s.Close()
	waitFor(t, "delivery", func() bool { _, ok, _ := s.Attempts(ctx, "n1"); return ok })
	n, _, _ := s.Attempts(ctx, "n1")
	if n != 3 {
		t.Fatalf("attempts = %d, want 3 (two refused, one acknowledged)", n)
	}
	if got := m.received(); len(got) != 1 || got[0] != "hello" {
		t.Fatalf("merchant received %q, want one \"hello\"", got)
	}
}

func TestGivesUpAfterSchedule(t *testing.T) {
	m := &merchant{}
	m.failNext.Store(1000)
	srv := httptest.NewServer(m)
	defer srv.Close()
	s := newSender(t, filepath.Join(t.TempDir(), "s.db"), nil)
	ctx := context.Background()
	s.Start(ctx)
	defer s.Close()
	if err := s.Enqueue(ctx, "test", "n1", srv.URL, []byte("x")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "five attempts", func() bool { n, _, _ := s.Attempts(ctx, "n1"); return n == 5 })
	time.Sleep(300 * time.Millisecond) // more than the last scaled retry delay
	if n, ok, _ := s.Attempts(ctx, "n1"); n != 5 || ok {
		t.Fatalf("attempts = %d delivered = %v, want 5 attempts (1 + 4 retries), not delivered", n, ok)
	}
}

func TestResumesAfterRestart(t *testing.T) {
	m := &merchant{}
	srv := httptest.NewServer(m)
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "s.db")
	ctx := context.Background()
	first := newSender(t, path, nil)
	if err := first.Enqueue(ctx, "test", "n1", srv.URL, []byte("kept")); err != nil {
		t.Fatal(err)
	}
	// Never started: the process "crashed" after recording the notification.
	second := newSender(t, path, nil)
	second.Start(ctx)
	defer second.Close()
	waitFor(t, "delivery after restart", func() bool { return len(m.received()) == 1 })
}

func TestFaults(t *testing.T) {
	m := &merchant{}
	srv := httptest.NewServer(m)
	defer srv.Close()
	f := faults.New()
	if err := f.Set(faults.Settings{Notifications: faults.NotificationFaults{DuplicateRate: 1, ForgedRate: 1}}); err != nil {
		t.Fatal(err)
	}
	s := newSender(t, filepath.Join(t.TempDir(), "s.db"), f)
	ctx := context.Background()
	s.Start(ctx)
	defer s.Close()
	if err := s.Enqueue(ctx, "test", "n1", srv.URL, []byte("dup")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery", func() bool { _, ok, _ := s.Attempts(ctx, "n1"); return ok })
	if got := m.received(); len(got) != 2 {
		t.Fatalf("merchant received %d copies, want 2 (duplicated)", len(got))
	}
	if m.forged.Load() != 1 {
		t.Fatalf("forged probes = %d, want 1", m.forged.Load())
	}

	if err := f.Set(faults.Settings{Notifications: faults.NotificationFaults{DropRate: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue(ctx, "test", "n2", srv.URL, []byte("lost")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two dropped attempts", func() bool { n, _, _ := s.Attempts(ctx, "n2"); return n >= 2 })
	if err := f.Set(faults.Settings{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery once drops stop", func() bool { _, ok, _ := s.Attempts(ctx, "n2"); return ok })
	if got := m.received(); len(got) != 3 || got[2] != "lost" {
		t.Fatalf("merchant received %q, want the dropped one delivered last", got)
	}
}

func TestReorder(t *testing.T) {
	m := &merchant{}
	srv := httptest.NewServer(m)
	defer srv.Close()
	f := faults.New()
	if err := f.Set(faults.Settings{Notifications: faults.NotificationFaults{ReorderRate: 1}}); err != nil {
		t.Fatal(err)
	}
	s := newSender(t, filepath.Join(t.TempDir(), "s.db"), f)
	ctx := context.Background()
	s.Start(ctx)
	defer s.Close()
	if err := s.Enqueue(ctx, "test", "first", srv.URL, []byte("first")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // first is now held back
	if err := f.Set(faults.Settings{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue(ctx, "test", "second", srv.URL, []byte("second")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both", func() bool { return len(m.received()) == 2 })
	if got := m.received(); got[0] != "second" || got[1] != "first" {
		t.Fatalf("order = %q, want second overtaking first", got)
	}
}
