package identity

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	sdk "github.com/smartwalle/alipay/v3"

	"github.com/hutong-pay/hutong/internal/payment"
)

// AlipayProductionGateway is used when AlipayConfig.GatewayURL is empty.
const AlipayProductionGateway = "https://openapi.alipay.com/gateway.do"

// AlipayConfig configures the Alipay login client: the same app as the payment connector, since
// a mini program's auth codes belong to its app.
type AlipayConfig struct {
	AppID           string
	AppPrivateKey   string // PEM (PKCS#1 or PKCS#8) or its bare base64 body
	AlipayPublicKey string // PKIX PEM or its bare base64 body
	GatewayURL      string // "" = AlipayProductionGateway; the sandbox's is http://…/gateway.do
	Timeout         time.Duration
}

// Alipay exchanges Alipay mini-program auth codes (my.getAuthCode) through the smartwalle SDK.
type Alipay struct {
	client  *sdk.Client
	appID   string
	timeout time.Duration
}

var _ Exchanger = (*Alipay)(nil)

// shanghai is Alipay's clock for request timestamps; China has no daylight saving.
var shanghai = time.FixedZone("CST", 8*3600)

// NewAlipay checks cfg and returns the client.
func NewAlipay(cfg AlipayConfig) (*Alipay, error) {
	if cfg.AppID == "" || cfg.AppPrivateKey == "" || cfg.AlipayPublicKey == "" {
		return nil, errors.New("identity: alipay: AppID, AppPrivateKey and AlipayPublicKey are required")
	}
	gw := cfg.GatewayURL
	if gw == "" {
		gw = AlipayProductionGateway
	}
	if u, err := url.Parse(gw); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("identity: alipay: GatewayURL %q must be an absolute http or https URL", cfg.GatewayURL)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("identity: alipay: Timeout must not be negative, got %s", cfg.Timeout)
	}
	a := &Alipay{appID: cfg.AppID, timeout: cfg.Timeout}
	if a.timeout == 0 {
		a.timeout = DefaultTimeout
	}
	// As in the payment connector: built as "not production" so that the SDK never downloads
	// certificates on its own, and pointed explicitly at the configured gateway. Each call
	// carries its deadline in its context.
	cl, err := sdk.New(cfg.AppID, cfg.AppPrivateKey, false,
		sdk.WithSandboxGateway(gw), sdk.WithHTTPClient(&http.Client{}), sdk.WithTimeLocation(shanghai))
	if err != nil {
		return nil, fmt.Errorf("identity: alipay: AppPrivateKey: %w", err)
	}
	if err := cl.LoadAliPayPublicKey(cfg.AlipayPublicKey); err != nil {
		return nil, fmt.Errorf("identity: alipay: AlipayPublicKey: %w", err)
	}
	a.client = cl
	return a, nil
}

// Provider is alipay.
func (a *Alipay) Provider() payment.Provider { return payment.Alipay }

// AppID is the app whose auth codes this client exchanges.
func (a *Alipay) AppID() string { return a.appID }

// Exchange spends an auth code at alipay.system.oauth.token. The access and refresh tokens in the
// answer are read and dropped: Hutong calls no user API with them.
func (a *Alipay) Exchange(ctx context.Context, code string) (Identity, error) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	rsp, err := a.client.SystemOauthToken(ctx, sdk.SystemOauthToken{GrantType: "authorization_code", Code: code})
	if err != nil {
		var ae *sdk.Error
		if errors.As(err, &ae) {
			return Identity{}, alipayError(string(ae.Code), ae.SubCode, err)
		}
		// Transport failures, unreadable or badly signed answers.
		return Identity{}, unavailable(fmt.Errorf("identity: alipay oauth.token: %w", err))
	}
	if rsp.Code != "" && rsp.Code != sdk.CodeSuccess {
		return Identity{}, alipayError(string(rsp.Code), rsp.SubCode, fmt.Errorf("identity: alipay oauth.token: %s %s", rsp.Code, rsp.SubCode))
	}
	// Apps switched to open ids get no user_id; either identifies the buyer.
	if (rsp.UserId == "" && rsp.OpenId == "") || (rsp.UserId != "" && !validIdentifier(rsp.UserId)) ||
		(rsp.OpenId != "" && !validIdentifier(rsp.OpenId)) || rsp.AccessToken == "" {
		return Identity{}, unavailable(fmt.Errorf("identity: alipay oauth.token: %w", errNoIdentity))
	}
	return Identity{Provider: payment.Alipay, AppID: a.appID, UserID: rsp.UserId, OpenIDAlipay: rsp.OpenId}, nil
}

// alipayError turns a refused exchange into the error the merchant sees.
func alipayError(code, subCode string, cause error) error {
	switch {
	case subCode == "isv.code-invalid":
		// Alipay does not tell a used code from an unknown or expired one.
		return &payment.Error{Kind: payment.Invalid, Code: "invalid_code", Param: "code", ProviderCode: subCode,
			Message: "the auth code is invalid, expired or already used; get a new one with my.getAuthCode", Err: cause}
	case code == "20000" || strings.HasPrefix(subCode, "isp."):
		return &payment.Error{Kind: payment.ProviderError, Code: "provider_unavailable", ProviderCode: subCode,
			Message: "Alipay could not exchange the auth code now; try again", Err: cause}
	}
	return &payment.Error{Kind: payment.ProviderError, Code: "provider_error", ProviderCode: subCode,
		Message: "Alipay refused the auth code exchange", Err: cause}
}
