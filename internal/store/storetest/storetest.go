// Package storetest is the one test suite every gateway.Store implementation must pass.
//
// A store package calls Run from its own tests with a function that opens a fresh, migrated,
// empty store (closed by the test's cleanup). The suite checks behaviour the gateway relies on:
// round trips, not-found and merchant isolation, pagination, atomic outbox events, row locks
// under concurrency and idempotency keys.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

// Run runs every subtest, each on its own store from open.
func Run(t *testing.T, open func(t *testing.T) gateway.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s gateway.Store)
	}{
		{"Merchants", testMerchants},
		{"APIKeys", testAPIKeys},
		{"PaymentRoundTrip", testPaymentRoundTrip},
		{"PaymentTimesNormalised", testPaymentTimesNormalised},
		{"PaymentNotFoundAndIsolation", testPaymentIsolation},
		{"PaymentConflicts", testPaymentConflicts},
		{"ListPaymentsPagination", testListPaymentsPagination},
		{"ListPaymentsFilters", testListPaymentsFilters},
		{"UpdatePaymentForwardOnly", testUpdatePaymentForwardOnly},
		{"UpdatePaymentRollback", testUpdatePaymentRollback},
		{"EventsAtomicWithChange", testEventsAtomic},
		{"OverRefundRefusedByStore", testOverRefundConstraint},
		{"ConcurrentRefunds", testConcurrentRefunds},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"Refunds", testRefunds},
		{"RefundIsolation", testRefundIsolation},
		{"ListEvents", testListEvents},
		{"Idempotency", testIdempotency},
		{"IdempotencyConcurrentClaim", testIdempotencyConcurrentClaim},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// t0 has microsecond precision and is in UTC, as stores keep times.
var t0 = time.Date(2026, 11, 25, 8, 30, 15, 123456000, time.UTC)

var ctx = context.Background()

func newMerchant(t *testing.T, s gateway.Store) *payment.Merchant {
	t.Helper()
	m := &payment.Merchant{ID: payment.NewID("mch"), Name: "Hutong Tea House", CreatedAt: t0}
	if err := s.CreateMerchant(ctx, m); err != nil {
		t.Fatalf("create merchant: %v", err)
	}
	return m
}

