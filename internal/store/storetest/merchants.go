package storetest

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

func testMerchants(t *testing.T, s gateway.Store) {
	m := newMerchant(t, s)
	got, err := s.Merchant(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "merchant", got, m)

	got, err = s.Merchant(ctx, "mch_missing")
	wantNotFound(t, "missing merchant", got, err)

	dup := *m
	wantKind(t, "duplicate merchant id", s.CreateMerchant(ctx, &dup), payment.Conflict)
}

func newKey(merchantID string, secret string, created time.Time) *payment.APIKey {
	h := sha256.Sum256([]byte(secret))
	return &payment.APIKey{
		ID:         payment.NewID("key"),
		MerchantID: merchantID,
		Prefix:     secret[:12],
		Hash:       h[:],
		CreatedAt:  created,
	}
}

func testAPIKeys(t *testing.T, s gateway.Store) {
	m, other := newMerchant(t, s), newMerchant(t, s)
	k1 := newKey(m.ID, "sk_test_"+payment.RandomString(32), t0)
	k2 := newKey(m.ID, "sk_live_"+payment.RandomString(32), t0.Add(time.Second))
	k2.Livemode = true
	k3 := newKey(other.ID, "sk_test_"+payment.RandomString(32), t0)
	for _, k := range []*payment.APIKey{k1, k2, k3} {
		if err := s.CreateAPIKey(ctx, k); err != nil {
			t.Fatalf("create key: %v", err)
		}
	}

	got, err := s.APIKeyByHash(ctx, k2.Hash)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "key by hash", got, k2)

	missing := sha256.Sum256([]byte("sk_test_nobody"))
	got, err = s.APIKeyByHash(ctx, missing[:])
	wantNotFound(t, "unknown hash", got, err)

	dup := newKey(m.ID, "sk_test_"+payment.RandomString(32), t0)
	dup.Hash = k1.Hash
	wantKind(t, "duplicate hash", s.CreateAPIKey(ctx, dup), payment.Conflict)

	list, err := s.ListAPIKeys(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "merchant's keys, newest first", list, []*payment.APIKey{k2, k1})

	revokedAt := t0.Add(time.Hour)
	if err := s.RevokeAPIKey(ctx, k1.ID, revokedAt); err != nil {
		t.Fatal(err)
	}
	// A second revocation keeps the first time: when a key stopped working is an audit fact.
	if err := s.RevokeAPIKey(ctx, k1.ID, revokedAt.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, err = s.APIKeyByHash(ctx, k1.Hash)
	if err != nil {
		t.Fatalf("revoked key by hash: %v (revoked keys are still found, so that the caller can say why it fails)", err)
	}
	want := *k1
	want.RevokedAt = &revokedAt
	wantEqual(t, "revoked key", got, &want)

	wantKind(t, "revoke missing key", s.RevokeAPIKey(ctx, "key_missing", revokedAt), payment.NotFound)

	list, err = s.ListAPIKeys(ctx, "mch_without_keys")
	if err != nil || len(list) != 0 {
		t.Fatalf("keys of a merchant without keys: %v, %v; want none and no error", list, err)
	}
}
