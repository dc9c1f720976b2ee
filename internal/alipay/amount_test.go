package alipay

import (
	"math"
	"testing"

	"github.com/hutong-pay/hutong/internal/payment"
)

func TestParseYuan(t *testing.T) {
	good := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"0.00", 0},
		{"0.01", 1},
		{"0.1", 10},
		{"0.10", 10},
		{"1", 100},
		{"1.5", 150},
		{"12.34", 1234},
		{"100000000", payment.MaxAmount},
		{"100000000.00", payment.MaxAmount},
		{"99999999.99", payment.MaxAmount - 1},
	}
	for _, tc := range good {
		got, err := ParseYuan(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseYuan(%q) = %d, %v; want %d, nil", tc.in, got, err, tc.want)
		}
	}
	bad := []string{
		"", ".", "1.", ".5", "-1", "+1", "1.234", "1e2", " 1", "1 ", "1,00", "01", "00.50", "0x10",
		"100000000.01", "1000000000", "9223372036854775807", "99999999999999999999999", "1.-1", "1..0",
		"１", "1.0\x00", "NaN", "Inf", "1_000",
	}
	for _, in := range bad {
		if got, err := ParseYuan(in); err == nil {
			t.Errorf("ParseYuan(%q) = %d, nil; want an error", in, got)
		}
	}
}

func TestFormatYuan(t *testing.T) {
	cases := []struct {
		in   int64
		want string
	}{
		{0, "0.00"}, {1, "0.01"}, {10, "0.10"}, {100, "1.00"}, {1234, "12.34"},
		{payment.MaxAmount, "100000000.00"}, {-5, "-0.05"},
		{math.MinInt64, "-92233720368547758.08"},
	}
	for _, tc := range cases {
		if got := FormatYuan(tc.in); got != tc.want {
			t.Errorf("FormatYuan(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzParseYuan(f *testing.F) {
	for _, s := range []string{"0.01", "12.3", "100000000.00", "1e3", "-0.01", "00.1", "1.234", "", ".", "9.99"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseYuan(s)
		if err != nil {
			return
		}
		if v < 0 || v > payment.MaxAmount {
			t.Fatalf("ParseYuan(%q) = %d, outside [0, MaxAmount]", s, v)
		}
		back := FormatYuan(v)
		v2, err := ParseYuan(back)
		if err != nil || v2 != v {
			t.Fatalf("round trip of %q: FormatYuan(%d) = %q parses to %d, %v", s, v, back, v2, err)
		}
		// Two decimals is the canonical form: it must come back unchanged.
		if len(s) >= 3 && s[len(s)-3] == '.' && back != s {
			t.Fatalf("canonical %q formatted back as %q", s, back)
		}
	})
}
