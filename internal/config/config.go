// Package config reads a gateway node's configuration: a TOML file, then environment overrides.
// Secrets (keys, database passwords) come only from files or the environment, never from flags,
// so they stay out of process listings and shell history.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is a gateway node's configuration.
type Config struct {
	Listen          string   `toml:"listen"`       // e.g. 127.0.0.1:8080
	PublicURL       string   `toml:"public_url"`   // where buyers and wallets reach this node
	DataDir         string   `toml:"data_dir"`     // the SQLite database lives here
	DatabaseURL     string   `toml:"database_url"` // postgres://… switches to PostgreSQL; may hold a password, so prefer the env or a file
	DatabaseURLFile string   `toml:"database_url_file"`
	LogLevel        string   `toml:"log_level"` // debug, info, warn, error
	PaymentTTL      Duration `toml:"payment_ttl"`
	Livemode        bool     `toml:"livemode"` // live wallets: webhooks never go to private addresses
	// IdempotencyStaleAfter is how long an Idempotency-Key may stay claimed by a request that
	// never finished (its node died) before a retry may take it over.
	IdempotencyStaleAfter Duration `toml:"idempotency_stale_after"`
	// JobTimeout bounds one background job (a wallet poll, an expiry, a webhook delivery);
	// JobsRescueAfter is how long a job may stay running before it is presumed lost with its
	// node and run again elsewhere. It must be longer than JobTimeout.
	JobTimeout      Duration `toml:"job_timeout"`
	JobsRescueAfter Duration `toml:"jobs_rescue_after"`
	// Synchronous is SQLite's durability: FULL (default, every acknowledged payment survives power loss) or NORMAL.
	Synchronous string `toml:"sqlite_synchronous"`

	WeChatPay *WeChatPay `toml:"wechatpay"`
	Alipay    *Alipay    `toml:"alipay"`
}

// WeChatPay configures the WeChat Pay account.
type WeChatPay struct {
	MchID                  string   `toml:"mchid"`
	AppID                  string   `toml:"appid"`
	AppSecretFile          string   `toml:"app_secret_file"` // mini-program login (jscode2session)
	AppSecret              string   `toml:"-"`
	MerchantSerialNo       string   `toml:"merchant_serial_no"`
	MerchantPrivateKeyFile string   `toml:"merchant_private_key_file"`
	MerchantPrivateKey     string   `toml:"-"` // PEM, read from the file or HUTONG_WECHATPAY_MERCHANT_PRIVATE_KEY
	APIv3KeyFile           string   `toml:"apiv3_key_file"`
	APIv3Key               string   `toml:"-"`
	PublicKeyID            string   `toml:"public_key_id"`
	PublicKeyFile          string   `toml:"public_key_file"`
	PublicKey              string   `toml:"-"`
	Mode                   string   `toml:"mode"`            // public_key | certificate | both
	ResponseSerial         string   `toml:"response_serial"` // public_key | certificate
	BaseURL                string   `toml:"base_url"`        // "" = the real api.mch.weixin.qq.com
	Timeout                Duration `toml:"timeout"`
}

// Alipay configures the Alipay app.
type Alipay struct {
	AppID               string   `toml:"app_id"`
	AppPrivateKeyFile   string   `toml:"app_private_key_file"`
	AppPrivateKey       string   `toml:"-"`
	AlipayPublicKeyFile string   `toml:"alipay_public_key_file"`
	AlipayPublicKey     string   `toml:"-"`
	GatewayURL          string   `toml:"gateway_url"` // "" = the real openapi.alipay.com
	Timeout             Duration `toml:"timeout"`
}

// Duration reads "2h", "90s" and the like.
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		Listen:                "127.0.0.1:8080",
		DataDir:               DefaultDataDir(),
		LogLevel:              "info",
		PaymentTTL:            Duration{2 * time.Hour},
		IdempotencyStaleAfter: Duration{5 * time.Minute},
		JobTimeout:            Duration{time.Minute},
		JobsRescueAfter:       Duration{3 * time.Minute},
		Synchronous:           "FULL",
	}
}

// DefaultDataDir is a folder under the user's cache directory.
func DefaultDataDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "hutong")
}

// Load reads path (if not empty), then the environment (getenv, usually os.Getenv), reads secret
// files, and validates. Errors name the offending field.
func Load(path string, getenv func(string) string) (Config, error) {
	c := Default()
	if path != "" {
		md, err := toml.DecodeFile(path, &c)
		if err != nil {
			return c, fmt.Errorf("config: %s: %w", path, err)
		}
		if undec := md.Undecoded(); len(undec) > 0 {
			return c, fmt.Errorf("config: %s: unknown field %q", path, undec[0].String())
		}
	}
	if err := c.applyEnv(getenv); err != nil {
		return c, err
	}
	if err := c.readSecrets(getenv); err != nil {
		return c, err
	}
	return c, c.Validate()
}

