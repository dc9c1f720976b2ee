package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

func testIdempotency(t *testing.T, s gateway.Store) {
	m, other := newMerchant(t, s), newMerchant(t, s)
	const stale = 30 * time.Second
	begin := func(merchantID, key, hash string, now time.Time) (*gateway.IdempotencyRecord, bool) {
		t.Helper()
		rec, created, err := s.BeginIdempotent(ctx, merchantID, key, hash, now, stale)
		if err != nil {
			t.Fatalf("begin %s: %v", key, err)
		}
		if rec == nil {
			t.Fatalf("begin %s: nil record", key)
		}
		return rec, created
	}

	rec, created := begin(m.ID, "k1", "hash-a", t0)
	wantEqual(t, "new claim", rec, &gateway.IdempotencyRecord{MerchantID: m.ID, Key: "k1", RequestHash: "hash-a", CreatedAt: t0, LockedAt: t0})
	if !created {
		t.Fatal("a new key was not created")
	}

	// Still in flight: the second request sees the claim (and the gateway answers 409).
	rec, created = begin(m.ID, "k1", "hash-a", t0.Add(stale-time.Second))
	if created || rec.Status != 0 || rec.RequestHash != "hash-a" || !rec.LockedAt.Equal(t0) {
		t.Fatalf("in-flight key: created=%v rec=%+v", created, rec)
	}

	// Another merchant's key of the same name is its own.
	if _, created = begin(other.ID, "k1", "hash-b", t0); !created {
		t.Fatal("a key was shared between merchants")
	}

	// The first request's process died: after staleAfter the claim is taken over.
	later := t0.Add(stale + time.Second)
	rec, created = begin(m.ID, "k1", "hash-c", later)
	if !created || rec.Status != 0 || rec.RequestHash != "hash-c" || !rec.LockedAt.Equal(later) {
		t.Fatalf("stale takeover: created=%v rec=%+v", created, rec)
	}
	// The new owner's claim is fresh again.
	if _, created = begin(m.ID, "k1", "hash-c", later.Add(time.Second)); created {
		t.Fatal("a fresh takeover was taken over")
	}

	body := []byte(`{"id":"pay_1","status":"pending"}`)
	if err := s.FinishIdempotent(ctx, m.ID, "k1", 201, body); err != nil {
		t.Fatal(err)
	}
	// Finished records replay, however old.
	rec, created = begin(m.ID, "k1", "hash-c", later.Add(time.Hour))
	if created || rec.Status != 201 || string(rec.Body) != string(body) || rec.RequestHash != "hash-c" {
		t.Fatalf("replay: created=%v rec=%+v", created, rec)
	}
	// Aborting a finished key keeps its response.
	if err := s.AbortIdempotent(ctx, m.ID, "k1"); err != nil {
		t.Fatal(err)
	}
	if rec, created = begin(m.ID, "k1", "hash-c", later.Add(time.Hour)); created || rec.Status != 201 {
		t.Fatalf("after aborting a finished key: created=%v rec=%+v", created, rec)
	}
	// The other merchant's claim is untouched by all this.
	if rec, created = begin(other.ID, "k1", "hash-b", t0.Add(time.Second)); created || rec.RequestHash != "hash-b" || rec.Status != 0 {
		t.Fatalf("other merchant's claim: created=%v rec=%+v", created, rec)
	}

	// Abort frees an in-flight claim for a retry.
	begin(m.ID, "k2", "hash-d", t0)
	if err := s.AbortIdempotent(ctx, m.ID, "k2"); err != nil {
		t.Fatal(err)
	}
	if _, created = begin(m.ID, "k2", "hash-e", t0.Add(time.Second)); !created {
		t.Fatal("an aborted key was not free")
	}
	if err := s.AbortIdempotent(ctx, m.ID, "never-claimed"); err != nil {
		t.Fatalf("abort of an unknown key: %v", err)
	}
	wantKind(t, "finish of an unknown key", s.FinishIdempotent(ctx, m.ID, "never-claimed", 200, nil), payment.NotFound)

	// Purge deletes what was created before the cut: k1 (taken over at later) stays.
	n, err := s.PurgeIdempotent(ctx, t0.Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 { // other's k1 (t0) and k2 (t0+1s)
		t.Fatalf("purged %d records, want 2", n)
	}
	if _, created = begin(other.ID, "k1", "hash-f", t0.Add(3*time.Second)); !created {
		t.Fatal("a purged key still existed")
	}
	if rec, created = begin(m.ID, "k1", "hash-c", later.Add(2*time.Hour)); created || rec.Status != 201 {
		t.Fatalf("a kept key: created=%v rec=%+v", created, rec)
	}
}

func testIdempotencyConcurrentClaim(t *testing.T, s gateway.Store) {
	m := newMerchant(t, s)
	const workers = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	createdCount := 0
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, created, err := s.BeginIdempotent(ctx, m.ID, "same-key", "h", t0, time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			if created {
				mu.Lock()
				createdCount++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if createdCount != 1 {
		t.Fatalf("%d concurrent claims of one key succeeded, want exactly 1", createdCount)
	}
}
