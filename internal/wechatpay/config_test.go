package wechatpay

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestConfigErrorsNameTheField(t *testing.T) {
	m, w := testKeys(t)
	good := func() Config {
		return Config{MchID: testMchID, AppID: testAppID, MerchantSerialNo: "SERIAL", MerchantPrivateKey: m, APIv3Key: testAPIv3Key,
			PublicKeyID: testPubKeyID, PublicKey: &w.PublicKey}
	}
	if c, err := New(context.Background(), good()); err != nil {
		t.Fatalf("good config: %v", err)
	} else {
		c.Close()
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(m)
	pkcs8 := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(m)}))
	for _, tc := range []struct {
		field string
		edit  func(c *Config)
	}{
		{"MchID", func(c *Config) { c.MchID = "" }},
		{"AppID", func(c *Config) { c.AppID = "" }},
		{"MerchantSerialNo", func(c *Config) { c.MerchantSerialNo = "" }},
		{"MerchantPrivateKey", func(c *Config) { c.MerchantPrivateKey = nil }},
		{"MerchantPrivateKey", func(c *Config) { c.MerchantPrivateKeyPEM = pkcs8 }},
		{"MerchantPrivateKey", func(c *Config) { c.MerchantPrivateKey = small }},
		{"MerchantPrivateKeyPEM", func(c *Config) { c.MerchantPrivateKey, c.MerchantPrivateKeyPEM = nil, pkcs1 }},
		{"MerchantPrivateKeyPEM", func(c *Config) { c.MerchantPrivateKey, c.MerchantPrivateKeyPEM = nil, "garbage" }},
		{"APIv3Key", func(c *Config) { c.APIv3Key = "short" }},
		{"Mode", func(c *Config) { c.Mode = "platform" }},
		{"PublicKeyID", func(c *Config) { c.PublicKeyID = "" }},
		{"PublicKey", func(c *Config) { c.PublicKey = nil }},
		{"PublicKeyPEM", func(c *Config) { c.PublicKey, c.PublicKeyPEM = nil, pkcs8 }},
		{"PublicKeyID", func(c *Config) { c.Mode, c.PublicKeyID = ModeBoth, "" }},
		{"ResponseSerial", func(c *Config) { c.ResponseSerial = ModeCertificate }},
		{"ResponseSerial", func(c *Config) { c.Mode, c.ResponseSerial = ModeCertificate, ModePublicKey }},
		{"ResponseSerial", func(c *Config) { c.ResponseSerial = "PUB_KEY_ID_1" }},
		{"BaseURL", func(c *Config) { c.BaseURL = "127.0.0.1:8091" }},
		{"BaseURL", func(c *Config) { c.BaseURL = "http://127.0.0.1:8091/prefix" }},
		{"BaseURL", func(c *Config) { c.BaseURL = "ftp://127.0.0.1" }},
		{"Timeout", func(c *Config) { c.Timeout = -1 }},
	} {
		cfg := good()
		tc.edit(&cfg)
		_, err := New(context.Background(), cfg)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: got %v, want an error naming %s", tc.field, err, tc.field)
			continue
		}
		if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), testAPIv3Key) {
			t.Errorf("%s: error text leaks key material: %v", tc.field, err)
		}
	}
	// PEM forms work where the parsed keys do.
	cfg := good()
	pub, _ := x509.MarshalPKIXPublicKey(&w.PublicKey)
	cfg.MerchantPrivateKey, cfg.MerchantPrivateKeyPEM = nil, pkcs8
	cfg.PublicKey, cfg.PublicKeyPEM = nil, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	if c, err := New(context.Background(), cfg); err != nil {
		t.Fatalf("PEM config: %v", err)
	} else {
		c.Close()
	}
}

// Several connectors (or the Alipay one, with the same help text) share one gauge.
func TestSkewGaugeSharedRegistry(t *testing.T) {
	m, w := testKeys(t)
	reg := prometheus.NewPedanticRegistry()
	for range 2 {
		c, err := New(context.Background(), Config{MchID: testMchID, AppID: testAppID, MerchantSerialNo: "S", MerchantPrivateKey: m,
			APIv3Key: testAPIv3Key, PublicKeyID: testPubKeyID, PublicKey: &w.PublicKey, Metrics: reg})
		if err != nil {
			t.Fatalf("second connector on one registry: %v", err)
		}
		c.Close()
	}
	other := prometheus.NewGauge(prometheus.GaugeOpts{Name: SkewMetricName, Help: "something else"})
	reg2 := prometheus.NewPedanticRegistry()
	reg2.MustRegister(other)
	if _, err := New(context.Background(), Config{MchID: testMchID, AppID: testAppID, MerchantSerialNo: "S", MerchantPrivateKey: m,
		APIv3Key: testAPIv3Key, PublicKeyID: testPubKeyID, PublicKey: &w.PublicKey, Metrics: reg2}); err == nil {
		t.Fatal("an inconsistent metric of the same name went unnoticed")
	}
}