// fullPayment has every field set, so that a round trip checks every column.
func fullPayment(merchantID string) *payment.Payment {
	paid := t0.Add(90 * time.Second)
	return &payment.Payment{
		ID:             payment.NewID("pay"),
		Object:         "payment",
		MerchantID:     merchantID,
		Livemode:       true,
		Status:         payment.StatusSucceeded,
		Amount:         12345,
		AmountRefunded: 45,
		Currency:       "CNY",
		Description:    "两杯龙井 (two cups of Longjing)",
		Reference:      "order-" + payment.RandomString(8),
		Provider:       payment.WeChatPay,
		Channel:        payment.ChannelMiniProgram,
		ProviderRef:    payment.ProviderRef{OutTradeNo: payment.NewOutTradeNo(), TransactionID: "4200001234202611251234567890"},
		NextAction: &payment.NextAction{Type: payment.ActionWeChatJSAPI, Params: map[string]string{
			"appId": "wx8888888888888888", "timeStamp": "1764059415", "nonceStr": "abc", "package": "prepay_id=wx1",
			"signType": "RSA", "paySign": "c2lnbmF0dXJl",
		}},
		CheckoutURL:    "http://127.0.0.1:8080/checkout/pay_x",
		CustomerID:     "cus_123",
		Payer:          &payment.Payer{OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", ClientIP: "127.0.0.1"},
		ReturnURL:      "https://shop.example/return?x=1&y=2",
		Metadata:       map[string]string{"cart": "42", "note": "加糖"},
		CancelReason:   "",
		FailureCode:    "",
		FailureMessage: "",
		CreatedAt:      t0,
		UpdatedAt:      t0.Add(time.Minute),
		ExpiresAt:      t0.Add(2 * time.Hour),
		PaidAt:         &paid,
	}
}

// pendingPayment is what the gateway stores before the wallet answers.
func pendingPayment(merchantID string, amount int64, created time.Time) *payment.Payment {
	return &payment.Payment{
		ID:          payment.NewID("pay"),
		Object:      "payment",
		MerchantID:  merchantID,
		Status:      payment.StatusPending,
		Amount:      amount,
		Currency:    "CNY",
		Description: "tea",
		Reference:   "ref",
		Provider:    payment.Alipay,
		Channel:     payment.ChannelQR,
		ProviderRef: payment.ProviderRef{OutTradeNo: payment.NewOutTradeNo()},
		NextAction:  &payment.NextAction{Type: payment.ActionQRCode, QRCode: "https://qr.alipay.com/bax0"},
		Metadata:    map[string]string{},
		CreatedAt:   created,
		UpdatedAt:   created,
		ExpiresAt:   created.Add(15 * time.Minute),
	}
}

func createPayment(t *testing.T, s gateway.Store, p *payment.Payment) *payment.Payment {
	t.Helper()
	if err := s.CreatePayment(ctx, p, nil); err != nil {
		t.Fatalf("create payment: %v", err)
	}
	return p
}

// succeededPayment stores a payment of amount that the wallet has collected.
func succeededPayment(t *testing.T, s gateway.Store, merchantID string, amount int64) *payment.Payment {
	t.Helper()
	p := pendingPayment(merchantID, amount, t0)
	paid := t0.Add(time.Second)
	p.Status, p.PaidAt, p.NextAction = payment.StatusSucceeded, &paid, nil
	return createPayment(t, s, p)
}

func newRefund(p *payment.Payment, amount int64) *payment.Refund {
	return &payment.Refund{
		ID:          payment.NewID("re"),
		Object:      "refund",
		MerchantID:  p.MerchantID,
		PaymentID:   p.ID,
		Status:      payment.RefundPending,
		Amount:      amount,
		Currency:    p.Currency,
		Reason:      "requested_by_customer",
		Provider:    p.Provider,
		ProviderRef: payment.RefundRef{OutRefundNo: payment.NewOutTradeNo()},
		Metadata:    map[string]string{"ticket": "T-1"},
		CreatedAt:   t0.Add(time.Hour),
		UpdatedAt:   t0.Add(time.Hour),
	}
}

// reserve is the callback the gateway passes to CreateRefund.
func reserve(amount int64) func(p *payment.Payment) error {
	return func(p *payment.Payment) error {
		if err := p.CheckRefund(amount); err != nil {
			return err
		}
		p.AmountRefunded += amount
		return nil
	}
}

func mustPayment(t *testing.T, s gateway.Store, merchantID, id string) *payment.Payment {
	t.Helper()
	p, err := s.Payment(ctx, merchantID, id)
	if err != nil {
		t.Fatalf("payment %s: %v", id, err)
	}
	return p
}

// wantNotFound fails unless err is a NotFound error and the result is nil: never nil, nil.
func wantNotFound(t *testing.T, what string, result any, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: got no error (result %+v), want not found", what, result)
	}
	if !payment.IsNotFound(err) {
		t.Fatalf("%s: got %v (kind %s), want kind %s", what, err, payment.KindOf(err), payment.NotFound)
	}
	if v := reflect.ValueOf(result); v.IsValid() && !v.IsNil() {
		t.Fatalf("%s: got result %+v with the error, want nil", what, result)
	}
}

func wantKind(t *testing.T, what string, err error, kind payment.Kind) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: got no error, want kind %s", what, kind)
	}
	if got := payment.KindOf(err); got != kind {
		t.Fatalf("%s: got %v (kind %s), want kind %s", what, err, got, kind)
	}
}

// wantEqual compares with reflect.DeepEqual and names the fields that differ.
func wantEqual(t *testing.T, what string, got, want any) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	t.Fatalf("%s differs:\n%s", what, strings.Join(diff("", reflect.ValueOf(got), reflect.ValueOf(want)), "\n"))
}

func diff(path string, got, want reflect.Value) []string {
	if got.IsValid() && want.IsValid() && got.Type() == want.Type() {
		switch got.Kind() {
		case reflect.Pointer:
			if !got.IsNil() && !want.IsNil() {
				return diff(path, got.Elem(), want.Elem())
			}
		case reflect.Struct:
			if got.Type() != reflect.TypeOf(time.Time{}) {
				var out []string
				for i := range got.NumField() {
					out = append(out, diff(path+"."+got.Type().Field(i).Name, got.Field(i), want.Field(i))...)
				}
				return out
			}
		}
	}
	if got.IsValid() && want.IsValid() && got.CanInterface() && reflect.DeepEqual(got.Interface(), want.Interface()) {
		return nil
	}
	return []string{fmt.Sprintf("  %s: got %s, want %s", path, show(got), show(want))}
}

func show(v reflect.Value) string {
	if !v.IsValid() {
		return "<invalid>"
	}
	if (v.Kind() == reflect.Pointer || v.Kind() == reflect.Map || v.Kind() == reflect.Slice) && v.IsNil() {
		return "nil " + v.Type().String()
	}
	if t, ok := v.Interface().(time.Time); ok {
		return t.Format(time.RFC3339Nano) + " (" + t.Location().String() + ")"
	}
	if b, ok := v.Interface().([]byte); ok {
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("%#v", v.Interface())
}

var errCallback = errors.New("callback refused")
