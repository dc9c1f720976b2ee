package payment

import (
	"crypto/rand"
	"crypto/sha256"
)

const idAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// RandomString returns n characters from [0-9A-Za-z], drawn from crypto/rand without modulo bias.
func RandomString(n int) string {
	out := make([]byte, 0, n)
	var buf [64]byte
	for len(out) < n {
		_, _ = rand.Read(buf[:])
		for _, b := range buf {
			if b < 248 { // 248 = 4*62: accept only values that map evenly
				out = append(out, idAlphabet[b%62])
				if len(out) == n {
					break
				}
			}
		}
	}
	return string(out)
}

// NewID returns a fresh object id such as "pay_" followed by 24 random characters.
func NewID(prefix string) string { return prefix + "_" + RandomString(24) }

// NewOutTradeNo returns a fresh merchant order number for a wallet: 32 characters, [0-9A-Za-z],
// within both WeChat Pay's (6–32, [0-9A-Za-z_-|*]) and Alipay's (≤ 64) rules.
func NewOutTradeNo() string { return "HT" + RandomString(30) }

// DerivedOutTradeNo returns the wallet order number of the request that merchantID made with
// idempotency key (scoped by kind, e.g. "payment" or "refund", and the key's mode): the same
// request retried after its node died gets the same number, so the wallet's own uniqueness on it
// stops the money moving twice. Same shape as NewOutTradeNo.
func DerivedOutTradeNo(merchantID, kind, key string) string {
	sum := sha256.Sum256([]byte(merchantID + "\x00" + kind + "\x00" + key))
	out := make([]byte, 0, 32)
	out = append(out, 'H', 'D')
	for _, b := range sum[:30] {
		out = append(out, idAlphabet[int(b)%len(idAlphabet)])
	}
	return string(out)
}
