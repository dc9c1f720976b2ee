package alipay

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/hutong-pay/hutong/internal/payment"
)

// ParseYuan reads an Alipay amount, a yuan decimal such as "0.01" or "12", into fen.
//
// It is strict on purpose: the text comes from outside (responses and notifications), and a
// lenient parser is where two readings of one amount begin. Accepted: one or more ASCII digits
// without superfluous leading zeros ("0.50" yes, "00.50" no), then optionally '.' and one or two
// digits. Rejected: signs, spaces, exponents, a bare or trailing '.', more than two decimals, and
// anything above payment.MaxAmount.
func ParseYuan(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("alipay: amount is empty")
	}
	intPart, frac := s, ""
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			intPart, frac = s[:i], s[i+1:]
			if frac == "" {
				return 0, fmt.Errorf("alipay: amount %q ends with a decimal point", s)
			}
			break
		}
	}
	if intPart == "" {
		return 0, fmt.Errorf("alipay: amount %q has no digit before the decimal point", s)
	}
	if len(intPart) > 1 && intPart[0] == '0' {
		return 0, fmt.Errorf("alipay: amount %q has a leading zero", s)
	}
	if len(frac) > 2 {
		return 0, fmt.Errorf("alipay: amount %q has more than two decimals", s)
	}
	// MaxAmount in yuan has 9 digits; more cannot fit and would only risk overflow below.
	if len(intPart) > 9 {
		return 0, fmt.Errorf("alipay: amount %q is above the maximum", s)
	}
	var fen int64
	for i := 0; i < len(intPart); i++ {
		d := intPart[i]
		if d < '0' || d > '9' {
			return 0, fmt.Errorf("alipay: amount %q is not a plain decimal", s)
		}
		fen = fen*10 + int64(d-'0')
	}
	fen *= 100
	scale := int64(10)
	for i := 0; i < len(frac); i++ {
		d := frac[i]
		if d < '0' || d > '9' {
			return 0, fmt.Errorf("alipay: amount %q is not a plain decimal", s)
		}
		fen += int64(d-'0') * scale
		scale /= 10
	}
	if fen > payment.MaxAmount {
		return 0, fmt.Errorf("alipay: amount %q is above the maximum", s)
	}
	return fen, nil
}

// FormatYuan renders fen as Alipay wants amounts: yuan with exactly two decimals, 1 → "0.01".
// Amounts sent to Alipay are never negative; a negative fen is rendered with a '-' that
// ParseYuan refuses, so such a value cannot round-trip unnoticed.
func FormatYuan(fen int64) string {
	neg := fen < 0
	u := uint64(fen)
	if neg {
		u = -u // two's complement negation is exact even for math.MinInt64
	}
	b := make([]byte, 0, 24)
	if neg {
		b = append(b, '-')
	}
	b = strconv.AppendUint(b, u/100, 10)
	c := u % 100
	b = append(b, '.', byte('0'+c/10), byte('0'+c%10))
	return string(b)
}
