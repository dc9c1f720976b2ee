package payment

import (
	"errors"
	"testing"
	"time"
)

func TestTransitionsOnlyForward(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		do   func(p *Payment) (bool, error)
		want Status
	}{
		{"succeed", func(p *Payment) (bool, error) { return p.Succeed(ProviderRef{TransactionID: "t1"}, now, now) }, StatusSucceeded},
		{"fail", func(p *Payment) (bool, error) { return p.Fail("declined", "no", now) }, StatusFailed},
		{"cancel", func(p *Payment) (bool, error) { return p.Cancel(CancelReasonExpired, now) }, StatusCanceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Payment{ID: "pay_1", Status: StatusPending, Amount: 100}
			changed, err := tc.do(p)
			if err != nil || !changed || p.Status != tc.want {
				t.Fatalf("first: changed=%v err=%v status=%s", changed, err, p.Status)
			}
			changed, err = tc.do(p)
			if err != nil || changed {
				t.Fatalf("repeat: changed=%v err=%v, want harmless no-op", changed, err)
			}
			// Every other final status is now out of reach.
			others := []func() (bool, error){
				func() (bool, error) { return p.Succeed(ProviderRef{}, now, now) },
				func() (bool, error) { return p.Fail("x", "y", now) },
				func() (bool, error) { return p.Cancel("z", now) },
			}
			for i, o := range others {
				before := p.Status
				changed, err := o()
				if p.Status != before {
					t.Fatalf("other %d moved %s to %s", i, before, p.Status)
				}
				if changed {
					t.Fatalf("other %d reported a change", i)
				}
				if err == nil && before != []Status{StatusSucceeded, StatusFailed, StatusCanceled}[i] {
					t.Fatalf("other %d: no error moving %s", i, before)
				}
				if err != nil && KindOf(err) != Conflict {
					t.Fatalf("other %d: kind %s, want conflict", i, KindOf(err))
				}
			}
		})
	}
}

func TestCheckRefund(t *testing.T) {
	p := &Payment{ID: "pay_1", Status: StatusPending, Amount: 1000, Currency: "CNY"}
	if err := p.CheckRefund(1); KindOf(err) != Conflict {
		t.Fatalf("refund of pending payment: %v, want conflict", err)
	}
	p.Status = StatusSucceeded
	p.AmountRefunded = 600
	if err := p.CheckRefund(400); err != nil {
		t.Fatalf("refund of exactly the rest: %v", err)
	}
	err := p.CheckRefund(401)
	var e *Error
	if !errors.As(err, &e) || e.Code != "amount_too_large" || e.Param != "amount" {
		t.Fatalf("over-refund: %v, want amount_too_large on amount", err)
	}
	if err := p.CheckRefund(0); KindOf(err) != Invalid {
		t.Fatalf("zero refund: %v, want invalid", err)
	}
}

func TestRefundTransitions(t *testing.T) {
	now := time.Now()
	r := &Refund{ID: "re_1", Status: RefundPending}
	if ok, err := r.Succeed(now, now); !ok || err != nil {
		t.Fatalf("succeed: %v %v", ok, err)
	}
	if _, err := r.Fail("x", "y", now); KindOf(err) != Conflict {
		t.Fatalf("fail after success: %v, want conflict", err)
	}
	if ok, err := r.Succeed(now, now); ok || err != nil {
		t.Fatalf("repeat succeed: %v %v", ok, err)
	}
}

func TestMoney(t *testing.T) {
	for fen, want := range map[int64]string{0: "0.00", 1: "0.01", 10: "0.10", 12345: "123.45", -250: "-2.50"} {
		if got := FormatYuan(fen); got != want {
			t.Errorf("FormatYuan(%d) = %q, want %q", fen, got, want)
		}
	}
	if CheckAmount("amount", 0) == nil || CheckAmount("amount", -1) == nil || CheckAmount("amount", MaxAmount+1) == nil {
		t.Fatal("CheckAmount accepted an out-of-range amount")
	}
	if err := CheckAmount("amount", 1); err != nil {
		t.Fatal(err)
	}
	if CheckCurrency("currency", "USD") == nil || CheckCurrency("currency", "cny") == nil {
		t.Fatal("CheckCurrency accepted an unsupported currency")
	}
}

func TestIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewOutTradeNo()
		if len(id) != 32 || seen[id] {
			t.Fatalf("bad or repeated out_trade_no %q", id)
		}
		seen[id] = true
	}
	if id := NewID("pay"); len(id) != 28 || id[:4] != "pay_" {
		t.Fatalf("NewID = %q", id)
	}
}

func TestSupports(t *testing.T) {
	if Supports(WeChatPay, ChannelWeb) {
		t.Fatal("WeChat Pay has no web channel")
	}
	if !Supports(Alipay, ChannelWeb) || !Supports(WeChatPay, ChannelMiniProgram) || Supports("paypal", ChannelQR) {
		t.Fatal("Supports table wrong")
	}
}
