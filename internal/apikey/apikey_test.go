package apikey

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"
)

func TestGenerate(t *testing.T) {
	for _, live := range []bool{false, true} {
		secret, key := Generate(live)
		wantPrefix := TestPrefix
		if live {
			wantPrefix = LivePrefix
		}
		if !strings.HasPrefix(secret, wantPrefix) {
			t.Fatalf("secret %q..., want prefix %q", secret[:PrefixLen], wantPrefix)
		}
		if got, want := len(secret), len(wantPrefix)+40; got != want {
			t.Fatalf("secret length %d, want %d", got, want)
		}
		if !WellFormed(secret) {
			t.Fatalf("generated secret is not well formed")
		}
		if key.Livemode != live {
			t.Fatalf("livemode %v, want %v", key.Livemode, live)
		}
		if key.Prefix != secret[:12] || len(key.Prefix) != 12 {
			t.Fatalf("prefix %q, want the first 12 characters of the secret", key.Prefix)
		}
		sum := sha256.Sum256([]byte(secret))
		if !bytes.Equal(key.Hash, sum[:]) {
			t.Fatalf("hash is not the SHA-256 of the secret")
		}
		if bytes.Contains(key.Hash, []byte(secret)) || strings.Contains(key.ID, secret[len(wantPrefix):]) {
			t.Fatalf("key record carries the secret")
		}
		if !strings.HasPrefix(key.ID, "key_") {
			t.Fatalf("id %q, want key_ prefix", key.ID)
		}
	}
}

func TestGenerateUnique(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		s, k := Generate(false)
		if seen[s] || seen[k.ID] {
			t.Fatalf("duplicate secret or id after %d keys", i)
		}
		seen[s], seen[k.ID] = true, true
	}
}

func TestFromAuthorization(t *testing.T) {
	good, _ := Generate(false)
	live, _ := Generate(true)
	for _, tc := range []struct {
		header string
		want   string
		ok     bool
	}{
		{"Bearer " + good, good, true},
		{"bearer " + good, good, true},
		{"BEARER  " + live, live, true},
		{"", "", false},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Basic " + good, "", false},
		{good, "", false},
		{"Bearer " + good + "x", "", false},
		{"Bearer " + good[:len(good)-1], "", false},
		{"Bearer " + good + " ", "", false},
		{"Bearer pk_test_" + good[8:], "", false},
		{"Bearer " + good[:20] + "-" + good[21:], "", false},
		{"Bearer " + good[:20] + "é" + good[22:], "", false},
	} {
		got, ok := FromAuthorization(tc.header)
		if got != tc.want || ok != tc.ok {
			t.Errorf("FromAuthorization(%q) = %q, %v; want %q, %v", tc.header, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzFromAuthorization(f *testing.F) {
	good, _ := Generate(false)
	f.Add("Bearer " + good)
	f.Add("bearer sk_live_0123456789012345678901234567890123456789")
	f.Add("Basic dXNlcjpwYXNz")
	f.Add("Bearer sk_test_")
	f.Add("")
	f.Fuzz(func(t *testing.T, header string) {
		secret, ok := FromAuthorization(header)
		if !ok {
			if secret != "" {
				t.Fatalf("rejected header returned secret %q", secret)
			}
			return
		}
		if !WellFormed(secret) || !strings.HasSuffix(header, secret) {
			t.Fatalf("accepted %q as %q", header, secret)
		}
		if len(secret) != len(TestPrefix)+randomChars {
			t.Fatalf("accepted secret of length %d", len(secret))
		}
	})
}
