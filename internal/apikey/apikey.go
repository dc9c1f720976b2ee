// Package apikey makes and recognises merchant secret keys. A key is shown once when it is
// generated; only its SHA-256 hash is stored, so a leaked database does not leak keys.
package apikey

import (
	"crypto/sha256"
	"strings"

	"github.com/hutong-pay/hutong/internal/payment"
)

// Secret key prefixes; the mode is visible in the key so that a live key pasted into a test
// setup is obvious.
const (
	TestPrefix = "sk_test_"
	LivePrefix = "sk_live_"
)

// randomChars is the length of a key's random part: 40 characters of [0-9A-Za-z] carry
// 40·log2(62) ≈ 238 bits, above the 192 we require.
const randomChars = 40

// PrefixLen is how many leading characters of a secret are kept in clear to recognise a key.
const PrefixLen = 12

// Generate returns a new secret and the key record to store for it. The caller sets the
// record's MerchantID and CreatedAt before storing it; the secret must be shown to the
// merchant once and never stored or logged.
func Generate(livemode bool) (secret string, key *payment.APIKey) {
	prefix := TestPrefix
	if livemode {
		prefix = LivePrefix
	}
	secret = prefix + payment.RandomString(randomChars)
	return secret, &payment.APIKey{
		ID:       payment.NewID("key"),
		Livemode: livemode,
		Prefix:   secret[:PrefixLen],
		Hash:     Hash(secret),
	}
}

// Hash returns the SHA-256 of secret, the only form of it that is stored. Keys are looked up
// by this hash, so comparing a presented key never compares secrets byte by byte.
func Hash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// WellFormed reports whether s has the shape of a secret key Generate makes: a mode prefix and
// exactly randomChars characters of [0-9A-Za-z]. It lets obvious garbage be rejected without
// a database lookup.
func WellFormed(s string) bool {
	var rest string
	switch {
	case strings.HasPrefix(s, TestPrefix):
		rest = s[len(TestPrefix):]
	case strings.HasPrefix(s, LivePrefix):
		rest = s[len(LivePrefix):]
	default:
		return false
	}
	if len(rest) != randomChars {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

// FromAuthorization extracts the secret from an Authorization header value of the form
// "Bearer <secret>" (scheme case-insensitive, as RFC 9110 says). It reports false when the
// header is not a Bearer credential of a well-formed key.
func FromAuthorization(header string) (secret string, ok bool) {
	scheme, token, found := strings.Cut(header, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimLeft(token, " ")
	if !WellFormed(token) {
		return "", false
	}
	return token, true
}
