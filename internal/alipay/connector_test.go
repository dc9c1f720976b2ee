package alipay

import (
	"strings"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/payment"
)

func TestNewValidatesConfig(t *testing.T) {
	k := keysOnce()
	good := Config{AppID: testAppID, AppPrivateKey: k.appPEM, AlipayPublicKey: k.alipayPubPEM}
	cases := []struct {
		name      string
		edit      func(*Config)
		wantField string
	}{
		{"no app id", func(c *Config) { c.AppID = "" }, "AppID"},
		{"app id with space", func(c *Config) { c.AppID = "2021 1" }, "AppID"},
		{"no private key", func(c *Config) { c.AppPrivateKey = "" }, "AppPrivateKey"},
		{"garbage private key", func(c *Config) { c.AppPrivateKey = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n" }, "AppPrivateKey"},
		{"no public key", func(c *Config) { c.AlipayPublicKey = "" }, "AlipayPublicKey"},
		{"garbage public key", func(c *Config) { c.AlipayPublicKey = "not a key" }, "AlipayPublicKey"},
		{"private key as public key", func(c *Config) { c.AlipayPublicKey = k.appPEM }, "AlipayPublicKey"},
		{"relative gateway", func(c *Config) { c.GatewayURL = "/gateway.do" }, "GatewayURL"},
		{"ftp gateway", func(c *Config) { c.GatewayURL = "ftp://127.0.0.1/gateway.do" }, "GatewayURL"},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, "Timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.edit(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.wantField) {
				t.Fatalf("New: %v, want an error naming %s", err, tc.wantField)
			}
		})
	}
	c, err := New(good)
	if err != nil {
		t.Fatalf("New(good): %v", err)
	}
	if c.Name() != payment.Alipay || c.AppID() != testAppID || c.timeout != DefaultTimeout {
		t.Fatalf("connector = %s %s %s", c.Name(), c.AppID(), c.timeout)
	}
	// Bare base64 keys, as the open platform shows them, are accepted too.
	bare := func(pemText string) string {
		lines := strings.Split(strings.TrimSpace(pemText), "\n")
		return strings.Join(lines[1:len(lines)-1], "")
	}
	if _, err := New(Config{AppID: testAppID, AppPrivateKey: bare(k.appPEM), AlipayPublicKey: bare(k.alipayPubPEM)}); err != nil {
		t.Fatalf("New with bare base64 keys: %v", err)
	}
}
