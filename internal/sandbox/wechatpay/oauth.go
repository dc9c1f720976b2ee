package wechatpay

import (
	"database/sql"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"time"
)

// WeChat web authorization (网页授权, OAuth 2.0 for official-account pages): a page inside WeChat
// sends the buyer to open.weixin.qq.com/connect/oauth2/authorize, WeChat sends them back with a
// one-time code, and the merchant's server exchanges it at api.weixin.qq.com/sns/oauth2/access_token
// for the buyer's openid. The sandbox approves at once (snsapi_base is silent in WeChat too; the
// consent of snsapi_userinfo is skipped) for its default buyer, or for the openid a test names with
// the sandbox_openid parameter.

// oauthCodeTTL is how long a web authorization code can be exchanged, as with WeChat.
const oauthCodeTTL = 5 * time.Minute

// oauthTokenTTL is the access_token's lifetime WeChat reports (expires_in).
const oauthTokenTTL = 7200

const oauthCodesSchema = `CREATE TABLE IF NOT EXISTS wx_oauth_codes (
	code       TEXT PRIMARY KEY,
	appid      TEXT NOT NULL,
	openid     TEXT NOT NULL,
	scope      TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	used_at    INTEGER
)`

var oauthErrorPage = template.Must(template.New("oauth").Parse(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>微信网页授权 (sandbox)</title></head>
<body><h1>Oops! Something went wrong:(</h1>
<p>errcode: <code id="errcode">{{.Code}}</code></p>
<p id="errmsg">{{.Message}}</p>
</body></html>
`))

// oauthAuthorize answers GET /connect/oauth2/authorize with a 302 to redirect_uri?code=…&state=….
// Errors are shown on a page, as WeChat does, since there is nowhere trustworthy to send them.
// [unverified: the 100xx codes are WeChat's documented page errors as recalled, not checked.]
func (s *Sandbox) oauthAuthorize(w http.ResponseWriter, r *http.Request) {
	fail := func(code int, msg string) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Security-Policy", "default-src 'none'")
		w.WriteHeader(http.StatusBadRequest)
		_ = oauthErrorPage.Execute(w, struct {
			Code    int
			Message string
		}{code, msg})
	}
	q := r.URL.Query()
	appid, redirectURI, scope, state := q.Get("appid"), q.Get("redirect_uri"), q.Get("scope"), q.Get("state")
	openid := q.Get("sandbox_openid")
	switch {
	case appid == "":
		fail(10012, "appid参数错误 / appid is missing")
		return
	case appid != s.keys.doc.AppID:
		fail(40013, "invalid appid")
		return
	case redirectURI == "":
		fail(10011, "redirect_uri参数错误 / redirect_uri is missing")
		return
	case !validRedirect(redirectURI):
		fail(10003, "redirect_uri域名与后台配置不一致 / redirect_uri must be an absolute http(s) URL")
		return
	case q.Get("response_type") != "code":
		fail(10004, "response_type参数错误 / response_type must be code")
		return
	case scope == "":
		fail(10010, "scope参数错误 / scope is missing")
		return
	case scope != "snsapi_base" && scope != "snsapi_userinfo":
		fail(10005, "此公众号并没有这些scope的权限 / scope must be snsapi_base or snsapi_userinfo")
		return
	case len(state) > 128:
		fail(10013, "state参数错误 / state longer than 128 characters")
		return
	case openid != "" && !validOpenID(openid):
		fail(10008, "sandbox_openid must be 1 to 128 letters, digits, - or _")
		return
	}
	if openid == "" {
		openid = s.defaultBuyer()
	}
	target, _ := url.Parse(redirectURI) // checked by validRedirect
	code := randomString(alnum, 32)
	now := s.now()
	err := s.inTx(r.Context(), func(tx *sql.Tx) error {
		if _, err := userUnionID(r.Context(), tx, openid, now); err != nil {
			return err
		}
		_, err := tx.ExecContext(r.Context(), `INSERT INTO wx_oauth_codes (code, appid, openid, scope, created_at) VALUES (?, ?, ?, ?, ?)`,
			code, appid, openid, scope, now.UnixNano())
		if err != nil {
			return fmt.Errorf("wechatpay sandbox: store oauth code: %w", err)
		}
		return nil
	})
	if err != nil {
		s.log.Error("wechatpay sandbox: oauth authorize", "err", err)
		fail(-1, "system error")
		return
	}
	// The merchant's own query stays; WeChat appends code and state.
	v := target.Query()
	v.Set("code", code)
	v.Set("state", state)
	target.RawQuery = v.Encode()
	target.Fragment = ""
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target.String(), http.StatusFound)
}

// oauthToken is the access_token answer.
type oauthToken struct {
	AccessToken  string `json:"access_token"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	OpenID       string `json:"openid"`
	Scope        string `json:"scope"`
	UnionID      string `json:"unionid,omitempty"`
}

// oauthAccessToken exchanges a web authorization code, answering errors with HTTP 200 and an errcode.
func (s *Sandbox) oauthAccessToken(w http.ResponseWriter, r *http.Request) {
	fail := func(code int, msg string) { writeWxError(w, code, msg) }
	if s.faults.API(r.Context()) {
		fail(-1, "system error")
		return
	}
	q := r.URL.Query()
	code := q.Get("code")
	switch {
	case q.Get("appid") != s.keys.doc.AppID:
		fail(40013, "invalid appid")
		return
	case q.Get("secret") != s.keys.doc.AppSecret:
		fail(40125, "invalid appsecret")
		return
	case code == "":
		fail(41008, "missing code")
		return
	case q.Get("grant_type") != "authorization_code":
		fail(40002, "invalid grant_type")
		return
	}
	now := s.now()
	var tok oauthToken
	err := s.inTx(r.Context(), func(tx *sql.Tx) error {
		var appid string
		var created int64
		var used sql.NullInt64
		err := tx.QueryRowContext(r.Context(), `SELECT c.appid, c.openid, c.scope, c.created_at, c.used_at, u.unionid
			FROM wx_oauth_codes c JOIN wx_users u ON u.openid = c.openid WHERE c.code = ?`, code).
			Scan(&appid, &tok.OpenID, &tok.Scope, &created, &used, &tok.UnionID)
		if errors.Is(err, sql.ErrNoRows) {
			return errInvalidCode
		}
		if err != nil {
			return fmt.Errorf("wechatpay sandbox: read oauth code: %w", err)
		}
		if used.Valid {
			return errCodeUsed
		}
		if appid != q.Get("appid") || now.Sub(time.Unix(0, created)) >= oauthCodeTTL {
			return errInvalidCode
		}
		if _, err := tx.ExecContext(r.Context(), `UPDATE wx_oauth_codes SET used_at = ? WHERE code = ?`, now.UnixNano(), code); err != nil {
			return fmt.Errorf("wechatpay sandbox: use oauth code: %w", err)
		}
		return nil
	})
	switch {
	case errors.Is(err, errInvalidCode):
		fail(40029, "invalid code")
	case errors.Is(err, errCodeUsed):
		fail(40163, "code been used")
	case err != nil:
		s.log.Error("wechatpay sandbox: oauth access_token", "err", err)
		fail(-1, "system error")
	default:
		// The tokens are opaque and not kept: no sandbox endpoint takes them back yet.
		tok.AccessToken, tok.RefreshToken, tok.ExpiresIn = randomString(openidChars, 88), randomString(openidChars, 88), oauthTokenTTL
		writeSandboxJSON(w, http.StatusOK, tok)
	}
}