func (c *Config) applyEnv(getenv func(string) string) error {
	str := map[string]*string{
		"HUTONG_LISTEN": &c.Listen, "HUTONG_PUBLIC_URL": &c.PublicURL, "HUTONG_DATA_DIR": &c.DataDir,
		"HUTONG_DATABASE_URL": &c.DatabaseURL, "HUTONG_LOG_LEVEL": &c.LogLevel, "HUTONG_SQLITE_SYNCHRONOUS": &c.Synchronous,
	}
	for k, p := range str {
		if v := getenv(k); v != "" {
			*p = v
		}
	}
	if v := getenv("HUTONG_PAYMENT_TTL"); v != "" {
		if err := c.PaymentTTL.UnmarshalText([]byte(v)); err != nil {
			return fmt.Errorf("config: HUTONG_PAYMENT_TTL: %w", err)
		}
	}
	if v := getenv("HUTONG_IDEMPOTENCY_STALE_AFTER"); v != "" {
		if err := c.IdempotencyStaleAfter.UnmarshalText([]byte(v)); err != nil {
			return fmt.Errorf("config: HUTONG_IDEMPOTENCY_STALE_AFTER: %w", err)
		}
	}
	for env, d := range map[string]*Duration{"HUTONG_JOB_TIMEOUT": &c.JobTimeout, "HUTONG_JOBS_RESCUE_AFTER": &c.JobsRescueAfter} {
		if v := getenv(env); v != "" {
			if err := d.UnmarshalText([]byte(v)); err != nil {
				return fmt.Errorf("config: %s: %w", env, err)
			}
		}
	}
	if v := getenv("HUTONG_LIVEMODE"); v != "" {
		c.Livemode = v == "1" || strings.EqualFold(v, "true")
	}
	if getenv("HUTONG_WECHATPAY_MCHID") != "" && c.WeChatPay == nil {
		c.WeChatPay = &WeChatPay{}
	}
	if w := c.WeChatPay; w != nil {
		for k, p := range map[string]*string{
			"HUTONG_WECHATPAY_MCHID": &w.MchID, "HUTONG_WECHATPAY_APPID": &w.AppID,
			"HUTONG_WECHATPAY_MERCHANT_SERIAL_NO": &w.MerchantSerialNo, "HUTONG_WECHATPAY_PUBLIC_KEY_ID": &w.PublicKeyID,
			"HUTONG_WECHATPAY_MODE": &w.Mode, "HUTONG_WECHATPAY_BASE_URL": &w.BaseURL,
		} {
			if v := getenv(k); v != "" {
				*p = v
			}
		}
	}
	if getenv("HUTONG_ALIPAY_APP_ID") != "" && c.Alipay == nil {
		c.Alipay = &Alipay{}
	}
	if a := c.Alipay; a != nil {
		for k, p := range map[string]*string{"HUTONG_ALIPAY_APP_ID": &a.AppID, "HUTONG_ALIPAY_GATEWAY_URL": &a.GatewayURL} {
			if v := getenv(k); v != "" {
				*p = v
			}
		}
	}
	return nil
}

