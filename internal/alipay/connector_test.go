package alipay

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	sdk "github.com/smartwalle/alipay/v3"

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

func TestClassify(t *testing.T) {
	refusal := sdk.Error{Code: sdk.CodeBusinessFailed, Msg: "Business Failed", SubCode: "ACQ.TRADE_HAS_SUCCESS", SubMsg: "交易已被支付"}
	cases := []struct {
		name     string
		err      error
		answer   sdk.Error
		wantNil  bool
		wantCode string // ProviderCode; "" means unknown outcome
	}{
		{"success", nil, sdk.Error{Code: sdk.CodeSuccess}, true, ""},
		{"paying", nil, sdk.Error{Code: sdk.CodeOrderSuccessPayInProcess}, true, ""},
		{"signed refusal", nil, refusal, false, "ACQ.TRADE_HAS_SUCCESS"},
		{"refusal without sub_code", nil, sdk.Error{Code: sdk.CodeInvalidParam}, false, "40002"},
		{"signed system error", nil, sdk.Error{Code: sdk.CodeUnknowError, SubCode: "isp.unknow-error"}, false, ""},
		{"ACQ.SYSTEM_ERROR", nil, sdk.Error{Code: sdk.CodeBusinessFailed, SubCode: "ACQ.SYSTEM_ERROR"}, false, ""},
		{"no code", nil, sdk.Error{}, false, ""},
		{"network", errors.New("connection refused"), sdk.Error{}, false, ""},
		{"timeout", context.DeadlineExceeded, sdk.Error{}, false, ""},
		{"bad signature", sdk.ErrSignNotFound, sdk.Error{}, false, ""},
		{"error_response refusal", &sdk.Error{Code: sdk.CodeInvalidParam, SubCode: "isv.invalid-app-id"}, sdk.Error{}, false, "isv.invalid-app-id"},
		{"unsigned success", &sdk.Error{Code: sdk.CodeSuccess}, sdk.Error{}, false, ""},
		{"unsigned system error", &sdk.Error{Code: sdk.CodeUnknowError}, sdk.Error{}, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := classify("test", tc.err, tc.answer)
			if tc.wantNil {
				if got != nil {
					t.Fatalf("classify = %v, want nil", got)
				}
				return
			}
			if got == nil || got.Kind != payment.ProviderError || got.ProviderCode != tc.wantCode {
				t.Fatalf("classify = %#v, want provider error with ProviderCode %q", got, tc.wantCode)
			}
			wantCode := CodeProviderError
			if tc.wantCode == "" {
				wantCode = CodeProviderUnavailable
			}
			if got.Code != wantCode {
				t.Fatalf("Code = %q, want %q", got.Code, wantCode)
			}
		})
	}
}
