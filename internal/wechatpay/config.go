package wechatpay

import (
	"crypto/rsa"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"
)

// Verification modes: which WeChat Pay key material the connector trusts.
const (
	// ModePublicKey verifies with the WeChat Pay public key (PUB_KEY_ID_…), the default for new merchants.
	ModePublicKey = "public_key"
	// ModeCertificate verifies with platform certificates downloaded from /v3/certificates.
	ModeCertificate = "certificate"
	// ModeBoth trusts both and routes by the Wechatpay-Serial of each message: the state of a
	// merchant migrating from certificates to the public key, when notifications may arrive signed
	// with either.
	ModeBoth = "both"
)

// Config configures a Connector. Secrets (keys, APIv3 key) come from the caller, never from flags.
type Config struct {
	MchID            string // merchant id (商户号)
	AppID            string // the appid orders are placed under (mini program, official account or app)
	MerchantSerialNo string // serial number of the merchant API certificate whose key signs requests

	// The merchant's API private key: either parsed, or as a PKCS#8 "PRIVATE KEY" PEM.
	MerchantPrivateKey    *rsa.PrivateKey
	MerchantPrivateKeyPEM string

	APIv3Key string // 32 bytes; decrypts notifications and downloaded certificates

	// The WeChat Pay public key and its id (PUB_KEY_ID_…), for ModePublicKey and ModeBoth:
	// either parsed, or as a PKIX "PUBLIC KEY" PEM.
	PublicKeyID  string
	PublicKey    *rsa.PublicKey
	PublicKeyPEM string

	Mode string // ModePublicKey (default when empty) | ModeCertificate | ModeBoth

	// ResponseSerial chooses which key WeChat Pay signs API responses with, by naming it in each
	// request's Wechatpay-Serial header: ModePublicKey or ModeCertificate. Empty means the only key
	// of the mode, and the public key in ModeBoth.
	ResponseSerial string

	// BaseURL is where the API lives: "" for the real https://api.mch.weixin.qq.com, else a
	// scheme://host[:port] such as the sandbox. Requests are redirected there by the transport;
	// the signature covers path and query only, so this is safe.
	BaseURL string

	Timeout time.Duration         // per wallet call; 0 means 10 s
	Now     func() time.Time      // nil: time.Now
	Logger  *slog.Logger          // nil: discard
	Metrics prometheus.Registerer // optional; the clock-skew gauge is registered here

	base http.RoundTripper // tests only: replaces the default transport under redirection and skew measurement
}

const defaultTimeout = 10 * time.Second

// FieldError names the Config field that is wrong.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return "wechatpay: config " + e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// settings is a validated Config with its keys parsed.
type settings struct {
	Config
	privateKey     *rsa.PrivateKey
	publicKey      *rsa.PublicKey
	baseURL        *url.URL // nil: the real host
	responseSerial string
}

func (cfg Config) validate() (*settings, error) {
	s := &settings{Config: cfg}
	if cfg.MchID == "" {
		return nil, fieldErr("MchID", "is required")
	}
	if cfg.AppID == "" {
		return nil, fieldErr("AppID", "is required")
	}
	if cfg.MerchantSerialNo == "" {
		return nil, fieldErr("MerchantSerialNo", "is required")
	}
	switch {
	case cfg.MerchantPrivateKey != nil && cfg.MerchantPrivateKeyPEM != "":
		return nil, fieldErr("MerchantPrivateKey", "give the key or its PEM, not both")
	case cfg.MerchantPrivateKey != nil:
		s.privateKey = cfg.MerchantPrivateKey
	case cfg.MerchantPrivateKeyPEM != "":
		k, err := utils.LoadPrivateKey(cfg.MerchantPrivateKeyPEM)
		if err != nil {
			// The SDK's message never contains key material.
			return nil, fieldErr("MerchantPrivateKeyPEM", "not a PKCS#8 RSA private key: %v", err)
		}
		s.privateKey = k
	default:
		return nil, fieldErr("MerchantPrivateKey", "is required (or MerchantPrivateKeyPEM)")
	}
	if err := s.privateKey.Validate(); err != nil {
		return nil, fieldErr("MerchantPrivateKey", "invalid RSA key: %v", err)
	}
	if s.privateKey.N.BitLen() < 2048 {
		return nil, fieldErr("MerchantPrivateKey", "must be at least 2048 bits, got %d", s.privateKey.N.BitLen())
	}
	if len(cfg.APIv3Key) != 32 {
		return nil, fieldErr("APIv3Key", "must be 32 bytes, got %d", len(cfg.APIv3Key))
	}

	if s.Mode == "" {
		s.Mode = ModePublicKey
	}
	switch s.Mode {
	case ModePublicKey, ModeCertificate, ModeBoth:
	default:
		return nil, fieldErr("Mode", "must be %q, %q or %q, got %q", ModePublicKey, ModeCertificate, ModeBoth, cfg.Mode)
	}
	needPub := s.Mode != ModeCertificate
	if needPub {
		if cfg.PublicKeyID == "" {
			return nil, fieldErr("PublicKeyID", "is required in %s mode", s.Mode)
		}
		switch {
		case cfg.PublicKey != nil && cfg.PublicKeyPEM != "":
			return nil, fieldErr("PublicKey", "give the key or its PEM, not both")
		case cfg.PublicKey != nil:
			s.publicKey = cfg.PublicKey
		case cfg.PublicKeyPEM != "":
			k, err := utils.LoadPublicKey(cfg.PublicKeyPEM)
			if err != nil {
				return nil, fieldErr("PublicKeyPEM", "not a PKIX RSA public key: %v", err)
			}
			s.publicKey = k
		default:
			return nil, fieldErr("PublicKey", "is required in %s mode (or PublicKeyPEM)", s.Mode)
		}
	}

	s.responseSerial = cfg.ResponseSerial
	switch {
	case s.responseSerial == "" && s.Mode == ModeCertificate:
		s.responseSerial = ModeCertificate
	case s.responseSerial == "":
		s.responseSerial = ModePublicKey
	case s.responseSerial != ModePublicKey && s.responseSerial != ModeCertificate:
		return nil, fieldErr("ResponseSerial", "must be %q or %q, got %q", ModePublicKey, ModeCertificate, cfg.ResponseSerial)
	case s.Mode != ModeBoth && s.responseSerial != s.Mode:
		return nil, fieldErr("ResponseSerial", "%q cannot be verified in %s mode", s.responseSerial, s.Mode)
	}

	if cfg.BaseURL != "" {
		u, err := url.Parse(cfg.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fieldErr("BaseURL", "must be an absolute http(s) URL, got %q", cfg.BaseURL)
		}
		// A path prefix would change the signed request path.
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return nil, fieldErr("BaseURL", "must be scheme://host[:port] only, got %q", cfg.BaseURL)
		}
		s.baseURL = &url.URL{Scheme: u.Scheme, Host: u.Host}
	}
	if s.Timeout < 0 {
		return nil, fieldErr("Timeout", "must not be negative")
	}
	if s.Timeout == 0 {
		s.Timeout = defaultTimeout
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	return s, nil
}
