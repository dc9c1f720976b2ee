package alipay

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
	alisandbox "github.com/hutong-pay/hutong/internal/sandbox/alipay"
	"github.com/hutong-pay/hutong/internal/sandbox/faults"
	"github.com/hutong-pay/hutong/internal/sandbox/notify"
	"github.com/hutong-pay/hutong/internal/sandbox/sandboxdb"
)

// sandboxEnv is the real Alipay sandbox on a loopback server, a Connector configured from its
// credentials, and the merchant's notification endpoint (the connector's handler over a fake
// Applier) on another loopback server.
type sandboxEnv struct {
	t         testing.TB
	sb        *alisandbox.Sandbox
	srv       *httptest.Server
	faults    *faults.Injector
	sender    *notify.Sender
	conn      *Connector
	notifyURL string
	app       *fakeApplier
	rec       *recorder
}

func newSandboxEnv(t testing.TB) *sandboxEnv {
	t.Helper()
	db, err := sandboxdb.Open(filepath.Join(t.TempDir(), "sandbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &sandboxEnv{t: t, faults: faults.New(), app: &fakeApplier{}, rec: &recorder{}}
	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	// 4m → 120ms: a refused notification comes back quickly.
	e.sender, err = notify.New(notify.Options{DB: db, Faults: e.faults, TimeScale: 0.0005, Client: &http.Client{Timeout: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	e.sb, err = alisandbox.New(context.Background(), alisandbox.Config{DB: db, Sender: e.sender, Faults: e.faults, BaseURL: e.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	e.sb.Register(mux)
	creds := e.sb.Credentials()
	e.conn, err = New(Config{AppID: creds.AppID, AppPrivateKey: creds.AppPrivateKey, AlipayPublicKey: creds.AlipayPublicKey,
		GatewayURL: e.srv.URL + "/gateway.do", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	nmux := http.NewServeMux()
	nmux.Handle("POST /notify/alipay/payments", e.conn.NotificationHandler(e.app, e.rec.record))
	nsrv := httptest.NewServer(nmux)
	t.Cleanup(nsrv.Close)
	e.notifyURL = nsrv.URL + "/notify/alipay/payments"
	e.sender.Start(context.Background())
	t.Cleanup(e.sender.Close) // runs first: no delivery outlives the servers
	return e
}

func (e *sandboxEnv) request(outTradeNo string, ch payment.Channel, amount int64) gateway.PaymentRequest {
	return gateway.PaymentRequest{
		OutTradeNo: outTradeNo, Amount: amount, Currency: "CNY", Description: "测试商品 & co", Channel: ch,
		NotifyURL: e.notifyURL, ReturnURL: "https://shop.example/checkout/pay_1/return",
		ExpiresAt: time.Now().Add(30 * time.Minute).Truncate(time.Second),
	}
}

func (e *sandboxEnv) create(req gateway.PaymentRequest) gateway.PaymentResult {
	e.t.Helper()
	res, err := e.conn.CreatePayment(context.Background(), req)
	if err != nil {
		e.t.Fatalf("CreatePayment(%s): %v", req.Channel, err)
	}
	return res
}

// payer acts as the buyer through the sandbox's payer endpoints: action is pay, scan or decline.
func (e *sandboxEnv) payer(action, outTradeNo, buyerID string) int {
	e.t.Helper()
	body := "{}"
	if buyerID != "" {
		body = `{"buyer_id":"` + buyerID + `"}`
	}
	resp, err := http.Post(e.srv.URL+"/sandbox/alipay/trades/"+outTradeNo+"/"+action, "application/json", strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func (e *sandboxEnv) buyer() (userID, openID string) {
	e.t.Helper()
	resp, err := http.Post(e.srv.URL+"/sandbox/alipay/auth-codes", "application/json", strings.NewReader("{}"))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		UserID string `json:"user_id"`
		OpenID string `json:"open_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.UserID == "" || out.OpenID == "" {
		e.t.Fatalf("auth code: %d %v %+v", resp.StatusCode, err, out)
	}
	return out.UserID, out.OpenID
}

func (e *sandboxEnv) query(outTradeNo string) gateway.WalletPayment {
	e.t.Helper()
	wp, err := e.conn.QueryPayment(context.Background(), outTradeNo)
	if err != nil {
		e.t.Fatalf("QueryPayment(%s): %v", outTradeNo, err)
	}
	return wp
}

// waitApplied waits until the fake Applier has seen n payment and m refund notifications.
func (e *sandboxEnv) waitApplied(n, m int) ([]gateway.WalletPayment, []gateway.WalletRefund) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.app.mu.Lock()
		ps, rs := append([]gateway.WalletPayment(nil), e.app.payments...), append([]gateway.WalletRefund(nil), e.app.refunds...)
		e.app.mu.Unlock()
		if len(ps) >= n && len(rs) >= m {
			return ps, rs
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("applied %d payments and %d refunds, want %d and %d (records %v)", len(ps), len(rs), n, m, e.rec.kinds())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// browse GETs a cashier URL as the buyer's browser would; the sandbox opens the trade then.
func (e *sandboxEnv) browse(u string) string {
	e.t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || strings.Contains(string(b), "ACQ.") || strings.Contains(string(b), "isv.") {
		e.t.Fatalf("cashier %s: %d\n%s", u, resp.StatusCode, b)
	}
	return string(b)
}

func providerCode(err error) string {
	var pe *payment.Error
	if errors.As(err, &pe) {
		return pe.ProviderCode
	}
	return "<not a payment.Error>"
}

func TestSandboxQR(t *testing.T) {
	e := newSandboxEnv(t)
	ctx := context.Background()

	// A QR code nobody scanned: Alipay does not know the trade yet and cannot close it.
	young := e.create(e.request("HTqryoung", payment.ChannelQR, 199))
	if young.NextAction == nil || young.NextAction.Type != payment.ActionQRCode || young.NextAction.QRCode == "" || young.TradeNo != "" {
		t.Fatalf("qr result = %+v", young)
	}
	if wp := e.query("HTqryoung"); wp.State != gateway.WalletNotFound || wp.OutTradeNo != "HTqryoung" {
		t.Fatalf("young QR query = %+v, want not_found", wp)
	}
	if err := e.conn.ClosePayment(ctx, "HTqryoung"); !errors.As(err, new(*payment.Error)) || err.(*payment.Error).Code != gateway.CodeNotAtWallet {
		t.Fatalf("close unscanned QR: %v, want code %s", err, gateway.CodeNotAtWallet)
	}

	// Scanned, not paid: pending.
	e.create(e.request("HTqrscan", payment.ChannelQR, 250))
	if code := e.payer("scan", "HTqrscan", ""); code != http.StatusOK {
		t.Fatalf("scan: %d", code)
	}
	if wp := e.query("HTqrscan"); wp.State != gateway.WalletPending || wp.Amount != 250 || wp.TradeNo == "" {
		t.Fatalf("scanned QR query = %+v, want pending", wp)
	}

	// Paid: the query says so, the notification is applied once, closing is refused as already paid.
	e.create(e.request("HTqrpaid", payment.ChannelQR, 1234))
	before := time.Now().Add(-time.Second)
	if code := e.payer("pay", "HTqrpaid", ""); code != http.StatusOK {
		t.Fatalf("pay: %d", code)
	}
	wp := e.query("HTqrpaid")
	if wp.State != gateway.WalletPaid || wp.Amount != 1234 || wp.TradeNo == "" || wp.Account != e.sb.Credentials().AppID ||
		wp.Currency != "CNY" || wp.Payer.BuyerID == "" || wp.PaidAt.Before(before.Truncate(time.Second)) || wp.PaidAt.After(time.Now()) {
		t.Fatalf("paid QR query = %+v", wp)
	}
	ps, _ := e.waitApplied(1, 0)
	got := ps[0]
	if got.OutTradeNo != "HTqrpaid" || got.State != gateway.WalletPaid || got.Amount != 1234 || got.TradeNo != wp.TradeNo ||
		got.Account != wp.Account || got.Payer.BuyerID != wp.Payer.BuyerID || !got.PaidAt.Equal(wp.PaidAt) {
		t.Fatalf("notification applied %+v\nquery said          %+v", got, wp)
	}
	time.Sleep(300 * time.Millisecond) // a retry would come after 120ms
	if ps, _ := e.waitApplied(1, 0); len(ps) != 1 {
		t.Fatalf("notification applied %d times, want once", len(ps))
	}
	err := e.conn.ClosePayment(ctx, "HTqrpaid")
	var pe *payment.Error
	if !errors.As(err, &pe) || pe.Code != CodeAlreadyPaid || pe.Kind != payment.ProviderError {
		t.Fatalf("close paid trade: %v, want code already_paid", err)
	}
	if len(e.rec.kinds()) != 0 {
		t.Fatalf("rejected notifications: %v", e.rec.kinds())
	}
}

func TestSandboxClose(t *testing.T) {
	e := newSandboxEnv(t)
	ctx := context.Background()
	e.create(e.request("HTclose1", payment.ChannelQR, 500))
	if code := e.payer("scan", "HTclose1", ""); code != http.StatusOK {
		t.Fatalf("scan: %d", code)
	}
	if err := e.conn.ClosePayment(ctx, "HTclose1"); err != nil {
		t.Fatalf("close: %v", err)
	}
	if wp := e.query("HTclose1"); wp.State != gateway.WalletClosed {
		t.Fatalf("after close: %+v, want closed", wp)
	}
	// Closing again: Alipay refuses (status invalid); the query shows it closed, so it is success.
	if err := e.conn.ClosePayment(ctx, "HTclose1"); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if code := e.payer("pay", "HTclose1", ""); code != http.StatusConflict {
		t.Fatalf("paying a closed trade: %d, want 409", code)
	}
}

func TestSandboxMiniProgram(t *testing.T) {
	e := newSandboxEnv(t)
	userID, openID := e.buyer()
	for _, tc := range []struct {
		name  string
		payer payment.Payer
	}{
		{"buyer_id", payment.Payer{BuyerID: userID}},
		{"open_id", payment.Payer{AlipayOpenID: openID}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := e.request("HTmini"+tc.name, payment.ChannelMiniProgram, 880)
			req.Payer = tc.payer
			res := e.create(req)
			if res.TradeNo == "" || res.NextAction == nil || res.NextAction.Type != payment.ActionAlipayTrade || res.NextAction.TradeNo != res.TradeNo {
				t.Fatalf("miniprogram result = %+v", res)
			}
			wp := e.query(req.OutTradeNo)
			if wp.State != gateway.WalletPending || wp.TradeNo != res.TradeNo || wp.Payer.BuyerID != userID {
				t.Fatalf("query = %+v", wp)
			}
			if code := e.payer("pay", req.OutTradeNo, ""); code != http.StatusOK {
				t.Fatalf("pay: %d", code)
			}
			if wp := e.query(req.OutTradeNo); wp.State != gateway.WalletPaid || wp.Amount != 880 {
				t.Fatalf("after pay = %+v", wp)
			}
		})
	}
	_, err := e.conn.CreatePayment(context.Background(), e.request("HTminino", payment.ChannelMiniProgram, 1))
	if payment.KindOf(err) != payment.Invalid {
		t.Fatalf("miniprogram without payer: %v, want invalid", err)
	}
	req := e.request("HTminiunknown", payment.ChannelMiniProgram, 1)
	req.Payer.AlipayOpenID = "no-such-open-id"
	_, err = e.conn.CreatePayment(context.Background(), req)
	if code := providerCode(err); code == "" || code == "<not a payment.Error>" {
		t.Fatalf("unknown buyer: %v, want Alipay's refusal with its sub_code", err)
	}
}

func TestSandboxRedirectChannels(t *testing.T) {
	e := newSandboxEnv(t)
	for _, tc := range []struct {
		ch     payment.Channel
		method string
	}{
		{payment.ChannelH5, "alipay.trade.wap.pay"},
		{payment.ChannelWeb, "alipay.trade.page.pay"},
	} {
		t.Run(string(tc.ch), func(t *testing.T) {
			req := e.request("HTredir"+string(tc.ch), tc.ch, 4321)
			res := e.create(req)
			if res.NextAction == nil || res.NextAction.Type != payment.ActionRedirect {
				t.Fatalf("result = %+v", res)
			}
			u, err := url.Parse(res.NextAction.URL)
			if err != nil || !strings.HasPrefix(res.NextAction.URL, e.srv.URL+"/gateway.do?") {
				t.Fatalf("url %q", res.NextAction.URL)
			}
			q := u.Query()
			var biz map[string]string
			if err := json.Unmarshal([]byte(q.Get("biz_content")), &biz); err != nil {
				t.Fatal(err)
			}
			wantExpire := req.ExpiresAt.In(shanghai).Format("2006-01-02 15:04:05")
			if q.Get("method") != tc.method || q.Get("return_url") != req.ReturnURL || q.Get("notify_url") != req.NotifyURL ||
				biz["total_amount"] != "43.21" || biz["out_trade_no"] != req.OutTradeNo || biz["time_expire"] != wantExpire {
				t.Fatalf("params %v\nbiz %v", q, biz)
			}
			if tc.ch == payment.ChannelH5 && biz["quit_url"] != req.ReturnURL {
				t.Fatalf("wap quit_url = %q", biz["quit_url"])
			}
			if page := e.browse(res.NextAction.URL); !strings.Contains(page, "43.21") {
				t.Fatalf("cashier page does not show the amount:\n%s", page)
			}
			if wp := e.query(req.OutTradeNo); wp.State != gateway.WalletPending {
				t.Fatalf("after opening the cashier: %+v", wp)
			}
			if code := e.payer("pay", req.OutTradeNo, ""); code != http.StatusOK {
				t.Fatalf("pay: %d", code)
			}
			if wp := e.query(req.OutTradeNo); wp.State != gateway.WalletPaid || wp.Amount != 4321 {
				t.Fatalf("after pay: %+v", wp)
			}
		})
	}
}

func TestSandboxApp(t *testing.T) {
	e := newSandboxEnv(t)
	req := e.request("HTapp1", payment.ChannelApp, 200)
	res := e.create(req)
	if res.NextAction == nil || res.NextAction.Type != payment.ActionApp || res.NextAction.OrderString == "" {
		t.Fatalf("result = %+v", res)
	}
	v, err := url.ParseQuery(res.NextAction.OrderString)
	if err != nil || v.Get("method") != "alipay.trade.app.pay" || v.Get("sign") == "" || v.Get("app_id") != e.sb.Credentials().AppID {
		t.Fatalf("order string %q: %v", res.NextAction.OrderString, err)
	}
	// The Alipay app hands the order string to the gateway; the sandbox verifies it and opens the cashier.
	e.browse(e.srv.URL + "/gateway.do?" + res.NextAction.OrderString)
	if code := e.payer("pay", req.OutTradeNo, ""); code != http.StatusOK {
		t.Fatalf("pay: %d", code)
	}
	if wp := e.query(req.OutTradeNo); wp.State != gateway.WalletPaid || wp.Amount != 200 {
		t.Fatalf("after pay: %+v", wp)
	}
}

func TestSandboxRefunds(t *testing.T) {
	e := newSandboxEnv(t)
	ctx := context.Background()
	e.create(e.request("HTrefund", payment.ChannelQR, 1000))
	if code := e.payer("pay", "HTrefund", ""); code != http.StatusOK {
		t.Fatalf("pay: %d", code)
	}
	e.waitApplied(1, 0)

	// Unknown refund: not found, so the same request may be sent safely.
	if wr, err := e.conn.QueryRefund(ctx, "HTrefund", "HTr-none"); err != nil || wr.State != gateway.RefundNotFound {
		t.Fatalf("query unknown refund = %+v, %v; want not_found", wr, err)
	}

	partial := gateway.RefundRequest{OutTradeNo: "HTrefund", OutRefundNo: "HTr-1", Amount: 300, Total: 1000, Currency: "CNY", Reason: "部分退款"}
	wr, err := e.conn.Refund(ctx, partial)
	if err != nil || wr.State != gateway.RefundSuccess || wr.Amount != 300 || wr.OutRefundNo != "HTr-1" || wr.SucceededAt.IsZero() {
		t.Fatalf("partial refund = %+v, %v", wr, err)
	}
	// A repeat moves no money (fund_change N) and is confirmed by the refund query.
	again, err := e.conn.Refund(ctx, partial)
	if err != nil || again.State != gateway.RefundSuccess || again.Amount != 300 {
		t.Fatalf("repeated refund = %+v, %v", again, err)
	}
	q, err := e.conn.QueryRefund(ctx, "HTrefund", "HTr-1")
	if err != nil || q.State != gateway.RefundSuccess || q.Amount != 300 || q.SucceededAt.IsZero() {
		t.Fatalf("refund query = %+v, %v", q, err)
	}
	_, rs := e.waitApplied(2, 1)
	if rs[0].OutRefundNo != "HTr-1" || rs[0].State != gateway.RefundSuccess || rs[0].OutTradeNo != "HTrefund" {
		t.Fatalf("refund notification applied as %+v", rs[0])
	}
	if wp := e.query("HTrefund"); wp.State != gateway.WalletPaid {
		t.Fatalf("after a partial refund: %+v, want paid", wp)
	}

	// Too much: Alipay refuses, with its sub_code.
	_, err = e.conn.Refund(ctx, gateway.RefundRequest{OutTradeNo: "HTrefund", OutRefundNo: "HTr-x", Amount: 800, Total: 1000, Currency: "CNY"})
	if code := providerCode(err); code == "" || code == "<not a payment.Error>" {
		t.Fatalf("over-refund: %v, want a refusal with a sub_code", err)
	}

	// The rest: Alipay closes the trade, which stays paid for us, in the query and in the notification.
	wr, err = e.conn.Refund(ctx, gateway.RefundRequest{OutTradeNo: "HTrefund", OutRefundNo: "HTr-2", Amount: 700, Total: 1000, Currency: "CNY"})
	if err != nil || wr.State != gateway.RefundSuccess {
		t.Fatalf("final refund = %+v, %v", wr, err)
	}
	if wp := e.query("HTrefund"); wp.State != gateway.WalletPaid || wp.Amount != 1000 || wp.PaidAt.IsZero() {
		t.Fatalf("after a full refund (TRADE_CLOSED at Alipay): %+v, want paid", wp)
	}
	ps, rs := e.waitApplied(3, 2)
	if rs[1].OutRefundNo != "HTr-2" || ps[2].State != gateway.WalletPaid {
		t.Fatalf("full-refund notification applied as %+v / %+v", ps[2], rs[1])
	}
	if len(e.rec.kinds()) != 0 {
		t.Fatalf("rejected notifications: %v", e.rec.kinds())
	}
	// Closing a fully refunded trade: it was paid.
	if err := e.conn.ClosePayment(ctx, "HTrefund"); !errors.As(err, new(*payment.Error)) || err.(*payment.Error).Code != CodeAlreadyPaid {
		t.Fatalf("close after full refund: %v, want already_paid", err)
	}

	// Refunding an unpaid trade is refused.
	e.create(e.request("HTrefund-unpaid", payment.ChannelQR, 100))
	e.payer("scan", "HTrefund-unpaid", "")
	_, err = e.conn.Refund(ctx, gateway.RefundRequest{OutTradeNo: "HTrefund-unpaid", OutRefundNo: "HTr-u", Amount: 100, Currency: "CNY"})
	if code := providerCode(err); code == "" || code == "<not a payment.Error>" {
		t.Fatalf("refund unpaid: %v, want a refusal", err)
	}
}

func TestSandboxForgedNotification(t *testing.T) {
	e := newSandboxEnv(t)
	if err := e.faults.Set(faults.Settings{Notifications: faults.NotificationFaults{ForgedRate: 1}}); err != nil {
		t.Fatal(err)
	}
	e.create(e.request("HTforged", payment.ChannelQR, 77))
	if code := e.payer("pay", "HTforged", ""); code != http.StatusOK {
		t.Fatalf("pay: %d", code)
	}
	ps, _ := e.waitApplied(1, 0)
	if ps[0].OutTradeNo != "HTforged" || ps[0].Amount != 77 {
		t.Fatalf("applied %+v", ps[0])
	}
	kinds := e.rec.kinds()
	if len(kinds) == 0 {
		t.Fatal("the forged probe was not recorded")
	}
	for _, k := range kinds {
		if k != RejectForged {
			t.Fatalf("records %v, want only forged", kinds)
		}
	}
}

func TestSandboxNotificationRetriedUntilApplied(t *testing.T) {
	e := newSandboxEnv(t)
	e.app.mu.Lock()
	e.app.paymentErr = errors.New("database is locked")
	e.app.mu.Unlock()
	e.create(e.request("HTretry", payment.ChannelQR, 10))
	e.payer("pay", "HTretry", "")
	e.waitApplied(1, 0) // refused with "fail"
	e.app.mu.Lock()
	e.app.paymentErr = nil
	e.app.mu.Unlock()
	ps, _ := e.waitApplied(2, 0) // Alipay's retry, 4m scaled to 120ms
	if ps[1].OutTradeNo != "HTretry" || ps[1].State != gateway.WalletPaid {
		t.Fatalf("retry applied %+v", ps[1])
	}
}

func TestSandboxFaults(t *testing.T) {
	e := newSandboxEnv(t)
	ctx := context.Background()
	e.create(e.request("HTfault", payment.ChannelQR, 10))
	e.payer("pay", "HTfault", "")

	if err := e.faults.Set(faults.Settings{API: faults.APIFaults{ErrorRate: 1}}); err != nil {
		t.Fatal(err)
	}
	// Alipay's system error: outcome unknown, so no ProviderCode (a refund must stay pending).
	_, err := e.conn.CreatePayment(ctx, e.request("HTfault2", payment.ChannelQR, 10))
	if payment.KindOf(err) != payment.ProviderError || providerCode(err) != "" {
		t.Fatalf("create under system errors: %v, want provider error without code", err)
	}
	_, err = e.conn.Refund(ctx, gateway.RefundRequest{OutTradeNo: "HTfault", OutRefundNo: "HTf-1", Amount: 10, Currency: "CNY"})
	if payment.KindOf(err) != payment.ProviderError || providerCode(err) != "" {
		t.Fatalf("refund under system errors: %v, want provider error without code", err)
	}
	if _, err := e.conn.QueryPayment(ctx, "HTfault"); payment.KindOf(err) != payment.ProviderError || providerCode(err) != "" {
		t.Fatalf("query under system errors: %v", err)
	}
	if err := e.conn.ClosePayment(ctx, "HTfault"); payment.KindOf(err) != payment.ProviderError || providerCode(err) != "" {
		t.Fatalf("close under system errors: %v", err)
	}

	// Latency beyond the per-call timeout: outcome unknown too, and the call returns in time.
	if err := e.faults.Set(faults.Settings{API: faults.APIFaults{LatencyMS: 2000}}); err != nil {
		t.Fatal(err)
	}
	e.conn.timeout = 200 * time.Millisecond
	start := time.Now()
	_, err = e.conn.QueryPayment(ctx, "HTfault")
	if payment.KindOf(err) != payment.ProviderError || providerCode(err) != "" || !isTimeout(err) {
		t.Fatalf("slow query: %v, want a timeout without code", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("slow query took %s with a 200ms timeout", d)
	}
	if err := e.faults.Set(faults.Settings{}); err != nil {
		t.Fatal(err)
	}
	e.conn.timeout = 5 * time.Second
	if wp := e.query("HTfault"); wp.State != gateway.WalletPaid {
		t.Fatalf("after faults: %+v", wp)
	}
}

func TestSandboxWrongKeys(t *testing.T) {
	e := newSandboxEnv(t)
	creds := e.sb.Credentials()
	k := keysOnce()

	// Answers signed by someone other than the configured Alipay key are not believed: the
	// outcome is unknown, never a refusal that would release money.
	c, err := New(Config{AppID: creds.AppID, AppPrivateKey: creds.AppPrivateKey, AlipayPublicKey: k.alipayPubPEM, GatewayURL: e.srv.URL + "/gateway.do"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CreatePayment(context.Background(), e.request("HTwrongkey", payment.ChannelQR, 10))
	var pe *payment.Error
	if !errors.As(err, &pe) || pe.Kind != payment.ProviderError || pe.ProviderCode != "" || pe.Code != CodeProviderUnavailable {
		t.Fatalf("unverifiable answer: %v, want an unknown outcome", err)
	}

	// Requests signed with a key Alipay does not know: Alipay's signed refusal, with its code.
	c, err = New(Config{AppID: creds.AppID, AppPrivateKey: k.appPEM, AlipayPublicKey: creds.AlipayPublicKey, GatewayURL: e.srv.URL + "/gateway.do"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CreatePayment(context.Background(), e.request("HTwrongapp", payment.ChannelQR, 10))
	if code := providerCode(err); code != "isv.invalid-signature" {
		t.Fatalf("bad request signature: %v, want isv.invalid-signature", err)
	}
}
