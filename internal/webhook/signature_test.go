package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The Standard Webhooks test vector (libraries/go/webhook_test.go, TestWebhookSign, in
// github.com/standard-webhooks/standard-webhooks).
const (
	vecSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vecID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vecTimestamp = 1614265330
	vecBody      = `{"test": 2432232314}`
	vecSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func mustKey(t testing.TB, s string) []byte {
	t.Helper()
	k, err := ParseSecret(s)
	if err != nil {
		t.Fatalf("ParseSecret: %v", err)
	}
	return k
}

func TestSignSpecVector(t *testing.T) {
	key := mustKey(t, vecSecret)
	if len(key) != 24 {
		t.Fatalf("key length: got %d, want 24", len(key))
	}
	h := Sign([][]byte{key}, vecID, time.Unix(vecTimestamp, 0), []byte(vecBody))
	if got := h.Get(HeaderSignature); got != vecSignature {
		t.Errorf("signature: got %q, want %q", got, vecSignature)
	}
	if got := h.Get(HeaderID); got != vecID {
		t.Errorf("id: got %q, want %q", got, vecID)
	}
	if got := h.Get(HeaderTimestamp); got != strconv.Itoa(vecTimestamp) {
		t.Errorf("timestamp: got %q, want %d", got, vecTimestamp)
	}
	if err := Verify([][]byte{key}, h, []byte(vecBody), time.Unix(vecTimestamp+10, 0)); err != nil {
		t.Errorf("Verify of the spec vector: %v", err)
	}
}

// independentSig recomputes a signature with nothing of the package, as a merchant might.
func independentSig(secret, id string, ts int64, body []byte) string {
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + strconv.FormatInt(ts, 10) + "." + string(body)))
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestSignSeveralKeys(t *testing.T) {
	s1, s2 := NewSecret(), NewSecret()
	ts := time.Unix(1700000000, 0)
	body := []byte(`{"type":"payment.succeeded"}`)
	h := Sign([][]byte{mustKey(t, s1), mustKey(t, s2)}, "evt_1", ts, body)
	want := independentSig(s1, "evt_1", ts.Unix(), body) + " " + independentSig(s2, "evt_1", ts.Unix(), body)
	if got := h.Get(HeaderSignature); got != want {
		t.Errorf("signature header: got %q, want %q", got, want)
	}
	for i, s := range []string{s1, s2} {
		if err := Verify([][]byte{mustKey(t, s)}, h, body, ts); err != nil {
			t.Errorf("Verify with secret %d alone: %v", i+1, err)
		}
	}
}

func TestVerifyRejects(t *testing.T) {
	key := mustKey(t, vecSecret)
	other := mustKey(t, NewSecret())
	ts := time.Unix(vecTimestamp, 0)
	body := []byte(vecBody)
	signed := func() http.Header { return Sign([][]byte{key}, vecID, ts, body) }

	cases := []struct {
		name string
		keys [][]byte
		h    func() http.Header
		body []byte
		now  time.Time
		want error
	}{
		{"valid", [][]byte{key}, signed, body, ts, nil},
		{"valid among other keys", [][]byte{other, key}, signed, body, ts, nil},
		{"tampered body", [][]byte{key}, signed, []byte(`{"test": 2432232315}`), ts, ErrNoValidSignature},
		{"wrong key", [][]byte{other}, signed, body, ts, ErrNoValidSignature},
		{"no keys", nil, signed, body, ts, ErrNoValidSignature},
		{"changed id", [][]byte{key}, func() http.Header { h := signed(); h.Set(HeaderID, "msg_other"); return h }, body, ts, ErrNoValidSignature},
		{"changed timestamp", [][]byte{key}, func() http.Header {
			h := signed()
			h.Set(HeaderTimestamp, strconv.Itoa(vecTimestamp+1))
			return h
		}, body, ts, ErrNoValidSignature},
		{"missing id", [][]byte{key}, func() http.Header { h := signed(); h.Del(HeaderID); return h }, body, ts, ErrMissingHeader},
		{"missing timestamp", [][]byte{key}, func() http.Header { h := signed(); h.Del(HeaderTimestamp); return h }, body, ts, ErrMissingHeader},
		{"missing signature", [][]byte{key}, func() http.Header { h := signed(); h.Del(HeaderSignature); return h }, body, ts, ErrMissingHeader},
		{"timestamp not digits", [][]byte{key}, func() http.Header { h := signed(); h.Set(HeaderTimestamp, "+1614265330"); return h }, body, ts, ErrInvalidTimestamp},
		{"too old", [][]byte{key}, signed, body, ts.Add(Tolerance + time.Second), ErrTimestampSkew},
		{"too new", [][]byte{key}, signed, body, ts.Add(-Tolerance - time.Second), ErrTimestampSkew},
		{"at the tolerance edge", [][]byte{key}, signed, body, ts.Add(Tolerance), nil},
		{"only a v1a signature", [][]byte{key}, func() http.Header {
			h := signed()
			h.Set(HeaderSignature, strings.Replace(h.Get(HeaderSignature), "v1,", "v1a,", 1))
			return h
		}, body, ts, ErrNoValidSignature},
		{"valid among junk", [][]byte{key}, func() http.Header {
			h := signed()
			h.Set(HeaderSignature, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,xx v1,!!! nocomma "+h.Get(HeaderSignature))
			return h
		}, body, ts, nil},
		{"truncated signature", [][]byte{key}, func() http.Header { h := signed(); h.Set(HeaderSignature, vecSignature[:20]); return h }, body, ts, ErrNoValidSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.keys, tc.h(), tc.body, tc.now)
			if tc.want == nil && err != nil {
				t.Fatalf("got %v, want success", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNewSecret(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		s := NewSecret()
		if !strings.HasPrefix(s, "whsec_") {
			t.Fatalf("secret %q lacks whsec_", s)
		}
		k, err := ParseSecret(s)
		if err != nil {
			t.Fatalf("ParseSecret(NewSecret()): %v", err)
		}
		if len(k) != 32 {
			t.Fatalf("key length: got %d, want 32", len(k))
		}
		if seen[s] {
			t.Fatal("NewSecret repeated itself")
		}
		seen[s] = true
	}
}

func TestParseSecretRejects(t *testing.T) {
	b64 := func(n int) string { return base64.StdEncoding.EncodeToString(make([]byte, n)) }
	for _, s := range []string{
		"",
		"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",       // no prefix
		"WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", // wrong case
		"whsec_",                                 // empty
		"whsec_" + b64(23),                       // too short
		"whsec_" + b64(65),                       // too long
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",  // bad length
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw ",  // trailing space
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La_aSw",   // URL alphabet
		"whsec_" + strings.TrimRight(b64(32), "="), // missing padding
	} {
		if _, err := ParseSecret(s); err == nil {
			t.Errorf("ParseSecret(%q) accepted it", s)
		} else if len(s) > 12 && strings.Contains(err.Error(), s[6:]) {
			t.Errorf("ParseSecret error %q contains the secret", err)
		}
	}
	for _, n := range []int{24, 32, 64} {
		if _, err := ParseSecret("whsec_" + b64(n)); err != nil {
			t.Errorf("ParseSecret of %d bytes: %v", n, err)
		}
	}
}

func FuzzParseSecret(f *testing.F) {
	f.Add(vecSecret)
	f.Add(NewSecret())
	f.Add("whsec_")
	f.Add("whsec_====")
	f.Add("whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 65)))
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseSecret(s)
		if err != nil {
			if k != nil {
				t.Fatal("key returned with an error")
			}
			return
		}
		if len(k) < 24 || len(k) > 64 {
			t.Fatalf("accepted a %d-byte key", len(k))
		}
		// A parsed secret round-trips: there is one spelling per key.
		if again := "whsec_" + base64.StdEncoding.EncodeToString(k); again != s {
			t.Fatalf("%q parsed but re-encodes as %q", s, again)
		}
	})
}

func FuzzVerify(f *testing.F) {
	key := mustKey(f, vecSecret)
	f.Add(vecID, strconv.Itoa(vecTimestamp), vecSignature, []byte(vecBody))
	f.Add("", "", "", []byte{})
	f.Add(vecID, "99999999999999999999", "v1,", []byte("x"))
	f.Add(vecID, strconv.Itoa(vecTimestamp), "v1,"+strings.Repeat("A", 400)+" v1a,xyz", []byte(vecBody))
	now := time.Unix(vecTimestamp, 0)
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set(HeaderID, id)
		h.Set(HeaderTimestamp, ts)
		h.Set(HeaderSignature, sig)
		err := Verify([][]byte{key}, h, body, now)
		if err != nil {
			return
		}
		// Anything accepted must carry the true signature of what it claims.
		want := independentSig(vecSecret, id, mustUnix(t, ts), body)
		if !strings.Contains(" "+sig+" ", " "+want+" ") {
			t.Fatalf("accepted id=%q ts=%q sig=%q without its true signature %q", id, ts, sig, want)
		}
	})
}

func mustUnix(t *testing.T, s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("Verify accepted timestamp %q: %v", s, err)
	}
	return n
}
