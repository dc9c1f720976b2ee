package wechatpay

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/downloader"
	sdknotify "github.com/wechatpay-apiv3/wechatpay-go/core/notify"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/hutong-pay/hutong/internal/sandbox/faults"
	"github.com/hutong-pay/hutong/internal/sandbox/notify"
	"github.com/hutong-pay/hutong/internal/sandbox/sandboxdb"
)

// testEnv is a sandbox served over loopback HTTP with its own database, sender and fault injector.
type testEnv struct {
	t           testing.TB
	dbPath      string
	db          *sql.DB
	faults      *faults.Injector
	sender      *notify.Sender
	sb          *Sandbox
	srv         *httptest.Server
	mux         atomic.Pointer[http.ServeMux] // swapped on restart
	creds       Credentials
	offset      atomic.Int64 // added to the sandbox clock, to move time forward without sleeping
	merchantKey *rsa.PrivateKey
	wxPub       *rsa.PublicKey
	stopped     bool
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newEnv starts a sandbox on a fresh database (or on dbPath's, to emulate a restart).
func newEnv(t testing.TB, dbPath string) *testEnv {
	t.Helper()
	if dbPath == "" {
		dbPath = filepath.Join(t.TempDir(), "sandbox.db")
	}
	e := &testEnv{t: t, dbPath: dbPath, faults: faults.New()}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { e.mux.Load().ServeHTTP(w, r) }))
	t.Cleanup(e.srv.Close)
	e.start()
	t.Cleanup(e.stop)
	return e
}

func (e *testEnv) now() time.Time { return time.Now().Add(time.Duration(e.offset.Load())) }

