// Package wechatpay emulates WeChat Pay API v3 (api.mch.weixin.qq.com), the mini-program login and
// web authorization of api.weixin.qq.com / open.weixin.qq.com closely enough that the official SDK,
// and other real clients, talk to it unmodified: signed requests and responses in both verification
// modes (WeChat Pay public key and platform certificates), orders, refunds, bills, encrypted and signed
// notifications with WeChat's retry schedule, and a payer side: control endpoints to pay or decline,
// pages a scanned Native code or an H5 link opens, and an emulated WeChat JS bridge (bridge.js) for
// JSAPI pages. All state lives in the sandbox database.
package wechatpay

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hutong-pay/hutong/internal/sandbox/faults"
	"github.com/hutong-pay/hutong/internal/sandbox/notify"
)

// Config wires a Sandbox to the shared sandbox pieces.
type Config struct {
	DB      *sql.DB          // shared sandbox database; this package's tables are prefixed wx_
	Sender  *notify.Sender   // notifications go out through it, registered as "wechatpay"
	Faults  *faults.Injector // API faults, applied at the start of every /v3 call; nil: none
	BaseURL string           // the sandbox's own base URL, for bill download and H5 URLs; "" uses the request's Host
	Now     func() time.Time // nil: time.Now
	Logger  *slog.Logger     // nil: discard
	// TimeScale compresses the sandbox's own delays (a refund settles after TimeScale × 1 s), as
	// notify.Options.TimeScale compresses the retry schedule; <= 0 means 1.
	TimeScale float64
}

// Credentials are what a merchant configures to talk to the sandbox (design.md, GET /sandbox/credentials).
type Credentials struct {
	MchID              string `json:"mchid"`
	AppID              string `json:"appid"`
	AppSecret          string `json:"app_secret"`
	MerchantSerialNo   string `json:"merchant_serial_no"`
	MerchantPrivateKey string `json:"merchant_private_key"` // PKCS#8 PEM
	PublicKeyID        string `json:"public_key_id"`        // PUB_KEY_ID_…
	PublicKey          string `json:"public_key"`           // PKIX PEM
	APIv3Key           string `json:"apiv3_key"`
}

// Sandbox is the WeChat Pay emulator. Create it with New and mount it with Register.
type Sandbox struct {
	db      *sql.DB
	sender  *notify.Sender
	faults  *faults.Injector
	baseURL string
	now     func() time.Time
	log     *slog.Logger
	keys    *keyring

	// mu serialises state changes so that check-then-write sequences (pay vs close, refund totals)
	// never interleave within this process; the database serialises writers across processes.
	mu sync.Mutex

	signingMu           sync.RWMutex
	notificationSigning string // "public_key" or "certificate"

	// refundDelay is how long (in nanoseconds) a refund stays PROCESSING before it settles; tests shorten it.
	refundDelay atomic.Int64
}

// refundDelay at TimeScale 1: long enough to be seen PROCESSING, short enough for a demo.
const baseRefundDelay = time.Second

const (
	walletName  = "wechatpay"
	maxBody     = 1 << 20
	signingPub  = "public_key"
	signingCert = "certificate"
)

