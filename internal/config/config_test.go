package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func write(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadFileEnvAndSecrets(t *testing.T) {
	key := write(t, "apiv3", "0123456789abcdef0123456789abcdef\n")
	pk := write(t, "pk.pem", "-----BEGIN PRIVATE KEY-----\n")
	pub := write(t, "pub.pem", "-----BEGIN PUBLIC KEY-----\n")
	path := write(t, "hutong.toml", `
listen = "127.0.0.1:9000"
payment_ttl = "30m"
[wechatpay]
mchid = "1900000001"
appid = "wx1"
merchant_serial_no = "ABC"
merchant_private_key_file = "`+pk+`"
apiv3_key_file = "`+key+`"
public_key_id = "PUB_KEY_ID_1"
public_key_file = "`+pub+`"
`)
	c, err := Load(path, env(map[string]string{"HUTONG_LISTEN": "127.0.0.1:9100", "HUTONG_ALIPAY_APP_ID": "2021", "HUTONG_ALIPAY_APP_PRIVATE_KEY": "k", "HUTONG_ALIPAY_PUBLIC_KEY": "p"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9100" || c.PublicURL != "http://127.0.0.1:9100" || c.PaymentTTL.Duration != 30*time.Minute {
		t.Fatalf("got listen %q public %q ttl %s", c.Listen, c.PublicURL, c.PaymentTTL)
	}
	if c.WeChatPay.APIv3Key != "0123456789abcdef0123456789abcdef" || c.WeChatPay.Mode != "public_key" {
		t.Fatalf("wechatpay secrets not read: %+v", c.WeChatPay.Mode)
	}
	if c.Alipay == nil || c.Alipay.AppID != "2021" || c.Alipay.AppPrivateKey != "k" {
		t.Fatalf("alipay from env: %+v", c.Alipay)
	}
}

func TestErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{`listen = "x"` + "\nbogus = 1", `unknown field "bogus"`},
		{`public_url = "ftp://x"`, "public_url"},
		{`database_url = "mysql://x"`, "database_url"},
		{`log_level = "loud"`, "log_level"},
		{`payment_ttl = "10s"`, "payment_ttl"},
		{"[wechatpay]\nmchid = \"1\"", "wechatpay.appid"},
		{"[alipay]\napp_id = \"1\"", "alipay.app_private_key_file"},
		{"[wechatpay]\nmode = \"magic\"", "wechatpay.mode"},
	} {
		_, err := Load(write(t, "c.toml", tc.file), env(nil))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("file %q: err = %v, want mention of %q", tc.file, err, tc.want)
		}
	}
}
