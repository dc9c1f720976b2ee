package wechatpay

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core/notify"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments"
	"github.com/wechatpay-apiv3/wechatpay-go/services/refunddomestic"

	"github.com/hutong-pay/hutong/internal/gateway"
)

// allowed answers of the notification handler.
var allowedStatus = map[int]bool{200: true, 204: true, 400: true, 401: true, 405: true, 413: true, 500: true}

// FuzzNotification feeds arbitrary bodies and headers to the handler: it must never panic and never
// apply anything, since nothing the fuzzer makes carries a valid signature.
func FuzzNotification(f *testing.F) {
	seed := notification{eventType: "TRANSACTION.SUCCESS", plaintext: transactionJSON(testMchID, testAppID, "HTorder0001", "SUCCESS", 100)}.request(f)
	seedBody, _ := io.ReadAll(seed.Body)
	h := seed.Header
	f.Add(seedBody, h.Get("Wechatpay-Timestamp"), h.Get("Wechatpay-Nonce"), h.Get("Wechatpay-Serial"), "bm90IGEgc2lnbmF0dXJl", "")
	f.Add(seedBody, h.Get("Wechatpay-Timestamp"), h.Get("Wechatpay-Nonce"), "PUB_KEY_ID_X", h.Get("Wechatpay-Signature"), "WECHATPAY2-SHA256-RSA2048")
	f.Add([]byte(`{"resource":null}`), "0", "", "", "", "")
	f.Add([]byte(`{}`), "-1", "n", testPubKeyID, "!!", "SM2")
	f.Add([]byte{}, "99999999999999999999", "n", testPubKeyID, "", "")

	c := unitConnector(f, nil, nil)
	app := &fakeApplier{}
	handler := c.NotificationHandler(app, (&recorder{}).fn())
	f.Fuzz(func(t *testing.T, body []byte, ts, nonce, serial, sig, sigType string) {
		r := httptest.NewRequest(http.MethodPost, "/notify/wechatpay/payments", bytes.NewReader(body))
		for k, v := range map[string]string{"Wechatpay-Timestamp": ts, "Wechatpay-Nonce": nonce, "Wechatpay-Serial": serial,
			"Wechatpay-Signature": sig, "Wechatpay-Signature-Type": sigType} {
			if v != "" {
				r.Header[k] = []string{v}
			}
		}
		w := serve(handler, r)
		if !allowedStatus[w.Code] {
			t.Fatalf("status %d", w.Code)
		}
		if ps, rs := app.calls(); len(ps)+len(rs) != 0 {
			t.Fatalf("applied an unsigned notification: %v %v", ps, rs)
		}
	})
}

// FuzzNotificationSigned signs arbitrary bodies with the trusted key, so they reach the envelope
// parser and the SDK's decryption: still no panic, and nothing applies but the one resource sealed
// with the APIv3 key (the seed's, which survives mutations of the fields around it).
func FuzzNotificationSigned(f *testing.F) {
	// A fixed nonce keeps the seed identical in every fuzzing process.
	seed := notification{eventType: "TRANSACTION.SUCCESS", plaintext: transactionJSON(testMchID, testAppID, "HTorder0001", "SUCCESS", 100), nonce: "0123456789ab"}.request(f)
	seedBody, _ := io.ReadAll(seed.Body)
	f.Add(seedBody)
	f.Add([]byte(`{"event_type":"TRANSACTION.SUCCESS","resource":{"algorithm":"AEAD_AES_256_GCM","nonce":"123456789012","ciphertext":"AAAA"}}`))
	f.Add([]byte(`{"event_type":"REFUND.SUCCESS","resource":{"algorithm":"AEAD_AES_256_GCM","nonce":"1234567890123","ciphertext":"%%%"}}`))
	f.Add([]byte(`{"event_type":"TRANSACTION.SUCCESS","resource":{}}`))
	f.Add([]byte(`null`))

	var sealed notify.Request
	if err := json.Unmarshal(seedBody, &sealed); err != nil {
		f.Fatal(err)
	}
	_, wx := testKeys(f)
	c := unitConnector(f, nil, nil)
	f.Fuzz(func(t *testing.T, body []byte) {
		app := &fakeApplier{}
		w := serve(c.NotificationHandler(app, nil), signedRequest(t, body, wx, testPubKeyID, time.Now(), ""))
		if !allowedStatus[w.Code] {
			t.Fatalf("status %d", w.Code)
		}
		if w.Code == http.StatusUnauthorized {
			t.Fatalf("a correctly signed body was refused as unauthenticated")
		}
		ps, rs := app.calls()
		if len(ps)+len(rs) == 0 {
			return
		}
		var got notify.Request
		if err := json.Unmarshal(body, &got); err != nil || got.Resource == nil || got.Resource.Ciphertext != sealed.Resource.Ciphertext ||
			got.Resource.Nonce != sealed.Resource.Nonce || got.Resource.AssociatedData != sealed.Resource.AssociatedData {
			t.Fatalf("applied a resource not sealed with the APIv3 key: %v %v", ps, rs)
		}
	})
}

