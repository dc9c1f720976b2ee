package webhook

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/hutong-pay/hutong/internal/payment"
)

func asPaymentError(err error, pe **payment.Error) bool { return errors.As(err, pe) }

func TestBlockedAddr(t *testing.T) {
	blocked := []string{
		"127.0.0.1", "127.255.255.254", "10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.0.1",
		"169.254.169.254", "100.64.0.1", "100.127.255.255", "0.0.0.0", "0.1.2.3", "224.0.0.1", "239.255.255.250",
		"255.255.255.255", "240.0.0.1", "192.0.0.8", "198.18.0.1", "192.0.2.1",
		"::", "::1", "::127.0.0.1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
		"fc00::1", "fd12:3456::1", "fe80::1", "fec0::1", "ff02::1", "ff05::2",
		"64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::1", "2002:7f00:1::1", "2002:c0a8:101::1",
		"2001:0:4136:e378::1", "2001:db8::1", "100::1",
	}
	public := []string{
		"93.184.216.34", "8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.0", "172.32.0.1", "192.169.0.1",
		"11.0.0.1", "223.255.255.255", "2606:2800:220:1:248:1893:25c8:1946", "2001:4860:4860::8888",
		"64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8",
	}
	for _, s := range blocked {
		if !blockedAddr(netip.MustParseAddr(s)) {
			t.Errorf("%s is not blocked", s)
		}
	}
	for _, s := range public {
		if blockedAddr(netip.MustParseAddr(s)) {
			t.Errorf("public %s is blocked", s)
		}
	}
	if !blockedAddr(netip.Addr{}) {
		t.Error("the zero Addr is not blocked")
	}
}

func TestPublicOnlyControl(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:443":      false,
		"[::1]:443":          false,
		"[fe80::1%eth0]:443": false,
		"10.0.0.1:80":        false,
		"93.184.216.34:443":  true,
		"[2606:2800::1]:443": true,
		"not-an-address":     false,
	} {
		err := publicOnly("tcp", addr, nil)
		if (err == nil) != ok {
			t.Errorf("publicOnly(%s): got %v, want allowed=%v", addr, err, ok)
		}
		if err != nil && !errors.Is(err, ErrBlockedAddress) {
			t.Errorf("publicOnly(%s): %v is not ErrBlockedAddress", addr, err)
		}
	}
}
