package alipay

import (
	"errors"
	"fmt"
	"strconv"
)

// Alipay amounts are yuan with at most two decimals, within [0.01, 100000000].
const maxAmountFen = 100_000_000 * 100

var errBadAmount = errors.New("alipay: amount must be yuan with at most two decimals, between 0.01 and 100000000")

// parseYuan strictly parses an Alipay amount ("12", "12.3", "12.30") into fen. It refuses signs,
// spaces, exponents, leading zeros ("01"), a bare or trailing dot, more than two decimals, zero and
// anything above the maximum: a lenient parser would accept amounts Alipay rejects.
func parseYuan(s string) (int64, error) {
	intPart, frac := s, ""
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			intPart, frac = s[:i], s[i+1:]
			if frac == "" || len(frac) > 2 {
				return 0, fmt.Errorf("%w: %q", errBadAmount, s)
			}
			break
		}
	}
	if intPart == "" || len(intPart) > 9 || (len(intPart) > 1 && intPart[0] == '0') {
		return 0, fmt.Errorf("%w: %q", errBadAmount, s)
	}
	var fen int64
	for _, part := range []string{intPart, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return 0, fmt.Errorf("%w: %q", errBadAmount, s)
			}
		}
	}
	for i := 0; i < len(intPart); i++ {
		fen = fen*10 + int64(intPart[i]-'0')
	}
	fen *= 100
	switch len(frac) {
	case 1:
		fen += int64(frac[0]-'0') * 10
	case 2:
		fen += int64(frac[0]-'0')*10 + int64(frac[1]-'0')
	}
	if fen <= 0 || fen > maxAmountFen {
		return 0, fmt.Errorf("%w: %q", errBadAmount, s)
	}
	return fen, nil
}

// formatYuan renders fen as Alipay writes amounts: yuan with exactly two decimals ("0.01", "-3.50").
func formatYuan(fen int64) string {
	sign := ""
	u := uint64(fen)
	if fen < 0 {
		sign = "-"
		u = uint64(-fen) // fen is never MinInt64 here: amounts are bounded by maxAmountFen
	}
	frac := u % 100
	s := sign + strconv.FormatUint(u/100, 10) + "."
	if frac < 10 {
		s += "0"
	}
	return s + strconv.FormatUint(frac, 10)
}