// FuzzNotificationPlaintext seals and signs arbitrary resources, reaching the mapping of decrypted
// content: no panic, and whatever is applied satisfies what the gateway relies on.
func FuzzNotificationPlaintext(f *testing.F) {
	f.Add("TRANSACTION.SUCCESS", transactionJSON(testMchID, testAppID, "HTorder0001", "SUCCESS", 100))
	f.Add("TRANSACTION.SUCCESS", transactionJSON(testMchID, testAppID, "HTorder0001", "SUCCESS", -5))
	f.Add("TRANSACTION.SUCCESS", []byte(`{"mchid":"1900000109","appid":"wxd678efh567hg6787","out_trade_no":"x","trade_state":"SUCCESS","amount":{"total":1}}`))
	f.Add("REFUND.SUCCESS", refundJSON(testMchID, "SUCCESS", 1))
	f.Add("REFUND.ABNORMAL", refundJSON(testMchID, "ABNORMAL", 0))
	f.Add("REFUND.CLOSED", []byte(`null`))

	c := unitConnector(f, nil, nil)
	f.Fuzz(func(t *testing.T, event string, plaintext []byte) {
		app := &fakeApplier{}
		w := serve(c.NotificationHandler(app, nil), notification{eventType: event, plaintext: plaintext}.request(t))
		if !allowedStatus[w.Code] {
			t.Fatalf("status %d", w.Code)
		}
		ps, rs := app.calls()
		if len(ps)+len(rs) > 1 {
			t.Fatalf("one notification applied %d times", len(ps)+len(rs))
		}
		for _, p := range ps {
			if event != eventTransactionSuccess || p.OutTradeNo == "" || p.State != gateway.WalletPaid || p.Amount <= 0 ||
				p.Currency != "CNY" || p.Account != testMchID || p.TransactionID == "" {
				t.Fatalf("applied %+v from %s", p, event)
			}
		}
		for _, r := range rs {
			ok := r.OutRefundNo != "" && ((event == eventRefundSuccess && r.State == gateway.RefundSuccess && r.Amount > 0) ||
				((event == eventRefundClosed || event == eventRefundAbnormal) && r.State == gateway.RefundClosed))
			if !ok {
				t.Fatalf("applied %+v from %s", r, event)
			}
		}
		if len(ps)+len(rs) == 1 && w.Code != http.StatusNoContent {
			t.Fatalf("applied but answered %d", w.Code)
		}
	})
}

// The header parser accepts only canonical decimal timestamps, as the SDK re-formats them.
func TestTimestampHeaderCanonical(t *testing.T) {
	c := unitConnector(t, nil, nil)
	for _, ts := range []string{"0" + strconv.FormatInt(time.Now().Unix(), 10), " 1", "1e9", ""} {
		r := notification{eventType: "TRANSACTION.SUCCESS", plaintext: transactionJSON(testMchID, testAppID, "HTorder0001", "SUCCESS", 100)}.request(t)
		r.Header.Set("Wechatpay-Timestamp", ts)
		if w := serve(c.NotificationHandler(&fakeApplier{}, nil), r); w.Code != http.StatusUnauthorized {
			t.Fatalf("timestamp %q: status %d, want 401", ts, w.Code)
		}
	}
}

// FuzzWalletAnswers maps arbitrary query and refund answers (decoded as the SDK decodes them) and
// Wechatpay-Timestamp values: no panic, and whatever is accepted is usable.
func FuzzWalletAnswers(f *testing.F) {
	f.Add(transactionJSON(testMchID, testAppID, "HTorder0001", "SUCCESS", 100), "1700000000")
	f.Add(transactionJSON(testMchID, testAppID, "HTorder0001", "NOTPAY", 100), "-1")
	f.Add(refundJSON(testMchID, "SUCCESS", 10), "99999999999999999999")
	f.Add([]byte(`{"out_refund_no":"R","out_trade_no":"T","status":"SUCCESS","amount":{"refund":1,"currency":"CNY"},"success_time":"2018-06-08T10:34:56+08:00"}`), "")
	f.Add([]byte(`{"status":"ABNORMAL"}`), "1e9")
	c := unitConnector(f, nil, nil)
	f.Fuzz(func(t *testing.T, body []byte, ts string) {
		c.skew.observeHeader(ts)
		var tx payments.Transaction
		if json.Unmarshal(body, &tx) == nil {
			if wp, err := c.walletPayment(&tx); err == nil {
				if wp.OutTradeNo == "" || wp.Account != testMchID || wp.State == "" ||
					(wp.State == gateway.WalletPaid && (wp.Amount <= 0 || wp.Currency != "CNY" || wp.TransactionID == "")) {
					t.Fatalf("accepted %+v", wp)
				}
			}
		}
		var rf refunddomestic.Refund
		if json.Unmarshal(body, &rf) == nil {
			if wr, err := walletRefund(&rf); err == nil {
				if wr.State == "" || (wr.State == gateway.RefundSuccess && wr.Amount <= 0) {
					t.Fatalf("accepted %+v", wr)
				}
			}
		}
	})
}
