package wechatpay

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/native"
	"github.com/wechatpay-apiv3/wechatpay-go/services/refunddomestic"

	"github.com/hutong-pay/hutong/internal/sandbox/faults"
)

func TestRetrySchedule(t *testing.T) {
	got := wallet{}.Schedule()
	want := []time.Duration{15 * time.Second, 15 * time.Second, 30 * time.Second, 3 * time.Minute, 10 * time.Minute,
		20 * time.Minute, 30 * time.Minute, 30 * time.Minute, 30 * time.Minute, time.Hour, 3 * time.Hour, 3 * time.Hour,
		3 * time.Hour, 6 * time.Hour, 6 * time.Hour}
	if len(got) != len(want) {
		t.Fatalf("schedule has %d steps, want %d", len(got), len(want))
	}
	var total time.Duration
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("step %d = %v, want %v", i, got[i], want[i])
		}
		total += got[i]
	}
	if total != 24*time.Hour+4*time.Minute {
		t.Errorf("total %v, want 24h4m", total)
	}
	for status, want := range map[int]bool{200: true, 204: true, 299: true, 300: false, 400: false, 500: false} {
		if got := (wallet{}).Acknowledged(status, []byte(`{"code":"FAIL"}`)); got != want {
			t.Errorf("Acknowledged(%d) = %v", status, got)
		}
	}
}

// TestNotificationSigningMigration follows a merchant switching verification modes: notifications move
// to the platform certificate (or back), while API responses keep following each request's Wechatpay-Serial.
func TestNotificationSigningMigration(t *testing.T) {
	e := newEnv(t, "")
	s := e.newSink()
	// A merchant configured for the public key only rejects certificate-signed notifications.
	pubOnly := e.newSinkWith(verifiers.NewSHA256WithRSAPubkeyVerifier(e.creds.PublicKeyID, *e.wxPub))
	c := e.pubKeyClient()

	a := e.sandboxPost("PUT", "/sandbox/wechatpay/merchant", `{"notification_signing":"certificate"}`)
	if a.status != http.StatusOK {
		t.Fatalf("switch: %d %s", a.status, a.body)
	}
	var settings merchantSettings
	if err := json.Unmarshal(e.sandboxPost("GET", "/sandbox/wechatpay/merchant", "").body, &settings); err != nil {
		t.Fatal(err)
	}
	if settings.NotificationSigning != signingCert || settings.PublicKeyID != e.creds.PublicKeyID ||
		len(settings.PlatformSerials) != 1 || settings.PlatformSerials[0] != e.sb.keys.newestCert().serial {
		t.Errorf("merchant settings = %+v", settings)
	}
	nativePrepay(t, e, c, "migrate_01", s.srv.URL+"/n", 1)
	nativePrepay(t, e, c, "migrate_02", pubOnly.srv.URL+"/n", 1)
	e.pay("migrate_01", "")
	e.pay("migrate_02", "")
	n := s.wait("TRANSACTION.SUCCESS", nil)
	if got := n.header.Get("Wechatpay-Serial"); got != e.sb.keys.newestCert().serial {
		t.Errorf("notification signed by %q, want the platform certificate", got)
	}
	waitFor(t, "public-key-only merchant to reject", func() bool { return pubOnly.rejected.Load() > 0 })
	if len(pubOnly.received()) != 0 {
		t.Error("a public-key-only verifier accepted a certificate-signed notification")
	}
	// Responses still follow the request: this client names the public key.
	svc := native.NativeApiService{Client: c}
	_, result, err := svc.QueryOrderByOutTradeNo(context.Background(), native.QueryOrderByOutTradeNoRequest{OutTradeNo: core.String("migrate_01"), Mchid: core.String(e.creds.MchID)})
	if err != nil {
		t.Fatal(err)
	}
	if got := result.Response.Header.Get("Wechatpay-Serial"); got != e.creds.PublicKeyID {
		t.Errorf("response during migration signed by %q, want the public key", got)
	}

	// The setting persists, and switching back moves notifications back to the public key.
	e.restart()
	if got := e.sb.signingMode(); got != signingCert {
		t.Fatalf("after restart notification_signing = %q", got)
	}
	e.sandboxPost("PUT", "/sandbox/wechatpay/merchant", `{"notification_signing":"public_key"}`)
	nativePrepay(t, e, e.pubKeyClient(), "migrate_03", s.srv.URL+"/n", 1)
	e.pay("migrate_03", "")
	n = s.wait("TRANSACTION.SUCCESS", func(r received) bool { return r.plaintext["out_trade_no"] == "migrate_03" })
	if got := n.header.Get("Wechatpay-Serial"); got != e.creds.PublicKeyID {
		t.Errorf("after switching back: signed by %q", got)
	}
}

func TestForgedProbesAreRejectedBySDK(t *testing.T) {
	e := newEnv(t, "")
	s := e.newSink()
	if err := e.faults.Set(faults.Settings{Notifications: faults.NotificationFaults{ForgedRate: 1}}); err != nil {
		t.Fatal(err)
	}
	nativePrepay(t, e, e.pubKeyClient(), "forged_001", s.srv.URL+"/n", 1)
	e.pay("forged_001", "")
	s.wait("TRANSACTION.SUCCESS", nil)
	if s.rejected.Load() == 0 {
		t.Error("no forged probe reached the merchant, or the SDK accepted it")
	}
}

