package webhook

import (
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/payment"
)

func TestValidateURL(t *testing.T) {
	cases := []struct {
		url        string
		test, live bool // accepted in test mode, in live mode
	}{
		{"https://shop.example.com/hooks/hutong", true, true},
		{"https://shop.example.com:8443/hooks?token=abc", true, true},
		{"https://shop.example.com./hooks", true, true},
		{"https://93.184.216.34/hooks", true, true},
		{"https://[2606:2800:220:1:248:1893:25c8:1946]/hooks", true, true},
		{"http://shop.example.com/hooks", true, false},
		{"http://127.0.0.1:8080/hooks", true, false},
		{"https://127.0.0.1/hooks", true, false},
		{"https://localhost/hooks", true, false},
		{"https://api.localhost/hooks", true, false},
		{"https://10.1.2.3/hooks", true, false},
		{"https://172.16.0.1/hooks", true, false},
		{"https://192.168.1.1/hooks", true, false},
		{"https://169.254.169.254/latest/meta-data", true, false},
		{"https://100.64.0.1/hooks", true, false},
		{"https://0.0.0.0/hooks", true, false},
		{"https://[::1]/hooks", true, false},
		{"https://[fd00::1]/hooks", true, false},
		{"https://[fe80::1]/hooks", true, false},
		{"https://[::ffff:127.0.0.1]/hooks", true, false},
		{"https://[64:ff9b::a00:1]/hooks", true, false}, // NAT64 of 10.0.0.1
		{"https://224.0.0.1/hooks", true, false},
		// Never valid.
		{"", false, false},
		{"ftp://shop.example.com/", false, false},
		{"javascript:alert(1)", false, false},
		{"https:shop.example.com", false, false},
		{"/hooks", false, false},
		{"https:///hooks", false, false},
		{"https://user:pass@shop.example.com/hooks", false, false},
		{"https://shop.example.com/hooks#frag", false, false},
		{"https://shop.example.com:0/", false, false},
		{"https://shop.example.com:70000/", false, false},
		{"https://127.1/hooks", false, false},
		{"https://2130706433/hooks", false, false},
		{"https://0x7f.0.0.1/hooks", false, false},
		{"https://[fe80::1%25eth0]/hooks", false, false},
		{"https://-bad.example.com/", false, false},
		{"https://shop..example.com/", false, false},
		{"https://" + strings.Repeat("a", 64) + ".com/", false, false},
		{"https://shop.example.com/" + strings.Repeat("a", 2048), false, false},
	}
	for _, tc := range cases {
		for _, live := range []bool{false, true} {
			want := tc.test
			if live {
				want = tc.live
			}
			err := ValidateURL(tc.url, live)
			if (err == nil) != want {
				t.Errorf("ValidateURL(%.80q, live=%v): got %v, want accepted=%v", tc.url, live, err, want)
			}
			if err != nil {
				var pe *payment.Error
				if !asPaymentError(err, &pe) || pe.Param != "url" || pe.Kind != payment.Invalid {
					t.Errorf("ValidateURL(%.80q): error %v is not InvalidParam(url)", tc.url, err)
				}
			}
		}
	}
}

func FuzzValidateURL(f *testing.F) {
	for _, s := range []string{"https://shop.example.com/hooks", "http://127.0.0.1:8080/x", "https://[::ffff:10.0.0.1]/",
		"https://127.1/", "https://a.b.c.d.e/", "https://[fe80::1%25eth0]/", "https://xn--fsq.example/"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, raw string, live bool) {
		if ValidateURL(raw, live) != nil {
			return
		}
		// Whatever passes is an absolute http(s) URL a request can be built for.
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil {
			t.Fatalf("accepted %q", raw)
		}
		if live {
			if u.Scheme != "https" {
				t.Fatalf("live accepted non-https %q", raw)
			}
			if a, err := netip.ParseAddr(u.Hostname()); err == nil && blockedAddr(a) {
				t.Fatalf("live accepted private %q", raw)
			}
		}
		// And passing in live mode implies passing in test mode.
		if live && ValidateURL(raw, false) != nil {
			t.Fatalf("%q passes live but not test", raw)
		}
	})
}

func TestValidateEvents(t *testing.T) {
	got, err := ValidateEvents([]string{"refund.failed", "payment.succeeded", "refund.failed"})
	if err != nil {
		t.Fatal(err)
	}
	want := []payment.EventType{payment.EventRefundFailed, payment.EventPaymentSucceeded}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got, err := ValidateEvents(nil); err != nil || got != nil {
		t.Errorf("nil: got %v, %v; want nil, nil (every type)", got, err)
	}
	for _, bad := range [][]string{{"payment.created"}, {""}, {"PAYMENT.SUCCEEDED"}, {"payment.succeeded", "*"}} {
		_, err := ValidateEvents(bad)
		var pe *payment.Error
		if !asPaymentError(err, &pe) || pe.Param != "events" {
			t.Errorf("ValidateEvents(%q): got %v, want InvalidParam(events)", bad, err)
		}
	}
}

func TestSubscribes(t *testing.T) {
	all := &Endpoint{}
	some := &Endpoint{Events: []payment.EventType{payment.EventRefundSucceeded}}
	for _, typ := range payment.EventTypes {
		if !all.Subscribes(typ) {
			t.Errorf("an endpoint without events does not get %s", typ)
		}
		if got := some.Subscribes(typ); got != (typ == payment.EventRefundSucceeded) {
			t.Errorf("Subscribes(%s) = %v", typ, got)
		}
	}
}

func TestSigningKeysRotation(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	old, cur := NewSecret(), NewSecret()
	e := &Endpoint{ID: "we_1", Secret: cur, PreviousSecret: old, PreviousSecretExpiresAt: t0.Add(24 * time.Hour)}
	keys, err := e.SigningKeys(t0)
	if err != nil || len(keys) != 2 || string(keys[0]) != string(mustKey(t, cur)) || string(keys[1]) != string(mustKey(t, old)) {
		t.Fatalf("before expiry: got %d keys, %v; want current then previous", len(keys), err)
	}
	keys, err = e.SigningKeys(t0.Add(24 * time.Hour))
	if err != nil || len(keys) != 1 || string(keys[0]) != string(mustKey(t, cur)) {
		t.Fatalf("at expiry: got %d keys, %v; want the current one only", len(keys), err)
	}
	e.Secret = "whsec_broken"
	if _, err := e.SigningKeys(t0); err == nil || strings.Contains(err.Error(), "broken") {
		t.Fatalf("broken secret: got %v", err)
	}
}
