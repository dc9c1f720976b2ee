package wechatpay

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// loginCodeTTL is how long a wx.login code can be exchanged, as with WeChat.
const loginCodeTTL = 5 * time.Minute

const loginCodesSchema = `CREATE TABLE IF NOT EXISTS wx_login_codes (
	code        TEXT PRIMARY KEY,
	openid      TEXT NOT NULL,
	session_key TEXT NOT NULL,
	created_at  INTEGER NOT NULL,
	used_at     INTEGER
)`

// usersSchema keeps each openid's unionid, so the same payer always has the same identity.
const usersSchema = `CREATE TABLE IF NOT EXISTS wx_users (
	openid     TEXT PRIMARY KEY,
	unionid    TEXT NOT NULL,
	created_at INTEGER NOT NULL
)`

// handleLoginCode issues a one-time login code, as wx.login would in the mini program.
func (s *Sandbox) handleLoginCode(w http.ResponseWriter, r *http.Request) {
	var req struct {
		OpenID string `json:"openid"`
	}
	if !readSandboxBody(w, r, &req) {
		return
	}
	if len(req.OpenID) > 128 {
		writeSandboxError(w, http.StatusBadRequest, "PARAM_ERROR", "openid longer than 128 characters")
		return
	}
	openid := req.OpenID
	if openid == "" {
		openid = newOpenID()
	}
	now := s.now()
	code := randomString(alnum, 32)
	sessionKey := make([]byte, 16)
	_, _ = rand.Read(sessionKey)
	var unionid string
	err := s.inTx(r.Context(), func(tx *sql.Tx) error {
		var err error
		if unionid, err = userUnionID(r.Context(), tx, openid, now); err != nil {
			return err
		}
		_, err = tx.ExecContext(r.Context(), `INSERT INTO wx_login_codes (code, openid, session_key, created_at) VALUES (?, ?, ?, ?)`,
			code, openid, base64.StdEncoding.EncodeToString(sessionKey), now.UnixNano())
		if err != nil {
			return fmt.Errorf("wechatpay sandbox: store login code: %w", err)
		}
		return nil
	})
	if err != nil {
		s.log.Error("wechatpay sandbox: login code", "err", err)
		writeSandboxError(w, http.StatusInternalServerError, "SYSTEM_ERROR", "could not issue a login code")
		return
	}
	writeSandboxJSON(w, http.StatusOK, map[string]string{"code": code, "openid": openid, "unionid": unionid})
}

// userUnionID returns openid's unionid, making the user (with a fresh unionid) on first sight.
func userUnionID(ctx context.Context, q querier, openid string, now time.Time) (string, error) {
	_, err := q.ExecContext(ctx, `INSERT INTO wx_users (openid, unionid, created_at) VALUES (?, ?, ?) ON CONFLICT (openid) DO NOTHING`,
		openid, newOpenID(), now.UnixNano())
	if err != nil {
		return "", fmt.Errorf("wechatpay sandbox: store user: %w", err)
	}
	var unionid string
	if err := q.QueryRowContext(ctx, `SELECT unionid FROM wx_users WHERE openid = ?`, openid).Scan(&unionid); err != nil {
		return "", fmt.Errorf("wechatpay sandbox: read user: %w", err)
	}
	return unionid, nil
}

type wxError struct {
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

// writeWxError answers an api.weixin.qq.com error the way WeChat does: HTTP 200, an errcode, and
// a message ending with a request id.
func writeWxError(w http.ResponseWriter, code int, msg string) {
	writeSandboxJSON(w, http.StatusOK, wxError{ErrCode: code, ErrMsg: msg + ", rid: " + randomString(hexLower, 8) + "-" + randomString(hexLower, 8)})
}

// jscode2session exchanges a login code, answering errors with HTTP 200 and an errcode as WeChat does.
func (s *Sandbox) jscode2session(w http.ResponseWriter, r *http.Request) {
	fail := func(code int, msg string) { writeWxError(w, code, msg) }
	if s.faults.API(r.Context()) {
		fail(-1, "system error")
		return
	}
	q := r.URL.Query()
	switch {
	case q.Get("appid") != s.keys.doc.AppID:
		fail(40013, "invalid appid")
		return
	case q.Get("secret") != s.keys.doc.AppSecret:
		fail(40125, "invalid appsecret")
		return
	case q.Get("js_code") == "":
		fail(41008, "missing code")
		return
	case q.Get("grant_type") != "" && q.Get("grant_type") != "authorization_code":
		fail(40002, "invalid grant_type")
		return
	}
	now := s.now()
	var openid, sessionKey, unionid string
	err := s.inTx(r.Context(), func(tx *sql.Tx) error {
		var created int64
		var used sql.NullInt64
		err := tx.QueryRowContext(r.Context(), `SELECT c.openid, c.session_key, c.created_at, c.used_at, u.unionid
			FROM wx_login_codes c JOIN wx_users u ON u.openid = c.openid WHERE c.code = ?`, q.Get("js_code")).
			Scan(&openid, &sessionKey, &created, &used, &unionid)
		if errors.Is(err, sql.ErrNoRows) {
			return errInvalidCode
		}
		if err != nil {
			return fmt.Errorf("wechatpay sandbox: read login code: %w", err)
		}
		if used.Valid {
			return errCodeUsed
		}
		if now.Sub(time.Unix(0, created)) >= loginCodeTTL {
			return errInvalidCode
		}
		_, err = tx.ExecContext(r.Context(), `UPDATE wx_login_codes SET used_at = ? WHERE code = ?`, now.UnixNano(), q.Get("js_code"))
		if err != nil {
			return fmt.Errorf("wechatpay sandbox: use login code: %w", err)
		}
		return nil
	})
	switch {
	case errors.Is(err, errInvalidCode):
		fail(40029, "invalid code")
	case errors.Is(err, errCodeUsed):
		fail(40163, "code been used")
	case err != nil:
		s.log.Error("wechatpay sandbox: jscode2session", "err", err)
		fail(-1, "system error")
	default:
		writeSandboxJSON(w, http.StatusOK, map[string]string{"session_key": sessionKey, "openid": openid, "unionid": unionid})
	}
}

var (
	errInvalidCode = errors.New("invalid code")
	errCodeUsed    = errors.New("code been used")
)
