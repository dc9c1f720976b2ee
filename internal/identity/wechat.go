package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hutong-pay/hutong/internal/payment"
)

// WeChat's hosts for login and web authorization. They are not the WeChat Pay API's host
// (api.mch.weixin.qq.com); the sandbox serves all of them on one listener.
const (
	WeChatAPIBase  = "https://api.weixin.qq.com"  // /sns/jscode2session, /sns/oauth2/access_token
	WeChatOpenBase = "https://open.weixin.qq.com" // /connect/oauth2/authorize, in the buyer's browser
)

// DefaultTimeout bounds each call to a wallet's login API when no timeout is configured.
const DefaultTimeout = 10 * time.Second

// WeChatConfig configures the WeChat login client. AppID and AppSecret are the app's (the mini
// program's for login codes; for web authorization, the official account's, which must be the
// app the JSAPI orders are placed with).
type WeChatConfig struct {
	AppID     string
	AppSecret string
	APIBase   string        // "" = WeChatAPIBase
	OpenBase  string        // "" = WeChatOpenBase
	Timeout   time.Duration // per call; 0 = DefaultTimeout
	// HTTPClient is the client to call with; nil = one of its own. Its own Timeout is left
	// alone: every call carries Timeout in its context.
	HTTPClient *http.Client
}

// WeChat exchanges WeChat login codes. It is a small hand-written client because the WeChat Pay
// SDK (wechatpay-go) covers only api.mch.weixin.qq.com: mini-program login (jscode2session) and
// web authorization live on api.weixin.qq.com with a different protocol (GET with the app
// secret in the query, errors as HTTP 200 with an errcode), which no official Go SDK speaks.
type WeChat struct {
	appID, secret     string
	apiBase, openBase string
	timeout           time.Duration
	hc                *http.Client
}

var _ Exchanger = (*WeChat)(nil)

// NewWeChat checks cfg and returns the client.
func NewWeChat(cfg WeChatConfig) (*WeChat, error) {
	if cfg.AppID == "" || cfg.AppSecret == "" {
		return nil, errors.New("identity: wechat: AppID and AppSecret are required")
	}
	w := &WeChat{appID: cfg.AppID, secret: cfg.AppSecret, apiBase: cfg.APIBase, openBase: cfg.OpenBase, timeout: cfg.Timeout, hc: cfg.HTTPClient}
	if w.apiBase == "" {
		w.apiBase = WeChatAPIBase
	}
	if w.openBase == "" {
		w.openBase = WeChatOpenBase
	}
	for name, raw := range map[string]string{"APIBase": w.apiBase, "OpenBase": w.openBase} {
		if u, err := url.Parse(raw); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("identity: wechat: %s %q must be an absolute http or https URL", name, raw)
		}
	}
	w.apiBase, w.openBase = strings.TrimRight(w.apiBase, "/"), strings.TrimRight(w.openBase, "/")
	if w.timeout < 0 {
		return nil, fmt.Errorf("identity: wechat: Timeout must not be negative, got %s", w.timeout)
	}
	if w.timeout == 0 {
		w.timeout = DefaultTimeout
	}
	if w.hc == nil {
		w.hc = &http.Client{}
	}
	return w, nil
}

// Provider is wechatpay.
func (w *WeChat) Provider() payment.Provider { return payment.WeChatPay }

// AppID is the app whose openids this client obtains.
func (w *WeChat) AppID() string { return w.appID }

// Exchange spends a mini-program login code (wx.login) at /sns/jscode2session. The session_key
// in the answer is read and dropped: Hutong decrypts no mini-program data.
func (w *WeChat) Exchange(ctx context.Context, code string) (Identity, error) {
	q := url.Values{"appid": {w.appID}, "secret": {w.secret}, "js_code": {code}, "grant_type": {"authorization_code"}}
	body, err := w.get(ctx, "/sns/jscode2session", q)
	if err != nil {
		return Identity{}, err
	}
	a, err := parseWeChatAnswer(body)
	if err != nil {
		return Identity{}, weChatError("jscode2session", err)
	}
	return Identity{Provider: payment.WeChatPay, AppID: w.appID, OpenID: a.OpenID, UnionID: a.UnionID}, nil
}

// AuthorizeURL is where a buyer inside WeChat is sent for web authorization (snsapi_base: silent,
// openid only); WeChat sends them back to redirectURI with code and state.
func (w *WeChat) AuthorizeURL(redirectURI, state string) string {
	q := url.Values{"appid": {w.appID}, "redirect_uri": {redirectURI}, "response_type": {"code"}, "scope": {"snsapi_base"}, "state": {state}}
	// WeChat documents the fragment as required; it never reaches a server.
	return w.openBase + "/connect/oauth2/authorize?" + q.Encode() + "#wechat_redirect"
}

// ExchangeWebCode spends a web authorization code at /sns/oauth2/access_token for the buyer's
// openid. The access and refresh tokens in the answer are read and dropped.
func (w *WeChat) ExchangeWebCode(ctx context.Context, code string) (Identity, error) {
	q := url.Values{"appid": {w.appID}, "secret": {w.secret}, "code": {code}, "grant_type": {"authorization_code"}}
	body, err := w.get(ctx, "/sns/oauth2/access_token", q)
	if err != nil {
		return Identity{}, err
	}
	a, err := parseWeChatAnswer(body)
	if err != nil {
		return Identity{}, weChatError("oauth2/access_token", err)
	}
	return Identity{Provider: payment.WeChatPay, AppID: w.appID, OpenID: a.OpenID, UnionID: a.UnionID}, nil
}

