// Package alipay is Hutong's connector to the Alipay OpenAPI gateway (gateway.do, RSA2, public-key
// mode), built on github.com/smartwalle/alipay/v3. It places, queries, closes and refunds trades
// for every channel and turns Alipay's signed notifications into wallet news for the gateway.
package alipay

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	sdk "github.com/smartwalle/alipay/v3"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

// ProductionGateway is Alipay's production gateway, used when Config.GatewayURL is empty.
const ProductionGateway = "https://openapi.alipay.com/gateway.do"

// DefaultTimeout bounds each call to Alipay when Config.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Config configures a Connector. Keys are the app's, as copied from the Alipay open platform.
type Config struct {
	AppID           string
	AppPrivateKey   string // PEM (PKCS#1 or PKCS#8), or its bare base64 body as the open platform shows it
	AlipayPublicKey string // PKIX PEM, or its bare base64 body
	// GatewayURL is the gateway to call: "" means production; the sandbox is e.g.
	// http://127.0.0.1:8091/gateway.do.
	GatewayURL string
	Timeout    time.Duration // per call; 0 means DefaultTimeout
	Now        func() time.Time
	Logger     *slog.Logger
}

// Connector speaks Alipay for the gateway. It is safe for concurrent use.
type Connector struct {
	client    *sdk.Client
	appID     string
	alipayKey *rsa.PublicKey // for the hand-written second notification check
	timeout   time.Duration
	now       func() time.Time
	log       *slog.Logger
}

// shanghai is Alipay's clock. China has kept UTC+8 without daylight saving since 1991, so a fixed
// zone is exact and needs no tzdata on the host.
var shanghai = time.FixedZone("CST", 8*3600)

// alipayTime is the layout of every timestamp Alipay reads and writes.
const alipayTime = "2006-01-02 15:04:05"

// New checks cfg and returns a Connector. Errors name the offending field.
func New(cfg Config) (*Connector, error) {
	if strings.TrimSpace(cfg.AppID) == "" || strings.ContainsAny(cfg.AppID, " \t\r\n") {
		return nil, errors.New("alipay: config: AppID is required and must not contain spaces")
	}
	if strings.TrimSpace(cfg.AppPrivateKey) == "" {
		return nil, errors.New("alipay: config: AppPrivateKey is required")
	}
	if strings.TrimSpace(cfg.AlipayPublicKey) == "" {
		return nil, errors.New("alipay: config: AlipayPublicKey is required")
	}
	pub, err := parsePublicKey(cfg.AlipayPublicKey)
	if err != nil {
		return nil, fmt.Errorf("alipay: config: AlipayPublicKey: %w", err)
	}
	gw := cfg.GatewayURL
	if gw == "" {
		gw = ProductionGateway
	}
	if u, err := url.Parse(gw); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("alipay: config: GatewayURL %q must be an absolute http or https URL", cfg.GatewayURL)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("alipay: config: Timeout must not be negative, got %s", cfg.Timeout)
	}
	c := &Connector{appID: cfg.AppID, alipayKey: pub, timeout: cfg.Timeout, now: cfg.Now, log: cfg.Logger}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}

	// Each call carries its own deadline through its context, so the client has no overall
	// timeout; the transport keeps enough idle connections for concurrent calls to reuse them.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	hc := &http.Client{Transport: tr}

	// The SDK's isProduction flag only picks the default host and, when a response or notification
	// names an unknown alipay_cert_sn, makes it download that certificate (certificate mode) with
	// no deadline while holding its lock. In public-key mode that download is never wanted, so
	// the client is built as "not production" and pointed explicitly at the configured gateway.
	cl, err := sdk.New(cfg.AppID, cfg.AppPrivateKey, false,
		sdk.WithSandboxGateway(gw), sdk.WithHTTPClient(hc), sdk.WithTimeLocation(shanghai))
	if err != nil {
		return nil, fmt.Errorf("alipay: config: AppPrivateKey: %w", err)
	}
	if err := cl.LoadAliPayPublicKey(cfg.AlipayPublicKey); err != nil {
		return nil, fmt.Errorf("alipay: config: AlipayPublicKey: %w", err)
	}
	c.client = cl
	return c, nil
}