// secret reads a secret from the environment variable env, else from file; field names it in errors.
func secret(field, file, env string, getenv func(string) string) (string, error) {
	if v := getenv(env); v != "" {
		return v, nil
	}
	if file == "" {
		return "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("config: %s: %w", field, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func (c *Config) readSecrets(getenv func(string) string) error {
	var err error
	if c.DatabaseURL == "" {
		if c.DatabaseURL, err = secret("database_url_file", c.DatabaseURLFile, "HUTONG_DATABASE_URL", getenv); err != nil {
			return err
		}
	}
	if w := c.WeChatPay; w != nil {
		for _, s := range []struct {
			field, file, env string
			dst              *string
		}{
			{"wechatpay.merchant_private_key_file", w.MerchantPrivateKeyFile, "HUTONG_WECHATPAY_MERCHANT_PRIVATE_KEY", &w.MerchantPrivateKey},
			{"wechatpay.apiv3_key_file", w.APIv3KeyFile, "HUTONG_WECHATPAY_APIV3_KEY", &w.APIv3Key},
			{"wechatpay.public_key_file", w.PublicKeyFile, "HUTONG_WECHATPAY_PUBLIC_KEY", &w.PublicKey},
			{"wechatpay.app_secret_file", w.AppSecretFile, "HUTONG_WECHATPAY_APP_SECRET", &w.AppSecret},
		} {
			if *s.dst, err = secret(s.field, s.file, s.env, getenv); err != nil {
				return err
			}
		}
	}
	if a := c.Alipay; a != nil {
		if a.AppPrivateKey, err = secret("alipay.app_private_key_file", a.AppPrivateKeyFile, "HUTONG_ALIPAY_APP_PRIVATE_KEY", getenv); err != nil {
			return err
		}
		if a.AlipayPublicKey, err = secret("alipay.alipay_public_key_file", a.AlipayPublicKeyFile, "HUTONG_ALIPAY_PUBLIC_KEY", getenv); err != nil {
			return err
		}
	}
	return nil
}

// Validate reports the first field that is wrong.
func (c *Config) Validate() error {
	if c.Listen == "" {
		return errors.New("config: listen: required")
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.Listen
	}
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("config: public_url: %q is not an absolute http(s) URL", c.PublicURL)
	}
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		return errors.New("config: database_url: must start with postgres:// (leave it empty for embedded SQLite)")
	}
	if c.DatabaseURL == "" && c.DataDir == "" {
		return errors.New("config: data_dir: required for embedded SQLite")
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("config: log_level: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	if c.PaymentTTL.Duration < time.Minute || c.PaymentTTL.Duration > 7*24*time.Hour {
		return fmt.Errorf("config: payment_ttl: %s is not between 1m and 168h", c.PaymentTTL)
	}
	if c.IdempotencyStaleAfter.Duration < time.Second {
		return fmt.Errorf("config: idempotency_stale_after: %s is shorter than 1s", c.IdempotencyStaleAfter)
	}
	if c.JobTimeout.Duration < time.Second {
		return fmt.Errorf("config: job_timeout: %s is shorter than 1s", c.JobTimeout)
	}
	if c.JobsRescueAfter.Duration <= c.JobTimeout.Duration {
		return fmt.Errorf("config: jobs_rescue_after: %s must be longer than job_timeout (%s)", c.JobsRescueAfter, c.JobTimeout)
	}
	switch strings.ToUpper(c.Synchronous) {
	case "FULL", "NORMAL":
		c.Synchronous = strings.ToUpper(c.Synchronous)
	default:
		return fmt.Errorf("config: sqlite_synchronous: %q is not FULL or NORMAL", c.Synchronous)
	}
	if w := c.WeChatPay; w != nil {
		req := []struct{ field, v string }{
			{"wechatpay.mchid", w.MchID}, {"wechatpay.appid", w.AppID}, {"wechatpay.merchant_serial_no", w.MerchantSerialNo},
			{"wechatpay.merchant_private_key_file", w.MerchantPrivateKey}, {"wechatpay.apiv3_key_file", w.APIv3Key},
		}
		if w.Mode == "" {
			w.Mode = "public_key"
		}
		switch w.Mode {
		case "public_key", "both":
			req = append(req, struct{ field, v string }{"wechatpay.public_key_id", w.PublicKeyID}, struct{ field, v string }{"wechatpay.public_key_file", w.PublicKey})
		case "certificate":
		default:
			return fmt.Errorf("config: wechatpay.mode: %q is not public_key, certificate or both", w.Mode)
		}
		for _, r := range req {
			if r.v == "" {
				return fmt.Errorf("config: %s: required when [wechatpay] is configured", r.field)
			}
		}
		if len(w.APIv3Key) != 32 {
			return errors.New("config: wechatpay.apiv3_key_file: the APIv3 key must be 32 bytes")
		}
		if w.BaseURL != "" {
			if err := checkURL("wechatpay.base_url", w.BaseURL); err != nil {
				return err
			}
		}
	}
	if a := c.Alipay; a != nil {
		for _, r := range []struct{ field, v string }{
			{"alipay.app_id", a.AppID}, {"alipay.app_private_key_file", a.AppPrivateKey}, {"alipay.alipay_public_key_file", a.AlipayPublicKey},
		} {
			if r.v == "" {
				return fmt.Errorf("config: %s: required when [alipay] is configured", r.field)
			}
		}
		if a.GatewayURL != "" {
			if err := checkURL("alipay.gateway_url", a.GatewayURL); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkURL(field, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("config: %s: %q is not an absolute http(s) URL", field, raw)
	}
	return nil
}
