package alipay

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	sdk "github.com/smartwalle/alipay/v3"
)

func exchange(e *env, code string) (*sdk.SystemOauthTokenRsp, error) {
	return e.client.SystemOauthToken(context.Background(), sdk.SystemOauthToken{GrantType: "authorization_code", Code: code})
}

func wantCodeInvalid(t *testing.T, what string, rsp *sdk.SystemOauthTokenRsp, err error) {
	t.Helper()
	var ae *sdk.Error
	if !errors.As(err, &ae) || ae.SubCode != "isv.code-invalid" || ae.Code != "40002" {
		t.Fatalf("%s: got %v %+v, want error_response 40002 isv.code-invalid", what, err, rsp)
	}
}

func TestAuthCodes(t *testing.T) {
	clk := newClock()
	e := newEnv(t, envOptions{clock: clk})
	status, code := e.control("/sandbox/alipay/auth-codes", nil)
	if status != http.StatusCreated || code["code"] == "" || code["user_id"] == "" || code["open_id"] == "" {
		t.Fatalf("auth code: got %d %v", status, code)
	}
	rsp, err := exchange(e, code["code"].(string))
	if err != nil || !rsp.IsSuccess() || rsp.UserId != code["user_id"] || rsp.OpenId != code["open_id"] ||
		rsp.AccessToken == "" || rsp.RefreshToken == "" || rsp.ExpiresIn <= 0 || rsp.ReExpiresIn <= 0 || rsp.AuthStart == "" {
		t.Fatalf("exchange: got %v %+v", err, rsp)
	}
	again, err := exchange(e, code["code"].(string))
	wantCodeInvalid(t, "reused code", again, err)
	bad, err := exchange(e, "not-a-code")
	wantCodeInvalid(t, "invalid code", bad, err)

	// A fixed identity comes back the same every time, with a stable open_id.
	_, fixed := e.control("/sandbox/alipay/auth-codes", map[string]string{"user_id": "2088000000000555"})
	_, fixed2 := e.control("/sandbox/alipay/auth-codes", map[string]string{"user_id": "2088000000000555"})
	if fixed["user_id"] != "2088000000000555" || fixed["open_id"] != fixed2["open_id"] || fixed["code"] == fixed2["code"] {
		t.Fatalf("fixed user: got %v and %v", fixed, fixed2)
	}
	if status, _ := e.control("/sandbox/alipay/auth-codes", map[string]string{"user_id": "abc"}); status != http.StatusBadRequest {
		t.Fatalf("malformed user_id: got %d, want 400", status)
	}

	// A refresh token works once.
	r1, err := e.client.SystemOauthToken(context.Background(), sdk.SystemOauthToken{GrantType: "refresh_token", RefreshToken: rsp.RefreshToken})
	if err != nil || r1.UserId != rsp.UserId || r1.AccessToken == rsp.AccessToken {
		t.Fatalf("refresh: got %v %+v", err, r1)
	}
	_, err = e.client.SystemOauthToken(context.Background(), sdk.SystemOauthToken{GrantType: "refresh_token", RefreshToken: rsp.RefreshToken})
	var ae *sdk.Error
	if !errors.As(err, &ae) || ae.SubCode != "isv.refresh-token-invalid" {
		t.Fatalf("reused refresh token: got %v", err)
	}
	_, err = e.client.SystemOauthToken(context.Background(), sdk.SystemOauthToken{GrantType: "password", Code: "x"})
	if !errors.As(err, &ae) || ae.SubCode != "isv.grant-type-invalid" {
		t.Fatalf("bad grant_type: got %v", err)
	}

	// Codes expire.
	_, late := e.control("/sandbox/alipay/auth-codes", nil)
	clk.Add(11 * time.Minute)
	expired, err := exchange(e, late["code"].(string))
	wantCodeInvalid(t, "expired code", expired, err)
}

// A new Sandbox over the same database keeps the app, its keys, trades, refunds and codes.
func TestPersistenceAcrossNewSandbox(t *testing.T) {
	path := t.TempDir() + "/sandbox.db"
	first := newEnv(t, envOptions{dbPath: path})
	ctx := context.Background()
	first.precreate("p-1", "9.00", "")
	first.pay("p-1")
	if r, err := first.client.TradeRefund(ctx, sdk.TradeRefund{OutTradeNo: "p-1", RefundAmount: "1.00", OutRequestNo: "pr-1"}); err != nil || !r.IsSuccess() {
		t.Fatalf("refund: %v %+v", err, r)
	}
	first.precreate("p-2", "1.00", "")
	_, code := first.control("/sandbox/alipay/auth-codes", nil)
	first.sender.Close()
	first.srv.Close()

	second := newEnv(t, envOptions{dbPath: path})
	if second.sb.Credentials() != first.sb.Credentials() {
		t.Fatal("credentials changed")
	}
	if second.sb.app.sellerID != first.sb.app.sellerID || second.sb.app.defaultBuyer != first.sb.app.defaultBuyer {
		t.Fatal("seller or default buyer changed")
	}
	if q := second.query("p-1"); q.TradeStatus != sdk.TradeStatusSuccess || q.TotalAmount != "9.00" {
		t.Fatalf("paid trade after restart: %+v", q)
	}
	if rq, err := second.client.TradeFastPayRefundQuery(ctx, sdk.TradeFastPayRefundQuery{OutTradeNo: "p-1", OutRequestNo: "pr-1"}); err != nil || rq.RefundStatus != "REFUND_SUCCESS" {
		t.Fatalf("refund after restart: %v %+v", err, rq)
	}
	if r, err := second.client.TradeRefund(ctx, sdk.TradeRefund{OutTradeNo: "p-1", RefundAmount: "8.01", OutRequestNo: "pr-2"}); err != nil || r.SubCode != "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL" {
		t.Fatalf("refunded total after restart: %v %+v", err, r)
	}
	second.pay("p-2") // a QR trade precreated before the restart can still be paid
	if rsp, err := exchange(second, code["code"].(string)); err != nil || rsp.UserId != code["user_id"] {
		t.Fatalf("auth code after restart: %v %+v", err, rsp)
	}
}