// New loads the sandbox merchant and its keys from cfg.DB, generating them on first start, registers
// the "wechatpay" wallet with cfg.Sender (so call it before Sender.Start), and resumes work left over
// from a previous run (refunds due, notifications not yet handed to the sender).
func New(ctx context.Context, cfg Config) (*Sandbox, error) {
	if cfg.DB == nil {
		return nil, errors.New("wechatpay sandbox: no database")
	}
	if cfg.Sender == nil {
		return nil, errors.New("wechatpay sandbox: no notification sender")
	}
	s := &Sandbox{
		db: cfg.DB, sender: cfg.Sender, faults: cfg.Faults, baseURL: strings.TrimRight(cfg.BaseURL, "/"),
		now: cfg.Now, log: cfg.Logger,
	}
	scale := cfg.TimeScale
	if !(scale > 0) || math.IsInf(scale, 0) {
		scale = 1
	}
	s.refundDelay.Store(int64(float64(baseRefundDelay) * scale))
	if s.faults == nil {
		s.faults = faults.New()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for _, stmt := range schema {
		if _, err := s.db.ExecContext(ctx, stmt); err != nil {
			return nil, fmt.Errorf("wechatpay sandbox: create tables: %w", err)
		}
	}
	for _, c := range addedColumns {
		if err := c.add(ctx, s.db); err != nil {
			return nil, err
		}
	}
	keys, signing, err := loadOrCreateMerchant(ctx, s.db, s.now())
	if err != nil {
		return nil, err
	}
	s.keys, s.notificationSigning = keys, signing
	s.sender.Register(walletName, wallet{s: s})
	if err := s.resume(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

var schema = []string{merchantSchema, ordersSchema, ordersIndex, ordersNativeIndex, refundsSchema, refundsOrderIndex,
	refundsSuccessIndex, billsSchema, loginCodesSchema, usersSchema, oauthCodesSchema}

// addedColumns are columns added since the tables were first released; databases written by an
// earlier version get them at start.
var addedColumns = []column{nextRefundOutcomeColumn, refundOutcomeColumn}

type column struct{ table, name, decl string }

func (c column) add(ctx context.Context, db *sql.DB) error {
	var n int
	err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ?`, c.table, c.name).Scan(&n)
	if err != nil {
		return fmt.Errorf("wechatpay sandbox: inspect %s: %w", c.table, err)
	}
	if n > 0 {
		return nil
	}
	_, err = db.ExecContext(ctx, `ALTER TABLE `+c.table+` ADD COLUMN `+c.name+` `+c.decl)
	if err != nil && !strings.Contains(err.Error(), "duplicate column") { // another process may have just added it
		return fmt.Errorf("wechatpay sandbox: add %s.%s: %w", c.table, c.name, err)
	}
	return nil
}

// Credentials returns the sandbox merchant's account, keys included.
func (s *Sandbox) Credentials() Credentials {
	d := s.keys.doc
	return Credentials{
		MchID: d.MchID, AppID: d.AppID, AppSecret: d.AppSecret, MerchantSerialNo: d.MerchantSerialNo,
		MerchantPrivateKey: d.MerchantPrivateKey, PublicKeyID: d.PublicKeyID, PublicKey: d.PublicKey, APIv3Key: d.APIv3Key,
	}
}

// Register mounts WeChat Pay's API (/v3/...), the mini-program login (/sns/jscode2session) and the
// sandbox's payer and control endpoints (/sandbox/wechatpay/...) on mux.
func (s *Sandbox) Register(mux *http.ServeMux) {
	v3 := func(pattern string, h apiFunc) { mux.Handle(pattern, s.v3(h)) }
	v3("POST /v3/pay/transactions/jsapi", s.prepay(tradeJSAPI))
	v3("POST /v3/pay/transactions/native", s.prepay(tradeNative))
	v3("POST /v3/pay/transactions/h5", s.prepay(tradeH5))
	v3("POST /v3/pay/transactions/app", s.prepay(tradeApp))
	v3("GET /v3/pay/transactions/out-trade-no/{out_trade_no}", s.queryByOutTradeNo)
	v3("GET /v3/pay/transactions/id/{transaction_id}", s.queryByTransactionID)
	v3("POST /v3/pay/transactions/out-trade-no/{out_trade_no}/close", s.closeOrder)
	v3("POST /v3/refund/domestic/refunds", s.createRefund)
	v3("GET /v3/refund/domestic/refunds/{out_refund_no}", s.queryRefund)
	v3("GET /v3/bill/tradebill", s.tradeBill)
	v3("GET /v3/billdownload/file", s.downloadBill)
	v3("GET /v3/certificates", s.certificates)
	mux.HandleFunc("/v3/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Request-ID", newRequestID())
		writeAPIError(w, errNotFound)
	})

	mux.HandleFunc("GET /sns/jscode2session", s.jscode2session)
	mux.HandleFunc("GET /connect/oauth2/authorize", s.oauthAuthorize)
	mux.HandleFunc("GET /sns/oauth2/access_token", s.oauthAccessToken)

	mux.HandleFunc("GET /sandbox/wechatpay/scan", s.handleScan)
	mux.HandleFunc("GET /sandbox/wechatpay/native/{token}", s.handleNativePage)
	mux.HandleFunc("POST /sandbox/wechatpay/native/{token}/pay", s.handleNativePay)
	mux.HandleFunc("POST /sandbox/wechatpay/native/{token}/decline", s.handleNativeDecline)
	mux.HandleFunc("GET /sandbox/wechatpay/h5/{prepay_id}", s.handleH5Page)
	mux.HandleFunc("POST /sandbox/wechatpay/h5/{prepay_id}/pay", s.handleH5Pay)
	mux.HandleFunc("POST /sandbox/wechatpay/h5/{prepay_id}/decline", s.handleH5Decline)

	mux.HandleFunc("GET /sandbox/wechatpay/bridge.js", s.handleBridgeJS)
	mux.Handle("POST /sandbox/wechatpay/jsapi/verify", cors(http.HandlerFunc(s.handleJSAPIVerify)))
	mux.Handle("POST /sandbox/wechatpay/jsapi/pay", cors(http.HandlerFunc(s.handleJSAPIPay)))
	mux.Handle("OPTIONS /sandbox/wechatpay/jsapi/verify", cors(http.NotFoundHandler())) // cors answers preflights itself
	mux.Handle("OPTIONS /sandbox/wechatpay/jsapi/pay", cors(http.NotFoundHandler()))

	mux.HandleFunc("POST /sandbox/wechatpay/transactions/{out_trade_no}/pay", s.handlePay)
	mux.HandleFunc("POST /sandbox/wechatpay/transactions/{out_trade_no}/decline", s.handleDecline)
	mux.HandleFunc("POST /sandbox/wechatpay/login-codes", s.handleLoginCode)
	mux.HandleFunc("GET /sandbox/wechatpay/merchant", s.handleGetMerchant)
	mux.HandleFunc("PUT /sandbox/wechatpay/merchant", s.handlePutMerchant)
}

// apiCall is one authenticated /v3 request.
type apiCall struct {
	r     *http.Request
	body  []byte
	mchid string // from the verified Authorization header
}

// reply is a handler's successful answer; v3 signs it unless unsigned is set.
type reply struct {
	status      int
	body        []byte
	contentType string
	unsigned    bool
	key         *signingKey // nil: the key the request's Wechatpay-Serial names
}

type apiFunc func(ctx context.Context, c *apiCall) (reply, error)

// v3 wraps a WeChat Pay API handler: faults, body limit, request signature, error shape, response signature.
func (s *Sandbox) v3(h apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqID := newRequestID()
		w.Header().Set("Request-ID", reqID)
		log := s.log.With("request_id", reqID, "method", r.Method, "path", r.URL.Path)
		if s.faults.API(r.Context()) {
			log.Info("wechatpay sandbox: injected system error")
			writeAPIError(w, errSystem)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeAPIError(w, paramError("body", "body", "请求体超过%d字节", maxBody))
				return
			}
			writeAPIError(w, invalidRequest("读取请求体失败"))
			return
		}
		mchid, aerr := s.authenticate(r, body)
		if aerr != nil {
			log.Info("wechatpay sandbox: request rejected", "code", aerr.Code)
			writeAPIError(w, aerr)
			return
		}
		rep, err := h(r.Context(), &apiCall{r: r, body: body, mchid: mchid})
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) {
				log.Error("wechatpay sandbox: internal error", "err", err)
				ae = errSystem
			}
			log.Debug("wechatpay sandbox: error answer", "status", ae.Status, "code", ae.Code)
			writeAPIError(w, ae)
			return
		}
		if rep.contentType == "" {
			rep.contentType = "application/json"
		}
		w.Header().Set("Content-Type", rep.contentType)
		if !rep.unsigned {
			key := s.responseKey(r)
			if rep.key != nil {
				key = *rep.key
			}
			if err := s.signHeaders(w.Header(), key, rep.body); err != nil {
				log.Error("wechatpay sandbox: sign response", "err", err)
				writeAPIError(w, errSystem)
				return
			}
		}
		w.WriteHeader(rep.status)
		if rep.status != http.StatusNoContent {
			_, _ = w.Write(rep.body)
		}
	})
}

func writeAPIError(w http.ResponseWriter, e *apiError) {
	body, _ := marshalJSON(e)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_, _ = w.Write(body)
}

// marshalJSON encodes like WeChat does: no HTML escaping, no trailing newline.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("wechatpay sandbox: encode answer: %w", err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

func jsonReply(status int, v any) (reply, error) {
	body, err := marshalJSON(v)
	if err != nil {
		return reply{}, err
	}
	return reply{status: status, body: body}, nil
}

// decodeJSON decodes a request body into v, turning every failure into the PARAM_ERROR WeChat sends
// (naming the field when the type is wrong).
func decodeJSON(body []byte, v any) *apiError {
	if len(bytes.TrimSpace(body)) == 0 {
		return paramError("body", "body", "请求体为空")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return paramError("body", typeErr.Field, "类型错误，不能是%s", typeErr.Value)
		}
		return paramError("body", "body", "请求体不是合法的JSON对象")
	}
	if _, err := dec.Token(); err != io.EOF {
		return paramError("body", "body", "请求体不是合法的JSON对象")
	}
	return nil
}

// writeSandboxJSON answers the sandbox's own endpoints (errors in the same {"code","message"} shape).
func writeSandboxJSON(w http.ResponseWriter, status int, v any) {
	body, err := marshalJSON(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"code":"SYSTEM_ERROR","message":"encode failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeSandboxError(w http.ResponseWriter, status int, code, message string) {
	writeSandboxJSON(w, status, map[string]string{"code": code, "message": message})
}

// readSandboxBody reads an optional JSON body of a sandbox endpoint into v; an empty body leaves v alone.
func readSandboxBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeSandboxError(w, http.StatusBadRequest, "PARAM_ERROR", "request body unreadable or larger than 1 MiB")
		return false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return true
	}
	if e := decodeJSON(body, v); e != nil {
		writeSandboxError(w, http.StatusBadRequest, e.Code, e.Message)
		return false
	}
	return true
}

// base is where URLs the sandbox hands out point: BaseURL, or the host the request came to.
func (s *Sandbox) base(r *http.Request) string {
	if s.baseURL != "" {
		return s.baseURL
	}
	return "http://" + r.Host
}

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// inTx runs fn in a transaction under s.mu and commits it.
func (s *Sandbox) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("wechatpay sandbox: begin: %w", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("wechatpay sandbox: commit: %w", err)
	}
	return nil
}

func (s *Sandbox) handleGetMerchant(w http.ResponseWriter, r *http.Request) {
	s.writeMerchantSettings(w, r)
}

type merchantSettings struct {
	MchID               string   `json:"mchid"`
	NotificationSigning string   `json:"notification_signing"`
	PublicKeyID         string   `json:"public_key_id"`
	PlatformSerials     []string `json:"platform_certificate_serials"`
	RefundOutcome       string   `json:"refund_outcome"` // what the next refund settles in
}

func (s *Sandbox) writeMerchantSettings(w http.ResponseWriter, r *http.Request) {
	m := merchantSettings{MchID: s.keys.doc.MchID, NotificationSigning: s.signingMode(), PublicKeyID: s.keys.publicKey.serial}
	for _, c := range s.keys.certs {
		m.PlatformSerials = append(m.PlatformSerials, c.serial)
	}
	var outcome string
	if err := s.db.QueryRowContext(r.Context(), `SELECT next_refund_outcome FROM wx_merchant WHERE id = 1`).Scan(&outcome); err != nil {
		s.log.Error("wechatpay sandbox: read refund outcome", "err", err)
		writeSandboxError(w, http.StatusInternalServerError, "SYSTEM_ERROR", "could not read the settings")
		return
	}
	m.RefundOutcome = strings.ToLower(outcome)
	writeSandboxJSON(w, http.StatusOK, m)
}

// handlePutMerchant changes the merchant's settings: which key signs notifications, as a merchant
// migrating between platform certificates and the WeChat Pay public key would see it, and how the
// next refund ends ("success", "abnormal" or "closed"; it applies to one refund, then reverts to success).
func (s *Sandbox) handlePutMerchant(w http.ResponseWriter, r *http.Request) {
	var req struct {
		NotificationSigning *string `json:"notification_signing"`
		RefundOutcome       *string `json:"refund_outcome"`
	}
	if !readSandboxBody(w, r, &req) {
		return
	}
	if mode := req.NotificationSigning; mode != nil && *mode != signingPub && *mode != signingCert {
		writeSandboxError(w, http.StatusBadRequest, "PARAM_ERROR", `notification_signing must be "public_key" or "certificate"`)
		return
	}
	var outcome string
	if req.RefundOutcome != nil {
		var ok bool
		if outcome, ok = refundOutcomes[*req.RefundOutcome]; !ok {
			writeSandboxError(w, http.StatusBadRequest, "PARAM_ERROR", `refund_outcome must be "success", "abnormal" or "closed"`)
			return
		}
	}
	fail := func(err error) {
		s.log.Error("wechatpay sandbox: store merchant settings", "err", err)
		writeSandboxError(w, http.StatusInternalServerError, "SYSTEM_ERROR", "could not store the setting")
	}
	if outcome != "" {
		if _, err := s.db.ExecContext(r.Context(), `UPDATE wx_merchant SET next_refund_outcome = ? WHERE id = 1`, outcome); err != nil {
			fail(err)
			return
		}
	}
	if req.NotificationSigning != nil {
		mode := *req.NotificationSigning
		s.signingMu.Lock()
		_, err := s.db.ExecContext(r.Context(), `UPDATE wx_merchant SET notification_signing = ? WHERE id = 1`, mode)
		if err == nil {
			s.notificationSigning = mode
		}
		s.signingMu.Unlock()
		if err != nil {
			fail(err)
			return
		}
	}
	s.writeMerchantSettings(w, r)
}

func (s *Sandbox) signingMode() string {
	s.signingMu.RLock()
	defer s.signingMu.RUnlock()
	return s.notificationSigning
}