func (e *testEnv) start() {
	t := e.t
	t.Helper()
	db, err := sandboxdb.Open(e.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	e.db = db
	e.sender, err = notify.New(notify.Options{DB: db, Faults: e.faults, TimeScale: 0.001, Now: e.now, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	e.sb, err = New(context.Background(), Config{
		DB: db, Sender: e.sender, Faults: e.faults, BaseURL: e.srv.URL, Now: e.now, Logger: quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.sb.refundDelay.Store(int64(30 * time.Millisecond))
	mux := http.NewServeMux()
	e.sb.Register(mux)
	e.mux.Store(mux)
	e.sender.Start(context.Background())
	e.creds = e.sb.Credentials()
	e.merchantKey, err = utils.LoadPrivateKey(e.creds.MerchantPrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	e.wxPub, err = utils.LoadPublicKey(e.creds.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	e.stopped = false
}

// restart stops the sender and closes the database, then starts everything again over the same file.
func (e *testEnv) restart() {
	e.stop()
	e.start()
}

func (e *testEnv) stop() {
	if e.stopped {
		return
	}
	e.stopped = true
	e.sender.Close()
	e.db.Close()
}

// rewrite points the SDK at the sandbox: the signature covers path and query only.
type rewrite struct{ to *url.URL }

func (t rewrite) RoundTrip(r *http.Request) (*http.Response, error) {
	r2 := r.Clone(r.Context())
	r2.URL.Scheme, r2.URL.Host, r2.Host = t.to.Scheme, t.to.Host, t.to.Host
	return http.DefaultTransport.RoundTrip(r2)
}

func (e *testEnv) httpClient() *http.Client {
	u, _ := url.Parse(e.srv.URL)
	return &http.Client{Transport: rewrite{u}, Timeout: 10 * time.Second}
}

// pubKeyClient is the official SDK in WeChat Pay public key mode.
func (e *testEnv) pubKeyClient() *core.Client {
	e.t.Helper()
	c, err := core.NewClient(context.Background(),
		option.WithWechatPayPublicKeyAuthCipher(e.creds.MchID, e.creds.MerchantSerialNo, e.merchantKey, e.creds.PublicKeyID, e.wxPub),
		option.WithHTTPClient(e.httpClient()))
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// certClient is the official SDK in platform certificate mode, the certificates downloaded from the sandbox.
func (e *testEnv) certClient() (*core.Client, *downloader.CertificateDownloaderMgr) {
	e.t.Helper()
	ctx := context.Background()
	plain, err := core.NewClient(ctx,
		option.WithMerchantCredential(e.creds.MchID, e.creds.MerchantSerialNo, e.merchantKey),
		option.WithoutValidator(), option.WithHTTPClient(e.httpClient()))
	if err != nil {
		e.t.Fatal(err)
	}
	mgr := downloader.NewCertificateDownloaderMgr(ctx)
	e.t.Cleanup(mgr.Stop)
	if err := mgr.RegisterDownloaderWithClient(ctx, plain, e.creds.MchID, e.creds.APIv3Key); err != nil {
		e.t.Fatal(err)
	}
	c, err := core.NewClient(ctx,
		option.WithWechatPayAutoAuthCipherUsingDownloaderMgr(e.creds.MchID, e.creds.MerchantSerialNo, e.merchantKey, mgr),
		option.WithHTTPClient(e.httpClient()))
	if err != nil {
		e.t.Fatal(err)
	}
	return c, mgr
}

// unvalidatedClient signs requests but does not check answers (bill file downloads).
func (e *testEnv) unvalidatedClient() *core.Client {
	e.t.Helper()
	c, err := core.NewClient(context.Background(),
		option.WithMerchantCredential(e.creds.MchID, e.creds.MerchantSerialNo, e.merchantKey),
		option.WithoutValidator(), option.WithHTTPClient(e.httpClient()))
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *testEnv) platformCert() *x509.Certificate { return e.sb.keys.newestCert().cert }

// authParts is a hand-made Authorization header, for clients other than the SDK and for tampering.
type authParts struct {
	mchid, serial, nonce, timestamp, signature string
	order                                      []string // field order; nil: Node's wechatpay-axios-plugin order
	raw                                        string   // whole header value, if set
}

// rawCall is a request as another real client sends it: fields in another order, a JSON body without
// a trailing newline, Content-Type with a charset, and no Wechatpay-Serial header.
type rawCall struct {
	method, uri string
	body        string
	tamper      func(*authParts)
	header      map[string]string
}

type rawAnswer struct {
	status int
	header http.Header
	body   []byte
}

func (e *testEnv) raw(c rawCall) rawAnswer {
	e.t.Helper()
	a := authParts{
		mchid: e.creds.MchID, serial: e.creds.MerchantSerialNo, nonce: strings.Repeat("n", 31) + "Z",
		timestamp: strconv.FormatInt(e.now().Unix(), 10),
	}
	if c.tamper != nil {
		c.tamper(&a)
	}
	if a.signature == "" {
		a.signature = signWith(e.merchantKey, c.method+"\n"+c.uri+"\n"+a.timestamp+"\n"+a.nonce+"\n"+c.body+"\n")
	}
	header := a.raw
	if header == "" {
		order := a.order
		if order == nil {
			order = []string{"mchid", "serial_no", "timestamp", "nonce_str", "signature"}
		}
		vals := map[string]string{"mchid": a.mchid, "serial_no": a.serial, "timestamp": a.timestamp, "nonce_str": a.nonce, "signature": a.signature}
		var pairs []string
		for _, k := range order {
			pairs = append(pairs, fmt.Sprintf(`%s="%s"`, k, vals[k]))
		}
		header = authScheme + " " + strings.Join(pairs, ", ")
	}
	req, err := http.NewRequest(c.method, e.srv.URL+c.uri, strings.NewReader(c.body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", header)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "wechatpay-axios-plugin/0.9 node/22")
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return rawAnswer{status: resp.StatusCode, header: resp.Header, body: body}
}

func signWith(k *rsa.PrivateKey, msg string) string {
	d := sha256.Sum256([]byte(msg))
	sig, err := rsa.SignPKCS1v15(nil, k, crypto.SHA256, d[:])
	if err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// verifyAnswer checks a response's WeChat Pay signature with pub and returns the serial it names.
func verifyAnswer(t *testing.T, a rawAnswer, pub *rsa.PublicKey) string {
	t.Helper()
	h := a.header
	msg := h.Get("Wechatpay-Timestamp") + "\n" + h.Get("Wechatpay-Nonce") + "\n" + string(a.body) + "\n"
	sig, err := base64.StdEncoding.DecodeString(h.Get("Wechatpay-Signature"))
	if err != nil {
		t.Fatalf("signature not base64: %v", err)
	}
	d := sha256.Sum256([]byte(msg))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig); err != nil {
		t.Fatalf("response signature does not verify: %v", err)
	}
	if got := h.Get("Wechatpay-Signature-Type"); got != authScheme {
		t.Errorf("Wechatpay-Signature-Type = %q, want %q", got, authScheme)
	}
	if h.Get("Request-ID") == "" {
		t.Error("no Request-ID")
	}
	return h.Get("Wechatpay-Serial")
}

// wxErr decodes an error answer.
func wxErr(t *testing.T, a rawAnswer) apiError {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(a.body, &e); err != nil {
		t.Fatalf("error body %q: %v", a.body, err)
	}
	return e
}

func expectError(t *testing.T, a rawAnswer, status int, code, msgPart string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("status = %d, want %d (body %s)", a.status, status, a.body)
	}
	e := wxErr(t, a)
	if e.Code != code {
		t.Fatalf("code = %q, want %q (body %s)", e.Code, code, a.body)
	}
	if !strings.Contains(e.Message, msgPart) {
		t.Fatalf("message %q does not mention %q", e.Message, msgPart)
	}
}

// sandboxPost calls one of the sandbox's own endpoints.
func (e *testEnv) sandboxPost(method, path, body string) rawAnswer {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rawAnswer{status: resp.StatusCode, header: resp.Header, body: b}
}

func (e *testEnv) pay(outTradeNo, body string) rawAnswer {
	e.t.Helper()
	return e.sandboxPost(http.MethodPost, "/sandbox/wechatpay/transactions/"+url.PathEscape(outTradeNo)+"/pay", body)
}

// sink is a merchant notify_url that checks notifications with the official SDK's handler.
type sink struct {
	t        testing.TB
	srv      *httptest.Server
	handler  *sdknotify.Handler
	failing  atomic.Int32 // answer 500 to this many valid notifications first
	down     atomic.Bool  // answer 500 to everything
	rejected atomic.Int32 // notifications the SDK refused (forged probes)
	mu       sync.Mutex
	got      []received
}

type received struct {
	req       *sdknotify.Request
	header    http.Header
	plaintext map[string]any
}

// newSink builds a notify server whose SDK handler verifies with both the public key and the platform
// certificate (the combined verifier), as a merchant in the middle of migrating must.
func (e *testEnv) newSink() *sink {
	e.t.Helper()
	certs := core.NewCertificateMapWithList([]*x509.Certificate{e.platformCert()})
	v := verifiers.NewSHA256WithRSACombinedVerifier(certs, e.creds.PublicKeyID, *e.wxPub)
	return e.newSinkWith(v)
}

func (e *testEnv) newSinkWith(v interface {
	Verify(ctx context.Context, serial, message, signature string) error
	GetSerial(ctx context.Context) (string, error)
}) *sink {
	h, err := sdknotify.NewRSANotifyHandler(e.creds.APIv3Key, v)
	if err != nil {
		e.t.Fatal(err)
	}
	s := &sink{t: e.t, handler: h}
	s.srv = httptest.NewServer(s)
	e.t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.down.Load() {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	content := map[string]any{}
	req, err := s.handler.ParseNotifyRequest(r.Context(), r, &content)
	if err != nil {
		s.rejected.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"code":"FAIL","message":"失败"}`)
		return
	}
	if s.failing.Load() > 0 {
		s.failing.Add(-1)
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `{"code":"FAIL","message":"失败"}`)
		return
	}
	s.mu.Lock()
	s.got = append(s.got, received{req: req, header: r.Header.Clone(), plaintext: content})
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (s *sink) received() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.got...)
}

// waitFor polls cond for up to 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wait waits until the sink has a notification of eventType and returns it.
func (s *sink) wait(eventType string, match func(received) bool) received {
	s.t.Helper()
	var found received
	waitFor(s.t, eventType+" notification", func() bool {
		for _, r := range s.received() {
			if r.req.EventType == eventType && (match == nil || match(r)) {
				found = r
				return true
			}
		}
		return false
	})
	return found
}
