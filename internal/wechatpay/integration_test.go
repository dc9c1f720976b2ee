package wechatpay

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
	"github.com/hutong-pay/hutong/internal/sandbox/faults"
)

// Every channel's prepay against the sandbox, in every verification mode; the next actions are
// what the buyer's client needs, JSAPI and App signatures verified with the merchant public key,
// and responses signed with the key the account chose.
func TestSandboxPrepayEveryChannelEveryMode(t *testing.T) {
	s := startSandbox(t)
	m := s.merchant()
	merchantPub := merchantPublicKey(t, s)
	for _, tc := range []struct{ mode, responseSerial string }{
		{ModePublicKey, ""}, {ModeCertificate, ""}, {ModeBoth, ModePublicKey}, {ModeBoth, ModeCertificate},
	} {
		t.Run(tc.mode+"/"+tc.responseSerial, func(t *testing.T) {
			cfg := s.config(tc.mode, tc.responseSerial)
			serials := &serialRecorder{}
			cfg.base = serials
			c := s.connector(cfg)
			for _, ch := range []payment.Channel{payment.ChannelQR, payment.ChannelMiniProgram, payment.ChannelH5, payment.ChannelApp} {
				otn := payment.NewOutTradeNo()
				res, err := c.CreatePayment(context.Background(), gateway.PaymentRequest{
					OutTradeNo: otn, Amount: 1234, Currency: "CNY", Description: "Hutong test 测试", Channel: ch,
					Payer: payment.Payer{OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", ClientIP: "203.0.113.7"}, NotifyURL: "http://127.0.0.1:9/notify/wechatpay/payments",
					ReturnURL: "https://shop.example/checkout/pay_1/return", ExpiresAt: time.Now().Add(30 * time.Minute),
				})
				if err != nil {
					t.Fatalf("%s: %v", ch, err)
				}
				a := res.NextAction
				switch ch {
				case payment.ChannelQR:
					if a.Type != payment.ActionQRCode || !strings.HasPrefix(a.QRCode, "weixin://wxpay/bizpayurl?pr=") {
						t.Fatalf("qr next_action %+v", a)
					}
				case payment.ChannelMiniProgram:
					p := a.Params
					if a.Type != payment.ActionWeChatJSAPI || p["appId"] != s.creds.AppID || p["signType"] != "RSA" ||
						!strings.HasPrefix(p["package"], "prepay_id=") || len(p["nonceStr"]) != 32 || p["timeStamp"] == "" || len(p) != 6 {
						t.Fatalf("jsapi next_action %+v", a)
					}
					verifyRSA(t, merchantPub, p["appId"]+"\n"+p["timeStamp"]+"\n"+p["nonceStr"]+"\n"+p["package"]+"\n", p["paySign"])
				case payment.ChannelH5:
					if a.Type != payment.ActionRedirect || !strings.HasPrefix(a.URL, s.srv.URL+"/sandbox/wechatpay/h5/") ||
						!strings.Contains(a.URL, "redirect_url=https%3A%2F%2Fshop.example%2Fcheckout%2Fpay_1%2Freturn") {
						t.Fatalf("h5 next_action %+v", a)
					}
				case payment.ChannelApp:
					p := a.Params
					if a.Type != payment.ActionApp || p["appid"] != s.creds.AppID || p["partnerid"] != s.creds.MchID ||
						p["package"] != "Sign=WXPay" || p["prepayid"] == "" || len(p["noncestr"]) != 32 || len(p) != 7 {
						t.Fatalf("app next_action %+v", a)
					}
					verifyRSA(t, merchantPub, p["appid"]+"\n"+p["timestamp"]+"\n"+p["noncestr"]+"\n"+p["prepayid"]+"\n", p["sign"])
				}
				// The order exists at the wallet with our amount.
				wp, err := c.QueryPayment(context.Background(), otn)
				if err != nil || wp.State != gateway.WalletPending || wp.Amount != 1234 || wp.Account != s.creds.MchID {
					t.Fatalf("%s: query %+v, %v", ch, wp, err)
				}
			}
			wantSerial := func(sn string) bool { return sn == m.PublicKeyID }
			if cfg.Mode == ModeCertificate || tc.responseSerial == ModeCertificate {
				wantSerial = func(sn string) bool { return slices.Contains(m.PlatformSerials, sn) }
			}
			// /v3/certificates answers are always certificate-signed; every API answer by the chosen key.
			n := 0
			for path, sn := range serials.seen() {
				if path != "/v3/certificates" {
					n++
					if !wantSerial(sn) {
						t.Fatalf("%s answered with the key %q", path, sn)
					}
				}
			}
			if n != 8 {
				t.Fatalf("saw %d API answers, want 8", n)
			}
		})
	}
}

func TestSandboxOrderLifecycle(t *testing.T) {
	s := startSandbox(t)
	c := s.connector(s.config(ModePublicKey, ""))
	ctx := context.Background()
	place := func(amount int64) string {
		t.Helper()
		otn := payment.NewOutTradeNo()
		if _, err := c.CreatePayment(ctx, gateway.PaymentRequest{OutTradeNo: otn, Amount: amount, Currency: "CNY", Description: "lifecycle",
			Channel: payment.ChannelQR, NotifyURL: "http://127.0.0.1:9/notify/wechatpay/payments"}); err != nil {
			t.Fatal(err)
		}
		return otn
	}

	// Unknown orders and refunds are states, not errors.
	if wp, err := c.QueryPayment(ctx, "HTnosuchorder0000000000000000000"); err != nil || wp.State != gateway.WalletNotFound {
		t.Fatalf("unknown order: %+v, %v", wp, err)
	}
	if wr, err := c.QueryRefund(ctx, "HTnosuchorder0000000000000000000", "HTnosuchrefund"); err != nil || wr.State != gateway.RefundNotFound {
		t.Fatalf("unknown refund: %+v, %v", wr, err)
	}

	// Closed unpaid; closing twice is fine.
	closed := place(100)
	if err := c.ClosePayment(ctx, closed); err != nil {
		t.Fatal(err)
	}
	if err := c.ClosePayment(ctx, closed); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if wp, err := c.QueryPayment(ctx, closed); err != nil || wp.State != gateway.WalletClosed {
		t.Fatalf("closed order: %+v, %v", wp, err)
	}

	// Paid: query tells, close refuses with already_paid.
	paid := place(1000)
	s.pay(paid)
	wp, err := c.QueryPayment(ctx, paid)
	if err != nil || wp.State != gateway.WalletPaid || wp.Amount != 1000 || wp.Currency != "CNY" || wp.TransactionID == "" ||
		wp.PaidAt.IsZero() || wp.Payer.OpenID == "" || wp.Account != s.creds.MchID || wp.OutTradeNo != paid {
		t.Fatalf("paid order: %+v, %v", wp, err)
	}
	err = c.ClosePayment(ctx, paid)
	var pe *payment.Error
	if !errors.As(err, &pe) || pe.Kind != payment.ProviderError || pe.Code != "already_paid" || pe.ProviderCode != "ORDERPAID" {
		t.Fatalf("close of a paid order: %v, want already_paid", err)
	}

	// The same out_trade_no with other content: WeChat Pay refuses, clearly.
	_, err = c.CreatePayment(ctx, gateway.PaymentRequest{OutTradeNo: paid, Amount: 1, Currency: "CNY", Description: "again",
		Channel: payment.ChannelQR, NotifyURL: "http://127.0.0.1:9/n"})
	if !errors.As(err, &pe) || pe.Kind != payment.ProviderError || pe.ProviderCode == "" {
		t.Fatalf("reused out_trade_no: %v, want a provider error with WeChat's code", err)
	}

	// Refund part of it; it settles.
	orn := payment.NewOutTradeNo()
	wr, err := c.Refund(ctx, gateway.RefundRequest{OutTradeNo: paid, OutRefundNo: orn, Amount: 300, Total: 1000, Currency: "CNY", Reason: "测试退款"})
	if err != nil || wr.OutRefundNo != orn || wr.OutTradeNo != paid || wr.RefundID == "" || wr.Amount != 300 ||
		(wr.State != gateway.RefundProcessing && wr.State != gateway.RefundSuccess) {
		t.Fatalf("refund: %+v, %v", wr, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for wr.State != gateway.RefundSuccess && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		if wr, err = c.QueryRefund(ctx, paid, orn); err != nil {
			t.Fatal(err)
		}
	}
	if wr.State != gateway.RefundSuccess || wr.SucceededAt.IsZero() || wr.Amount != 300 {
		t.Fatalf("refund did not settle: %+v", wr)
	}
	if wp, err := c.QueryPayment(ctx, paid); err != nil || wp.State != gateway.WalletPaid {
		t.Fatalf("refunded order: %+v, %v (REFUND is still paid)", wp, err)
	}

	// More than is left: refused with WeChat's code, so the gateway can release the amount.
	_, err = c.Refund(ctx, gateway.RefundRequest{OutTradeNo: paid, OutRefundNo: payment.NewOutTradeNo(), Amount: 701, Total: 1000, Currency: "CNY"})
	if !errors.As(err, &pe) || pe.Kind != payment.ProviderError || pe.ProviderCode == "" {
		t.Fatalf("over-refund: %v, want a provider error with WeChat's code", err)
	}
}

// Notifications from the sandbox reach the handler, are verified and decrypted, and apply once.
func TestSandboxNotifications(t *testing.T) {
	for _, mode := range []string{ModePublicKey, ModeCertificate, ModeBoth} {
		t.Run(mode, func(t *testing.T) {
			s := startSandbox(t)
			if mode == ModeCertificate {
				s.signNotificationsWith(ModeCertificate)
			}
			c := s.connector(s.config(mode, ""))
			rv := receive(t, c)
			ctx := context.Background()
			otn := payment.NewOutTradeNo()
			if _, err := c.CreatePayment(ctx, gateway.PaymentRequest{OutTradeNo: otn, Amount: 888, Currency: "CNY", Description: "notify",
				Channel: payment.ChannelMiniProgram, Payer: payment.Payer{OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}, NotifyURL: rv.url + "payments"}); err != nil {
				t.Fatal(err)
			}
			s.pay(otn)
			rv.waitApplied(t)
			want, err := c.QueryPayment(ctx, otn)
			if err != nil {
				t.Fatal(err)
			}
			// Acknowledged: no retry follows (with compressed schedules it would come within milliseconds).
			time.Sleep(300 * time.Millisecond)
			ps, _ := rv.app.calls()
			if len(ps) != 1 {
				t.Fatalf("applied %d times, want once", len(ps))
			}
			got := ps[0]
			if !got.PaidAt.Equal(want.PaidAt) {
				t.Fatalf("PaidAt %v, query says %v", got.PaidAt, want.PaidAt)
			}
			got.PaidAt = want.PaidAt
			if got != want || got.Payer.OpenID != "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o" || got.Amount != 888 {
				t.Fatalf("applied %+v\nquery   %+v", got, want)
			}

			// The refund's notification goes to the refund notify URL.
			orn := payment.NewOutTradeNo()
			if _, err := c.Refund(ctx, gateway.RefundRequest{OutTradeNo: otn, OutRefundNo: orn, Amount: 88, Total: 888, Currency: "CNY",
				NotifyURL: rv.url + "refunds"}); err != nil {
				t.Fatal(err)
			}
			rv.waitApplied(t)
			_, rs := rv.app.calls()
			if len(rs) != 1 || rs[0].OutRefundNo != orn || rs[0].State != gateway.RefundSuccess || rs[0].Amount != 88 || rs[0].SucceededAt.IsZero() {
				t.Fatalf("refund applied %+v", rs)
			}
			if recs := rv.rec.all(); len(recs) != 0 {
				t.Fatalf("recorded %+v", recs)
			}
		})
	}
}

// The migration failure of 2024–2026: the account moves notifications to the public key (or back)
// while the merchant trusts only the other key. Only "both" keeps working.
func TestSandboxMigrationNeedsBoth(t *testing.T) {
	for _, tc := range []struct {
		mode, signing string
		applied       bool
	}{
		{ModeCertificate, ModePublicKey, false},
		{ModePublicKey, ModeCertificate, false},
		{ModeBoth, ModePublicKey, true},
		{ModeBoth, ModeCertificate, true},
	} {
		t.Run(tc.mode+" with notifications signed by "+tc.signing, func(t *testing.T) {
			s := startSandbox(t)
			s.signNotificationsWith(tc.signing)
			c := s.connector(s.config(tc.mode, ""))
			rv := receive(t, c)
			otn := payment.NewOutTradeNo()
			if _, err := c.CreatePayment(context.Background(), gateway.PaymentRequest{OutTradeNo: otn, Amount: 5, Currency: "CNY",
				Description: "migration", Channel: payment.ChannelQR, NotifyURL: rv.url + "payments"}); err != nil {
				t.Fatal(err)
			}
			s.pay(otn)
			if tc.applied {
				rv.waitApplied(t)
				return
			}
			r := rv.waitRecorded(t, ReasonBadSignature)
			if ps, _ := rv.app.calls(); len(ps) != 0 {
				t.Fatalf("applied a notification signed with an untrusted key")
			}
			if r.fields["serial"] == "" {
				t.Fatalf("record lacks the serial operators need: %+v", r)
			}
		})
	}
}

// WeChat Pay's probes: a mis-signed copy before the real one. The probe is rejected and recorded,
// the real one applied once.
func TestSandboxForgedNotificationRejected(t *testing.T) {
	s := startSandbox(t)
	s.setFaults(faults.Settings{Notifications: faults.NotificationFaults{ForgedRate: 1}})
	c := s.connector(s.config(ModeBoth, ""))
	rv := receive(t, c)
	otn := payment.NewOutTradeNo()
	if _, err := c.CreatePayment(context.Background(), gateway.PaymentRequest{OutTradeNo: otn, Amount: 77, Currency: "CNY",
		Description: "probe", Channel: payment.ChannelQR, NotifyURL: rv.url + "payments"}); err != nil {
		t.Fatal(err)
	}
	s.pay(otn)
	rv.waitApplied(t)
	rv.waitRecorded(t, ReasonBadSignature)
	time.Sleep(200 * time.Millisecond)
	if ps, _ := rv.app.calls(); len(ps) != 1 || ps[0].OutTradeNo != otn {
		t.Fatalf("applied %+v, want the real notification once", ps)
	}
}

// An apply that fails (database down) is answered 500 and WeChat Pay's retry applies it later.
func TestSandboxRetryAfterApplyFailure(t *testing.T) {
	s := startSandbox(t)
	c := s.connector(s.config(ModePublicKey, ""))
	rv := receive(t, c)
	rv.app.mu.Lock()
	rv.app.err = errors.New("database is down")
	rv.app.mu.Unlock()
	otn := payment.NewOutTradeNo()
	if _, err := c.CreatePayment(context.Background(), gateway.PaymentRequest{OutTradeNo: otn, Amount: 9, Currency: "CNY",
		Description: "retry", Channel: payment.ChannelQR, NotifyURL: rv.url + "payments"}); err != nil {
		t.Fatal(err)
	}
	s.pay(otn)
	rv.waitApplied(t) // fails
	rv.app.mu.Lock()
	rv.app.err = nil
	rv.app.mu.Unlock()
	rv.waitApplied(t) // the retry
	ps, _ := rv.app.calls()
	if len(ps) < 2 || ps[len(ps)-1].OutTradeNo != otn {
		t.Fatalf("applied %+v, want a retry after the failure", ps)
	}
}

// Wallet errors and silence become ProviderError: with WeChat's code when it clearly refused,
// without when the outcome is unknown.
func TestSandboxFaults(t *testing.T) {
	s := startSandbox(t)
	cfg := s.config(ModePublicKey, "")
	cfg.Timeout = 300 * time.Millisecond
	c := s.connector(cfg)
	ctx := context.Background()
	req := gateway.PaymentRequest{OutTradeNo: payment.NewOutTradeNo(), Amount: 1, Currency: "CNY", Description: "faults",
		Channel: payment.ChannelQR, NotifyURL: "http://127.0.0.1:9/n"}

	s.setFaults(faults.Settings{API: faults.APIFaults{ErrorRate: 1}})
	_, err := c.CreatePayment(ctx, req)
	var pe *payment.Error
	if !errors.As(err, &pe) || pe.Kind != payment.ProviderError || pe.ProviderCode != "" || pe.Code != "provider_unavailable" {
		t.Fatalf("SYSTEM_ERROR: %v, want an unknown outcome (no provider code)", err)
	}
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != "SYSTEM_ERROR" || ae.StatusCode != 500 || ae.RequestID == "" {
		t.Fatalf("SYSTEM_ERROR cause: %v", err)
	}
	if strings.Contains(err.Error(), "Wechatpay-") || strings.Contains(err.Error(), "Header") {
		t.Fatalf("error text carries response headers: %v", err)
	}

	s.setFaults(faults.Settings{API: faults.APIFaults{LatencyMS: 1000}})
	start := time.Now()
	_, err = c.Refund(ctx, gateway.RefundRequest{OutTradeNo: req.OutTradeNo, OutRefundNo: "R1", Amount: 1, Total: 1, Currency: "CNY"})
	if !errors.As(err, &pe) || pe.Kind != payment.ProviderError || pe.ProviderCode != "" || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow wallet: %v, want an unknown outcome from the deadline", err)
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Fatalf("call took %v; the per-call timeout is 300ms", d)
	}

	s.setFaults(faults.Settings{})
	if _, err := c.CreatePayment(ctx, req); err != nil {
		t.Fatalf("after faults: %v", err)
	}
}

// The skew against the wallet's signed timestamps is exported and warned about, with a skewed clock.
func TestSandboxClockSkew(t *testing.T) {
	s := startSandbox(t)
	for _, tc := range []struct {
		offset time.Duration
		level  string
	}{
		{-90 * time.Second, "level=WARN"},  // our clock behind: skew +90 s
		{400 * time.Second, "level=ERROR"}, // ahead beyond the limit: skew −400 s
		{2 * time.Second, ""},              // fine: nothing logged
	} {
		t.Run(tc.offset.String(), func(t *testing.T) {
			var logs bytes.Buffer
			reg := prometheus.NewPedanticRegistry()
			cfg := s.config(ModePublicKey, "")
			cfg.Now = func() time.Time { return time.Now().Add(tc.offset) }
			cfg.Metrics = reg
			cfg.Logger = slog.New(slog.NewTextHandler(&lockedWriter{w: &logs}, nil))
			c := s.connector(cfg)
			// The SDK signs and checks with the real clock, so calls still work: only our view is skewed.
			// (Error answers are unsigned and carry no timestamp: a signed answer is needed.)
			place := func() {
				t.Helper()
				if _, err := c.CreatePayment(context.Background(), gateway.PaymentRequest{OutTradeNo: payment.NewOutTradeNo(), Amount: 1,
					Currency: "CNY", Description: "skew", Channel: payment.ChannelQR, NotifyURL: "http://127.0.0.1:9/n"}); err != nil {
					t.Fatal(err)
				}
			}
			place()
			want := -tc.offset.Seconds()
			got := gaugeValue(t, reg)
			if got < want-2 || got > want+2 {
				t.Fatalf("gauge %v, want about %v", got, want)
			}
			if skew, ok := c.ClockSkew(); !ok || skew.Seconds() < want-2 || skew.Seconds() > want+2 {
				t.Fatalf("ClockSkew %v %v, want about %vs", skew, ok, want)
			}
			switch {
			case tc.level == "" && strings.Contains(logs.String(), "skew"):
				t.Fatalf("logged for a small skew:\n%s", logs.String())
			case tc.level != "" && (!strings.Contains(logs.String(), tc.level) || !strings.Contains(logs.String(), "clock skew")):
				t.Fatalf("want a %s skew log, got:\n%s", tc.level, logs.String())
			}
			// Warned once a minute, not once per call.
			place()
			if n := strings.Count(logs.String(), "clock skew"); tc.level != "" && n != 1 {
				t.Fatalf("%d skew logs for two calls, want 1", n)
			}
		})
	}
}

func gaugeValue(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != SkewMetricName {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "provider" && l.GetValue() == "wechatpay" {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{provider=\"wechatpay\"} gathered", SkewMetricName)
	return 0
}

// A wrong APIv3 key in certificate mode fails at New, not at the first payment.
func TestSandboxCertificateModeChecksKeyAtStart(t *testing.T) {
	s := startSandbox(t)
	cfg := s.config(ModeCertificate, "")
	cfg.APIv3Key = strings.Repeat("x", 32)
	if c, err := New(context.Background(), cfg); err == nil {
		c.Close()
		t.Fatal("New succeeded with a wrong APIv3 key")
	}
}

// A notification naming a certificate serial we do not have makes the connector download the
// platform certificates again (once per refreshEvery), for rotations between daily refreshes.
func TestSandboxUnknownSerialRefreshesCertificates(t *testing.T) {
	s := startSandbox(t)
	cfg := s.config(ModeBoth, "")
	rt := &serialRecorder{}
	cfg.base = rt
	c, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	downloads := func() (n int) {
		for path := range rt.seen() {
			if path == "/v3/certificates" {
				n++
			}
		}
		return n
	}
	if downloads() != 1 {
		t.Fatalf("%d downloads at start, want 1", downloads())
	}
	h := c.NotificationHandler(&fakeApplier{}, nil)
	for range 2 {
		w := serve(h, notification{eventType: "TRANSACTION.SUCCESS", serial: "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
			plaintext: transactionJSON(s.creds.MchID, s.creds.AppID, "HTorder0001", "SUCCESS", 1)}.request(t))
		if w.Code != 401 {
			t.Fatalf("unknown serial: status %d, want 401", w.Code)
		}
	}
	// The public key's id is not a certificate: no download for it.
	_ = serve(h, notification{eventType: "TRANSACTION.SUCCESS", serial: s.creds.PublicKeyID, plaintext: []byte(`{}`)}.request(t))
	c.Close() // waits for the background download
	if downloads() != 2 {
		t.Fatalf("%d downloads, want 2 (one refresh for two notifications)", downloads())
	}
}
