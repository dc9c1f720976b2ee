package wechatpay

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/hutong-pay/hutong/internal/sandbox/faults"
	"github.com/hutong-pay/hutong/internal/sandbox/notify"
	"github.com/hutong-pay/hutong/internal/sandbox/sandboxdb"
	wxsandbox "github.com/hutong-pay/hutong/internal/sandbox/wechatpay"
)

// sandbox is the real WeChat Pay sandbox served over loopback, with fast notification retries.
type sandbox struct {
	t      testing.TB
	srv    *httptest.Server
	faults *faults.Injector
	creds  wxsandbox.Credentials
}

func startSandbox(t testing.TB) *sandbox {
	t.Helper()
	var mux atomic.Pointer[http.ServeMux]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { mux.Load().ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	db, err := sandboxdb.Open(filepath.Join(t.TempDir(), "sandbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := faults.New()
	quiet := slog.New(slog.DiscardHandler)
	sender, err := notify.New(notify.Options{DB: db, Faults: f, TimeScale: 0.001, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := wxsandbox.New(context.Background(), wxsandbox.Config{DB: db, Sender: sender, Faults: f, BaseURL: srv.URL, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	m := http.NewServeMux()
	sb.Register(m)
	mux.Store(m)
	sender.Start(context.Background())
	t.Cleanup(sender.Close) // runs before db.Close
	return &sandbox{t: t, srv: srv, faults: f, creds: sb.Credentials()}
}

// config is the sandbox merchant's account for a connector in mode, answering in responseSerial.
func (s *sandbox) config(mode, responseSerial string) Config {
	return Config{
		MchID: s.creds.MchID, AppID: s.creds.AppID, MerchantSerialNo: s.creds.MerchantSerialNo,
		MerchantPrivateKeyPEM: s.creds.MerchantPrivateKey, APIv3Key: s.creds.APIv3Key,
		PublicKeyID: s.creds.PublicKeyID, PublicKeyPEM: s.creds.PublicKey,
		Mode: mode, ResponseSerial: responseSerial, BaseURL: s.srv.URL, Timeout: 5 * time.Second,
	}
}

func (s *sandbox) connector(cfg Config) *Connector {
	s.t.Helper()
	c, err := New(context.Background(), cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(c.Close)
	return c
}

// post calls one of the sandbox's own endpoints and returns the status.
func (s *sandbox) do(method, path string, body any) (int, []byte) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.srv.URL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (s *sandbox) pay(outTradeNo string) {
	s.t.Helper()
	if st, b := s.do(http.MethodPost, "/sandbox/wechatpay/transactions/"+outTradeNo+"/pay", nil); st != http.StatusOK {
		s.t.Fatalf("pay %s: %d %s", outTradeNo, st, b)
	}
}

func (s *sandbox) merchant() (m struct {
	NotificationSigning string   `json:"notification_signing"`
	PublicKeyID         string   `json:"public_key_id"`
	PlatformSerials     []string `json:"platform_certificate_serials"`
}) {
	s.t.Helper()
	st, b := s.do(http.MethodGet, "/sandbox/wechatpay/merchant", nil)
	if st != http.StatusOK {
		s.t.Fatalf("merchant: %d %s", st, b)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		s.t.Fatal(err)
	}
	return m
}

func (s *sandbox) signNotificationsWith(mode string) {
	s.t.Helper()
	if st, b := s.do(http.MethodPut, "/sandbox/wechatpay/merchant", map[string]string{"notification_signing": mode}); st != http.StatusOK {
		s.t.Fatalf("notification signing: %d %s", st, b)
	}
}

func (s *sandbox) setFaults(f faults.Settings) {
	s.t.Helper()
	if err := s.faults.Set(f); err != nil {
		s.t.Fatal(err)
	}
}

// serialRecorder is a transport that notes which key signed each successful wallet answer.
type serialRecorder struct {
	mu      sync.Mutex
	serials []answer
}

type answer struct{ path, serial string }

func (r *serialRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil && resp.StatusCode < 300 {
		r.mu.Lock()
		r.serials = append(r.serials, answer{req.URL.Path, resp.Header.Get("Wechatpay-Serial")})
		r.mu.Unlock()
	}
	return resp, err
}

// seen yields (path, serial) of every answer so far.
func (r *serialRecorder) seen() func(yield func(string, string) bool) {
	r.mu.Lock()
	all := slices.Clone(r.serials)
	r.mu.Unlock()
	return func(yield func(string, string) bool) {
		for _, a := range all {
			if !yield(a.path, a.serial) {
				return
			}
		}
	}
}

// receiver serves a connector's notification handler where the sandbox can reach it.
type receiver struct {
	url string
	app *fakeApplier
	rec *recorder
}

func receive(t testing.TB, c *Connector) *receiver {
	t.Helper()
	rv := &receiver{app: &fakeApplier{seen: make(chan struct{}, 16)}, rec: &recorder{}}
	mux := http.NewServeMux()
	mux.Handle("POST /notify/wechatpay/{kind}", c.NotificationHandler(rv.app, rv.rec.fn()))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	rv.url = srv.URL + "/notify/wechatpay/"
	return rv
}

// waitApplied waits for the next Applier call.
func (rv *receiver) waitApplied(t testing.TB) {
	t.Helper()
	select {
	case <-rv.app.seen:
	case <-time.After(10 * time.Second):
		t.Fatalf("no notification applied; recorded %+v", rv.rec.all())
	}
}

// waitRecorded waits until the recorder holds a record with reason.
func (rv *receiver) waitRecorded(t testing.TB, reason string) record {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range rv.rec.all() {
			if r.reason == reason {
				return r
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("nothing recorded as %s; recorded %+v", reason, rv.rec.all())
	return record{}
}

func verifyRSA(t testing.TB, pub *rsa.PublicKey, msg, sigB64 string) {
	t.Helper()
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil {
		t.Fatalf("signature not base64: %v", err)
	}
	d := sha256.Sum256([]byte(msg))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig); err != nil {
		t.Fatalf("signature over %q does not verify with the merchant public key: %v", msg, err)
	}
}

func merchantPublicKey(t testing.TB, s *sandbox) *rsa.PublicKey {
	t.Helper()
	k, err := utils.LoadPrivateKey(s.creds.MerchantPrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return &k.PublicKey
}

func uniqueNo(prefix string) string { return fmt.Sprintf("%s%d", prefix, time.Now().UnixNano()) }
