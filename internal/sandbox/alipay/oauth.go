package alipay

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Auth codes are short-lived and single-use, as the mini program's my.getAuthCode codes are.
const (
	authCodeTTL         = 10 * time.Minute
	accessTokenSeconds  = 1296000 // 15 days, what Alipay grants
	refreshTokenSeconds = 2592000 // 30 days
)

type user struct {
	id      string
	openID  string
	logonID string
}

var errUserNotFound = errors.New("alipay sandbox: user not found")

// ensureUser returns the user with id, creating it (with a fresh open_id) on first sight.
func ensureUser(ctx context.Context, q querier, id string, nowMillis int64) (user, error) {
	logon := "159****" + id[max(0, len(id)-4):]
	_, err := q.ExecContext(ctx, `INSERT INTO ali_users (user_id, open_id, logon_id, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (user_id) DO NOTHING`, id, "0"+randomToken(45), logon, nowMillis)
	if err != nil {
		return user{}, fmt.Errorf("alipay sandbox: ensure user: %w", err)
	}
	return userByID(ctx, q, id)
}

func userByID(ctx context.Context, q querier, id string) (user, error) {
	return scanUser(q.QueryRowContext(ctx, `SELECT user_id, open_id, logon_id FROM ali_users WHERE user_id = ?`, id))
}

func userByOpenID(ctx context.Context, q querier, openID string) (user, error) {
	return scanUser(q.QueryRowContext(ctx, `SELECT user_id, open_id, logon_id FROM ali_users WHERE open_id = ?`, openID))
}

func scanUser(row *sql.Row) (user, error) {
	var u user
	err := row.Scan(&u.id, &u.openID, &u.logonID)
	if errors.Is(err, sql.ErrNoRows) {
		return user{}, errUserNotFound
	}
	if err != nil {
		return user{}, fmt.Errorf("alipay sandbox: load user: %w", err)
	}
	return u, nil
}

type authCodeAnswer struct {
	Code   string `json:"code"`
	UserID string `json:"user_id"`
	OpenID string `json:"open_id"`
}

// handleAuthCodes issues a one-time auth code, as the mini program would get from my.getAuthCode.
// The optional JSON body {"user_id"} fixes who logs in; otherwise a new user is made.
func (s *Sandbox) handleAuthCodes(w http.ResponseWriter, r *http.Request) {
	var in struct {
		UserID string `json:"user_id"`
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, "invalid_body", "body too large or unreadable")
		return
	}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &in); err != nil {
			writeJSONError(w, http.StatusBadRequest, "invalid_body", "body must be a JSON object")
			return
		}
	}
	if in.UserID == "" {
		in.UserID = newUserID()
	}
	if len(in.UserID) > 32 || !isDigits(in.UserID) {
		writeJSONError(w, http.StatusBadRequest, "invalid_user_id", "user_id must be digits (2088…)")
		return
	}
	ans, err := s.issueAuthCode(r.Context(), in.UserID)
	if err != nil {
		s.log.Error("alipay sandbox: issue auth code", "err", err)
		writeJSONError(w, http.StatusInternalServerError, "internal", "could not issue the code")
		return
	}
	writeJSON(w, http.StatusCreated, ans)
}

func (s *Sandbox) issueAuthCode(ctx context.Context, userID string) (authCodeAnswer, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return authCodeAnswer{}, fmt.Errorf("alipay sandbox: auth code: %w", err)
	}
	defer tx.Rollback()
	now := s.now()
	u, err := ensureUser(ctx, tx, userID, now.UnixMilli())
	if err != nil {
		return authCodeAnswer{}, err
	}
	// Real auth codes are 32 hex-looking characters ending in a random tail.
	code := randomToken(32)
	_, err = tx.ExecContext(ctx, `INSERT INTO ali_auth_codes (code, app_id, user_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
		code, s.app.id, u.id, now.UnixMilli(), now.Add(authCodeTTL).UnixMilli())
	if err != nil {
		return authCodeAnswer{}, fmt.Errorf("alipay sandbox: auth code: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return authCodeAnswer{}, fmt.Errorf("alipay sandbox: auth code: %w", err)
	}
	return authCodeAnswer{Code: code, UserID: u.id, OpenID: u.openID}, nil
}

type oauthTokenResponse struct {
	UserID       string `json:"user_id"`
	OpenID       string `json:"open_id"`
	AccessToken  string `json:"access_token"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	ReExpiresIn  int64  `json:"re_expires_in"`
	AuthStart    string `json:"auth_start"`
}

// systemOauthToken exchanges an auth code (grant_type=authorization_code) or a refresh token
// (grant_type=refresh_token) for an access token. The parameters are top-level, not in biz_content.
// Failures go out as error_response, as Alipay answers them.
func (s *Sandbox) systemOauthToken(ctx context.Context, req *gatewayRequest) (any, *apiError) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, s.internal(err, nil)
	}
	defer tx.Rollback()
	now := s.now()
	var userID string
	switch req.params.Get("grant_type") {
	case "authorization_code":
		code := req.params.Get("code")
		if code == "" {
			return nil, errMissing("isv.missing-parameter", "缺少必选参数code")
		}
		// Single statement: a code can only be spent once even under concurrent exchanges.
		err := tx.QueryRowContext(ctx, `UPDATE ali_auth_codes SET used_at = ?
			WHERE code = ? AND app_id = ? AND used_at = 0 AND expires_at > ? RETURNING user_id`,
			now.UnixMilli(), code, s.app.id, now.UnixMilli()).Scan(&userID)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, errCodeInvalid()
		}
		if err != nil {
			return nil, s.internal(err, nil)
		}
	case "refresh_token":
		rt := req.params.Get("refresh_token")
		if rt == "" {
			return nil, errMissing("isv.missing-parameter", "缺少必选参数refresh_token")
		}
		err := tx.QueryRowContext(ctx, `UPDATE ali_oauth_tokens SET refreshed = 1
			WHERE refresh_token = ? AND app_id = ? AND refreshed = 0 AND created_at > ? RETURNING user_id`,
			rt, s.app.id, now.Add(-refreshTokenSeconds*time.Second).UnixMilli()).Scan(&userID)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, errRefreshInvalid()
		}
		if err != nil {
			return nil, s.internal(err, nil)
		}
	default:
		return nil, errGrantTypeInvalid()
	}
	u, err := userByID(ctx, tx, userID)
	if err != nil {
		return nil, s.internal(err, nil)
	}
	rsp := oauthTokenResponse{
		UserID: u.id, OpenID: u.openID,
		AccessToken: "authusrB" + randomToken(32), ExpiresIn: accessTokenSeconds,
		RefreshToken: "authusrB" + randomToken(32), ReExpiresIn: refreshTokenSeconds,
		AuthStart: timeText(now),
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO ali_oauth_tokens (access_token, refresh_token, app_id, user_id, created_at)
		VALUES (?, ?, ?, ?, ?)`, rsp.AccessToken, rsp.RefreshToken, s.app.id, u.id, now.UnixMilli())
	if err != nil {
		return nil, s.internal(err, nil)
	}
	if err := tx.Commit(); err != nil {
		return nil, s.internal(err, nil)
	}
	return rsp, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