// maxAnswer bounds what is read of an answer; real ones are a few hundred bytes.
const maxAnswer = 64 << 10

// get calls path with q and returns the body of a 200 answer.
func (w *WeChat) get(ctx context.Context, path string, q url.Values) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.apiBase+path+"?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("identity: wechat %s: %w", path, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := w.hc.Do(req)
	if err != nil {
		// The URL carries the app secret, and *url.Error quotes it: keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, unavailable(fmt.Errorf("identity: wechat %s: %w", path, err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return nil, unavailable(fmt.Errorf("identity: wechat %s: read answer: %w", path, err))
	}
	if resp.StatusCode != http.StatusOK {
		// WeChat answers its own errors with 200; anything else came from something in between.
		return nil, unavailable(fmt.Errorf("identity: wechat %s: HTTP %d", path, resp.StatusCode))
	}
	if len(body) > maxAnswer {
		return nil, unavailable(fmt.Errorf("identity: wechat %s: answer larger than %d bytes", path, maxAnswer))
	}
	return body, nil
}

// weChatAnswer is what jscode2session and oauth2/access_token answer that Hutong keeps.
type weChatAnswer struct {
	OpenID  string
	UnionID string
}

// WeChatAPIError is an errcode answer of WeChat's login APIs.
type WeChatAPIError struct {
	Code    int
	Message string
}

func (e *WeChatAPIError) Error() string { return "errcode " + strconv.Itoa(e.Code) + ": " + e.Message }

// maxIdentifier bounds an openid or unionid (WeChat's are 28 characters; payer.openid allows 128).
const maxIdentifier = 128

// parseWeChatAnswer reads an answer of jscode2session or oauth2/access_token: an errcode other
// than 0 is a *WeChatAPIError; otherwise the openid must be there and look like one.
func parseWeChatAnswer(body []byte) (weChatAnswer, error) {
	var raw struct {
		ErrCode *json.Number `json:"errcode"`
		ErrMsg  string       `json:"errmsg"`
		OpenID  string       `json:"openid"`
		UnionID string       `json:"unionid"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return weChatAnswer{}, fmt.Errorf("answer is not a JSON object: %w", err)
	}
	if raw.ErrCode != nil {
		code, err := strconv.Atoi(raw.ErrCode.String())
		if err != nil {
			return weChatAnswer{}, fmt.Errorf("errcode %q is not an integer", raw.ErrCode.String())
		}
		if code != 0 {
			return weChatAnswer{}, &WeChatAPIError{Code: code, Message: truncate(raw.ErrMsg, 200)}
		}
	}
	if !validIdentifier(raw.OpenID) {
		return weChatAnswer{}, fmt.Errorf("%w: openid missing or malformed", errNoIdentity)
	}
	if raw.UnionID != "" && !validIdentifier(raw.UnionID) {
		return weChatAnswer{}, fmt.Errorf("%w: unionid malformed", errNoIdentity)
	}
	return weChatAnswer{OpenID: raw.OpenID, UnionID: raw.UnionID}, nil
}

// validIdentifier accepts what WeChat's and Alipay's buyer identifiers are made of: 1 to 128
// letters, digits, '-' and '_'.
func validIdentifier(s string) bool {
	if s == "" || len(s) > maxIdentifier {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !('0' <= b && b <= '9' || 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || b == '-' || b == '_') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// weChatError turns a failed answer into the error the merchant sees.
func weChatError(api string, err error) error {
	var we *WeChatAPIError
	if !errors.As(err, &we) {
		return unavailable(fmt.Errorf("identity: wechat %s: %w", api, err))
	}
	cause := fmt.Errorf("identity: wechat %s: %w", api, err)
	code := strconv.Itoa(we.Code)
	switch we.Code {
	case 40029: // invalid code: unknown, expired, or from another app
		return &payment.Error{Kind: payment.Invalid, Code: "invalid_code", Param: "code", ProviderCode: code,
			Message: "the login code is invalid or expired", Err: cause}
	case 40163: // code been used
		return &payment.Error{Kind: payment.Invalid, Code: "code_used", Param: "code", ProviderCode: code,
			Message: "the login code was already used; get a new one with wx.login", Err: cause}
	case 40226: // a high-risk user, blocked by WeChat
		return &payment.Error{Kind: payment.Invalid, Code: "login_refused", Param: "code", ProviderCode: code,
			Message: "WeChat refused this user's login", Err: cause}
	case -1, 45011: // system busy, rate limited: worth retrying later
		return &payment.Error{Kind: payment.ProviderError, Code: "provider_unavailable", ProviderCode: code,
			Message: "WeChat could not exchange the login code now; try again", Err: cause}
	}
	// 40013 invalid appid, 40125 invalid secret and the like: the gateway's configuration.
	return &payment.Error{Kind: payment.ProviderError, Code: "provider_error", ProviderCode: code,
		Message: "WeChat refused the login code exchange", Err: cause}
}

// unavailable marks a failure to get an answer at all.
func unavailable(err error) error {
	return &payment.Error{Kind: payment.ProviderError, Code: "provider_unavailable",
		Message: "the wallet could not be reached to exchange the login code; try again", Err: err}
}