// TestRestartMidRetry: a notification whose first attempts fail is still delivered by a new
// Sandbox and Sender over the same database; a refund still processing at shutdown succeeds afterwards.
func TestRestartMidRetry(t *testing.T) {
	e := newEnv(t, "")
	s := e.newSink()
	s.down.Store(true)
	c := e.pubKeyClient()
	nativePrepay(t, e, c, "restart_01", s.srv.URL+"/n", 500)
	e.pay("restart_01", "")
	var event string
	if err := e.db.QueryRow(`SELECT event_id FROM wx_orders WHERE out_trade_no = 'restart_01'`).Scan(&event); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two failed attempts", func() bool {
		n, _, err := e.sender.Attempts(context.Background(), event)
		return err == nil && n >= 2
	})
	e.sb.refundDelay.Store(int64(400 * time.Millisecond)) // the refund below is still processing at shutdown
	rs := refunddomestic.RefundsApiService{Client: c}
	if _, _, err := rs.Create(context.Background(), refunddomestic.CreateRequest{
		OutTradeNo: core.String("restart_01"), OutRefundNo: core.String("RR1"), NotifyUrl: core.String(s.srv.URL + "/r"),
		Amount: &refunddomestic.AmountReq{Refund: core.Int64(200), Total: core.Int64(500), Currency: core.String("CNY")},
	}); err != nil {
		t.Fatal(err)
	}

	e.stop()
	s.down.Store(false)
	time.Sleep(500 * time.Millisecond) // the refund falls due while the sandbox is down
	e.start()

	n := s.wait("TRANSACTION.SUCCESS", nil)
	if n.plaintext["out_trade_no"] != "restart_01" {
		t.Errorf("delivered %v", n.plaintext)
	}
	// The sender records the acknowledgement just after the merchant answered: wait for it.
	waitFor(t, "the delivery recorded after at least three attempts", func() bool {
		attempts, delivered, err := e.sender.Attempts(context.Background(), event)
		return err == nil && delivered && attempts >= 3
	})
	r := s.wait("REFUND.SUCCESS", nil)
	if r.plaintext["out_refund_no"] != "RR1" {
		t.Errorf("refund notification %v", r.plaintext)
	}
	// Orders and refunds survived too.
	svc := native.NativeApiService{Client: e.pubKeyClient()}
	tx, _, err := svc.QueryOrderByOutTradeNo(context.Background(), native.QueryOrderByOutTradeNoRequest{OutTradeNo: core.String("restart_01"), Mchid: core.String(e.creds.MchID)})
	if err != nil || *tx.TradeState != "REFUND" {
		t.Fatalf("order after restart: %v %v", err, tx)
	}
}

// TestNotificationRecordedBeforeHandover: a payment whose notification never reached the sender
// (a crash in between) is handed over at the next start.
func TestNotificationRecordedBeforeHandover(t *testing.T) {
	e := newEnv(t, "")
	s := e.newSink()
	nativePrepay(t, e, e.pubKeyClient(), "handover_1", s.srv.URL+"/n", 1)
	// Pay as handlePay does, but stop before the handover, as a crash would.
	now := e.now()
	if _, err := e.db.Exec(`UPDATE wx_orders SET state = 'SUCCESS', payer_openid = 'oX', transaction_id = '4200000000000000000000000001',
		bank_type = 'OTHERS', success_at = ?, event_id = 'crash-event-1' WHERE out_trade_no = 'handover_1'`, now.UnixNano()); err != nil {
		t.Fatal(err)
	}
	e.restart()
	n := s.wait("TRANSACTION.SUCCESS", nil)
	if n.req.ID != "crash-event-1" || n.plaintext["transaction_id"] != "4200000000000000000000000001" {
		t.Errorf("handed over %s %v", n.req.ID, n.plaintext)
	}
	var notified bool
	if err := e.db.QueryRow(`SELECT notified FROM wx_orders WHERE out_trade_no = 'handover_1'`).Scan(&notified); err != nil || !notified {
		t.Errorf("notified = %v, %v", notified, err)
	}
}

// TestConcurrentPayers: many payers racing for one order (and a close racing them) give exactly one payment
// and exactly one notification.
func TestConcurrentPayers(t *testing.T) {
	e := newEnv(t, "")
	s := e.newSink()
	nativePrepay(t, e, e.pubKeyClient(), "race_00001", s.srv.URL+"/n", 1)
	var wg sync.WaitGroup
	statuses := make([]int, 12)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 0 {
				statuses[i] = e.raw(rawCall{method: "POST", uri: "/v3/pay/transactions/out-trade-no/race_00001/close",
					body: `{"mchid":"` + e.creds.MchID + `"}`}).status
				return
			}
			statuses[i] = e.pay("race_00001", "").status
		}()
	}
	wg.Wait()
	paid := 0
	for i, st := range statuses[1:] {
		switch st {
		case http.StatusOK:
			paid++
		case http.StatusConflict:
		default:
			t.Errorf("payer %d: status %d", i+1, st)
		}
	}
	closed := statuses[0] == http.StatusNoContent
	if closed == (paid == 1) || paid > 1 {
		t.Fatalf("close %d and %d payments: want exactly one winner", statuses[0], paid)
	}
	if paid == 1 {
		s.wait("TRANSACTION.SUCCESS", nil)
		time.Sleep(50 * time.Millisecond)
		if n := len(s.received()); n != 1 {
			t.Errorf("%d notifications, want 1", n)
		}
	}
}