// parsePublicKey reads an RSA public key in PKIX form, PEM or bare base64.
func parsePublicKey(s string) (*rsa.PublicKey, error) {
	var der []byte
	if block, _ := pem.Decode([]byte(s)); block != nil {
		der = block.Bytes
	} else {
		b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
		if err != nil {
			return nil, errors.New("neither PEM nor base64")
		}
		der = b
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("not a PKIX public key: %w", err)
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("not an RSA key")
	}
	return rk, nil
}

var _ gateway.Provider = (*Connector)(nil)

// Name is the wallet this connector speaks.
func (c *Connector) Name() payment.Provider { return payment.Alipay }

// AppID is the Alipay app this connector acts for.
func (c *Connector) AppID() string { return c.appID }

// call runs fn with the connector's per-call deadline.
func (c *Connector) call(ctx context.Context, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return fn(ctx)
}

// Error codes (payment.Error.Code) the connector returns.
const (
	// CodeProviderError: Alipay answered and refused; ProviderCode holds its sub_code.
	CodeProviderError = "provider_error"
	// CodeProviderUnavailable: no trustworthy answer (network, timeout, Alipay system error,
	// unverifiable or malformed response); the outcome is unknown and ProviderCode is empty.
	CodeProviderUnavailable = "provider_unavailable"
	// CodeAlreadyPaid: a close found the trade paid.
	CodeAlreadyPaid = gateway.CodeAlreadyPaid
)

// Alipay codes the connector reads.
const (
	subTradeNotExist      = "ACQ.TRADE_NOT_EXIST"
	subTradeHasSuccess    = "ACQ.TRADE_HAS_SUCCESS"
	subTradeHasClose      = "ACQ.TRADE_HAS_CLOSE"
	subTradeStatusInvalid = "ACQ.REASON_TRADE_STATUS_INVALID"
	subSystemError        = "ACQ.SYSTEM_ERROR"
	subUnknownError       = "isp.unknow-error" // sic: Alipay's spelling
)

// unknownOutcome wraps a failure after which Alipay may or may not have acted.
func unknownOutcome(op string, err error) *payment.Error {
	return &payment.Error{Kind: payment.ProviderError, Code: CodeProviderUnavailable,
		Message: "alipay " + op + ": no usable answer from alipay", Err: fmt.Errorf("alipay: %s: %w", op, err)}
}

// refused is Alipay's answered refusal, keeping its sub_code (or code when it gave none).
func refused(op string, e sdk.Error) *payment.Error {
	code := e.SubCode
	if code == "" {
		code = string(e.Code)
	}
	return &payment.Error{Kind: payment.ProviderError, Code: CodeProviderError, ProviderCode: code,
		Message: "alipay " + op + " refused: " + code, Err: fmt.Errorf("alipay: %s: %s %s: %s", op, e.Code, e.SubCode, e.SubMsg)}
}

// isSystemError reports whether Alipay's answer means "I do not know either": the documented
// reaction is to retry or query, never to take it as a refusal.
func isSystemError(e sdk.Error) bool {
	return e.Code == sdk.CodeUnknowError || e.SubCode == subSystemError || e.SubCode == subUnknownError
}

// classify turns the SDK's (error, business answer) into the connector's error, or nil when
// Alipay answered success. A non-nil *payment.Error with a ProviderCode is a definite refusal.
func classify(op string, err error, answer sdk.Error) *payment.Error {
	if err != nil {
		var ae *sdk.Error
		if errors.As(err, &ae) {
			// An unsigned answer: error_response (a gateway-level refusal such as a bad app_id,
			// which Alipay does not sign), or a method node without a signature. A refusal is
			// taken as one; an unsigned "success" is not believed.
			if isSystemError(*ae) || ae.IsSuccess() || ae.Code == "" {
				return unknownOutcome(op, err)
			}
			return refused(op, *ae)
		}
		return unknownOutcome(op, err)
	}
	if answer.IsSuccess() {
		return nil
	}
	if answer.Code == "" {
		return unknownOutcome(op, errors.New("answer carries no code"))
	}
	if isSystemError(answer) {
		return unknownOutcome(op, answer)
	}
	return refused(op, answer)
}

// badAnswer reports a signed answer whose content does not make sense; the outcome is unknown.
func badAnswer(op, format string, args ...any) *payment.Error {
	return unknownOutcome(op, fmt.Errorf("bad answer: "+format, args...))
}

// isTimeout reports whether err is a deadline or network timeout, for log levels only.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// parseTime reads an Alipay timestamp (Beijing time); zero when absent or unreadable.
func parseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.ParseInLocation(alipayTime, s, shanghai)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}
