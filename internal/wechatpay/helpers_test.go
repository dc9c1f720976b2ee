package wechatpay

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

// Unit-test keys: a merchant key and a "WeChat Pay public key", generated once per test binary.
var (
	keysOnce    sync.Once
	merchantKey *rsa.PrivateKey
	wechatKey   *rsa.PrivateKey
)

func testKeys(t testing.TB) (merchant, wechat *rsa.PrivateKey) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if merchantKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if wechatKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return merchantKey, wechatKey
}

const (
	testMchID    = "1900000109"
	testAppID    = "wxd678efh567hg6787"
	testAPIv3Key = "0123456789abcdef0123456789ABCDEF"
	testPubKeyID = "PUB_KEY_ID_0000000000000024101100397200000006"
)

// unitConnector is a public-key-mode connector that never calls out (no BaseURL is dialled).
func unitConnector(t testing.TB, logs *bytes.Buffer, now func() time.Time) *Connector {
	t.Helper()
	m, w := testKeys(t)
	var logger *slog.Logger
	if logs != nil {
		logger = slog.New(slog.NewTextHandler(&lockedWriter{w: logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	c, err := New(context.Background(), Config{
		MchID: testMchID, AppID: testAppID, MerchantSerialNo: "3775B6A45ACD588826D15E583A95F5DD********",
		MerchantPrivateKey: m, APIv3Key: testAPIv3Key, PublicKeyID: testPubKeyID, PublicKey: &w.PublicKey,
		BaseURL: "http://127.0.0.1:1", Now: now, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// fakeApplier records what it is asked to apply and answers with err (when set).
type fakeApplier struct {
	mu       sync.Mutex
	payments []gateway.WalletPayment
	refunds  []gateway.WalletRefund
	err      error
	seen     chan struct{} // optional: signalled after each call
}

func (f *fakeApplier) ApplyWalletPayment(_ context.Context, p payment.Provider, wp gateway.WalletPayment) (*payment.Payment, error) {
	f.mu.Lock()
	defer f.signal()
	defer f.mu.Unlock()
	if p != payment.WeChatPay {
		panic("provider " + p)
	}
	f.payments = append(f.payments, wp)
	if f.err != nil {
		return nil, f.err
	}
	return &payment.Payment{ID: "pay_test", Status: payment.StatusSucceeded}, nil
}

func (f *fakeApplier) ApplyWalletRefund(_ context.Context, p payment.Provider, wr gateway.WalletRefund) (*payment.Refund, error) {
	f.mu.Lock()
	defer f.signal()
	defer f.mu.Unlock()
	if p != payment.WeChatPay {
		panic("provider " + p)
	}
	f.refunds = append(f.refunds, wr)
	if f.err != nil {
		return nil, f.err
	}
	return &payment.Refund{ID: "re_test", Status: payment.RefundSucceeded}, nil
}

func (f *fakeApplier) signal() {
	if f.seen != nil {
		f.seen <- struct{}{}
	}
}

func (f *fakeApplier) calls() (ps []gateway.WalletPayment, rs []gateway.WalletRefund) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append(ps, f.payments...), append(rs, f.refunds...)
}

// record is one Recorder call.
type record struct {
	kind, reason string
	fields       map[string]string
}

type recorder struct {
	mu   sync.Mutex
	recs []record
}

func (r *recorder) fn() Recorder {
	return func(_ context.Context, why, what string, fields map[string]string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		// record keeps the object ("payment", "refund", "notification") and the Reason constant.
		r.recs = append(r.recs, record{strings.TrimSuffix(what, " notification"), why, fields})
	}
}

func (r *recorder) all() []record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]record(nil), r.recs...)
}

// notification builds a WeChat Pay notification as the wallet sends it.
type notification struct {
	eventType string
	plaintext []byte
	key       *rsa.PrivateKey // signs; nil: the unit WeChat key
	serial    string          // "": testPubKeyID
	apiV3Key  string          // "": testAPIv3Key
	nonce     string          // resource nonce; "": 12 random characters
	ts        time.Time       // zero: now
	sigType   string
}

func (n notification) request(t testing.TB) *http.Request {
	t.Helper()
	_, w := testKeys(t)
	if n.key == nil {
		n.key = w
	}
	if n.serial == "" {
		n.serial = testPubKeyID
	}
	if n.apiV3Key == "" {
		n.apiV3Key = testAPIv3Key
	}
	if n.nonce == "" {
		n.nonce = payment.RandomString(12)
	}
	if n.ts.IsZero() {
		n.ts = time.Now()
	}
	aad := "transaction"
	if len(n.eventType) > 7 && n.eventType[:7] == "REFUND." {
		aad = "refund"
	}
	body, _ := json.Marshal(map[string]any{
		"id": "EV-2018022511223320873", "create_time": "2015-05-20T13:29:35+08:00", "resource_type": "encrypt-resource",
		"event_type": n.eventType, "summary": "支付成功",
		"resource": map[string]string{
			"original_type": aad, "algorithm": "AEAD_AES_256_GCM", "ciphertext": seal(n.apiV3Key, n.nonce, aad, n.plaintext),
			"associated_data": aad, "nonce": n.nonce,
		},
	})
	return signedRequest(t, body, n.key, n.serial, n.ts, n.sigType)
}

func signedRequest(t testing.TB, body []byte, key *rsa.PrivateKey, serial string, ts time.Time, sigType string) *http.Request {
	t.Helper()
	tsText := strconv.FormatInt(ts.Unix(), 10)
	nonce := payment.RandomString(32)
	r := httptest.NewRequest(http.MethodPost, "/notify/wechatpay/payments", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Wechatpay-Timestamp", tsText)
	r.Header.Set("Wechatpay-Nonce", nonce)
	r.Header.Set("Wechatpay-Serial", serial)
	r.Header.Set("Wechatpay-Signature", sign(key, tsText+"\n"+nonce+"\n"+string(body)+"\n"))
	if sigType != "" {
		r.Header.Set("Wechatpay-Signature-Type", sigType)
	}
	return r
}

func sign(key *rsa.PrivateKey, msg string) string {
	d := sha256.Sum256([]byte(msg))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, d[:])
	if err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

func seal(key, nonce, aad string, plaintext []byte) string {
	block, err := aes.NewCipher([]byte(key))
	if err != nil {
		panic(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	if len(nonce) != gcm.NonceSize() {
		// Tests of bad nonces still need some ciphertext; its content does not matter.
		return base64.StdEncoding.EncodeToString([]byte("not sealed with this nonce"))
	}
	return base64.StdEncoding.EncodeToString(gcm.Seal(nil, []byte(nonce), plaintext, []byte(aad)))
}

func transactionJSON(mchid, appid, otn, state string, total int64) []byte {
	b, _ := json.Marshal(map[string]any{
		"mchid": mchid, "appid": appid, "out_trade_no": otn, "transaction_id": "4200000001201711155555555555",
		"trade_type": "NATIVE", "trade_state": state, "trade_state_desc": "支付成功", "bank_type": "CMC",
		"success_time": "2018-06-08T10:34:56+08:00", "payer": map[string]string{"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
		"amount": map[string]any{"total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY"},
	})
	return b
}

func refundJSON(mchid, status string, refund int64) []byte {
	m := map[string]any{
		"mchid": mchid, "transaction_id": "4200000001201711155555555555", "out_trade_no": "HTorder0001",
		"refund_id": "50000000382019052709732678859", "out_refund_no": "HTrefund0001", "refund_status": status,
		"user_received_account": "招商银行信用卡0403",
		"amount":                map[string]int64{"total": 999, "refund": refund, "payer_total": 999, "payer_refund": refund},
	}
	if status == "SUCCESS" {
		m["success_time"] = "2018-06-08T10:34:56+08:00"
	}
	b, _ := json.Marshal(m)
	return b
}

// serve runs one request through h and returns the answer.
func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func httpBody(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }
