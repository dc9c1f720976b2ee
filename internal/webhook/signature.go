// Package webhook delivers signed merchant webhooks (Standard Webhooks 1.0): endpoint
// management, the signer and verifier, an SSRF-safe dispatcher with a retry schedule, the River
// workers that fan events out and deliver them, and the /v1 handlers merchants use.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks headers. http.Header canonicalises them ("Webhook-Id"); HTTP header names
// are case-insensitive, and HTTP/2 sends them lower case, as the spec writes them.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Tolerance is how far a webhook-timestamp may be from the verifier's clock, either way.
const Tolerance = 5 * time.Minute

const (
	secretPrefix = "whsec_"
	// The spec asks for at least 24 random bytes; 64 is the most we accept when parsing.
	minSecretBytes = 24
	maxSecretBytes = 64
	newSecretBytes = 32
)

// Verification errors; Verify wraps them with detail.
var (
	ErrMissingHeader    = errors.New("webhook: missing header")
	ErrInvalidTimestamp = errors.New("webhook: invalid timestamp")
	ErrTimestampSkew    = errors.New("webhook: timestamp outside tolerance")
	ErrNoValidSignature = errors.New("webhook: no valid signature")
)

// NewSecret returns a fresh signing secret: "whsec_" and the base64 of 32 random bytes.
func NewSecret() string {
	b := make([]byte, newSecretBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it panics if the OS source breaks)
	return secretPrefix + base64.StdEncoding.EncodeToString(b)
}

// ParseSecret returns the HMAC key of a "whsec_<base64>" secret: the decoded bytes, 24 to 64 of them.
// Errors never contain the secret.
func ParseSecret(s string) ([]byte, error) {
	rest, ok := strings.CutPrefix(s, secretPrefix)
	if !ok {
		return nil, errors.New("webhook: secret must start with whsec_")
	}
	// Strict decoding still skips CR and LF; refuse them so that a key has one spelling.
	key, err := base64.StdEncoding.Strict().DecodeString(rest)
	if err != nil || strings.ContainsAny(rest, "\r\n") {
		return nil, errors.New("webhook: secret is not valid base64")
	}
	if len(key) < minSecretBytes || len(key) > maxSecretBytes {
		return nil, fmt.Errorf("webhook: secret must decode to %d to %d bytes, got %d", minSecretBytes, maxSecretBytes, len(key))
	}
	return key, nil
}

// Sign returns the Standard Webhooks headers for body: webhook-id, webhook-timestamp (unix
// seconds) and webhook-signature, one "v1,<base64 HMAC-SHA256 of id.timestamp.body>" per key,
// space-separated. Several keys sign during a secret rotation so receivers holding either
// secret accept the message. id must not contain '.' (ours are [0-9A-Za-z_]).
func Sign(keys [][]byte, id string, ts time.Time, body []byte) http.Header {
	unix := strconv.FormatInt(ts.Unix(), 10)
	sigs := make([]string, 0, len(keys))
	for _, k := range keys {
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac(k, id, unix, body)))
	}
	h := http.Header{}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, unix)
	h.Set(HeaderSignature, strings.Join(sigs, " "))
	return h
}

func mac(key []byte, id, unix string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(unix))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify is what a merchant runs on a received webhook: the headers must be present, the
// timestamp within Tolerance of now, and at least one "v1," signature in webhook-signature must
// be the HMAC of id.timestamp.body under one of keys (compared in constant time). Signatures of
// other versions (e.g. "v1a,") are ignored.
func Verify(keys [][]byte, h http.Header, body []byte, now time.Time) error {
	id, unix, sigHeader := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	switch {
	case id == "":
		return fmt.Errorf("%w: %s", ErrMissingHeader, HeaderID)
	case unix == "":
		return fmt.Errorf("%w: %s", ErrMissingHeader, HeaderTimestamp)
	case sigHeader == "":
		return fmt.Errorf("%w: %s", ErrMissingHeader, HeaderSignature)
	}
	sec, err := parseUnix(unix)
	if err != nil {
		return err
	}
	ts := time.Unix(sec, 0)
	if d := now.Sub(ts); d > Tolerance || d < -Tolerance {
		return fmt.Errorf("%w: %s is %s from now", ErrTimestampSkew, HeaderTimestamp, d.Round(time.Second))
	}
	// Compare base64 text, as the reference libraries do: decoding would also accept other
	// spellings of the same bytes (ignored padding bits, embedded newlines). Every offered
	// signature is compared with every key's, without stopping at a match, in constant time.
	wants := make([][]byte, len(keys))
	for i, k := range keys {
		wants[i] = []byte(base64.StdEncoding.EncodeToString(mac(k, id, unix, body)))
	}
	ok := false
	for _, field := range strings.Split(sigHeader, " ") {
		version, sig, found := strings.Cut(field, ",")
		if !found || version != "v1" {
			continue
		}
		for _, want := range wants {
			if hmac.Equal([]byte(sig), want) {
				ok = true
			}
		}
	}
	if !ok {
		return ErrNoValidSignature
	}
	return nil
}

// parseUnix parses a webhook-timestamp: decimal digits only (no sign, no spaces).
func parseUnix(s string) (int64, error) {
	if len(s) > 12 { // unix seconds have 10 digits until the year 2286
		return 0, fmt.Errorf("%w: too long", ErrInvalidTimestamp)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%w: not decimal digits", ErrInvalidTimestamp)
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrInvalidTimestamp, err)
	}
	return n, nil
}
