// Package alipay emulates the Alipay OpenAPI gateway (gateway.do, RSA2 in public-key mode) for the
// sandbox: trades created by precreate, create, page and wap pay, paid by a payer side, queried,
// closed and refunded, with signed answers, signed trade_status_sync notifications on Alipay's retry
// schedule, day bills as Alipay's zip of GBK CSVs, and one-time mini-program auth codes.
//
// Fidelity is the wire protocol: the smartwalle Go SDK and the official Node SDK work against it
// unmodified. All state lives in the shared sandbox database, in tables prefixed ali_.
package alipay

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"time"

	"github.com/hutong-pay/hutong/internal/sandbox/faults"
	"github.com/hutong-pay/hutong/internal/sandbox/notify"
)

// Config wires a Sandbox to the shared sandbox pieces.
type Config struct {
	DB      *sql.DB          // shared sandbox database; the ali_ tables are created here
	Sender  *notify.Sender   // notifications; the "alipay" wallet is registered on it in New
	Faults  *faults.Injector // API faults, applied at the start of every gateway call
	BaseURL string           // the sandbox's own base URL, for QR codes and bill download links
	Now     func() time.Time
	Logger  *slog.Logger
}

// Credentials are the sandbox merchant's Alipay keys, as a merchant copies them from the open platform.
type Credentials struct {
	AppID           string `json:"app_id"`
	AppPrivateKey   string `json:"app_private_key"`   // PKCS#8 "PRIVATE KEY" PEM
	AlipayPublicKey string `json:"alipay_public_key"` // PKIX "PUBLIC KEY" PEM
}

// Sandbox is the Alipay emulator. Its handlers are safe for concurrent use.
type Sandbox struct {
	db      *sql.DB
	sender  *notify.Sender
	faults  *faults.Injector
	baseURL string
	now     func() time.Time
	log     *slog.Logger
	app     *app
	methods map[string]methodFunc
}

// shanghai is Alipay's clock. China has kept UTC+8 without daylight saving since 1991, so a fixed
// zone is exact and needs no tzdata.
var shanghai = time.FixedZone("CST", 8*3600)

// alipayTime is the layout of every timestamp Alipay writes and reads.
const alipayTime = "2006-01-02 15:04:05"

const walletName = "alipay"

const schema = `
CREATE TABLE IF NOT EXISTS ali_apps (
	app_id             TEXT PRIMARY KEY,
	seller_id          TEXT NOT NULL,
	app_private_key    TEXT NOT NULL,
	alipay_private_key TEXT NOT NULL,
	bill_secret        TEXT NOT NULL,
	default_buyer_id   TEXT NOT NULL,
	created_at         INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ali_users (
	user_id    TEXT PRIMARY KEY,
	open_id    TEXT NOT NULL UNIQUE,
	logon_id   TEXT NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ali_trades (
	trade_no        TEXT PRIMARY KEY,
	app_id          TEXT NOT NULL,
	out_trade_no    TEXT NOT NULL,
	kind            TEXT NOT NULL,
	status          TEXT NOT NULL,
	scanned         INTEGER NOT NULL,
	subject         TEXT NOT NULL,
	body            TEXT NOT NULL,
	total_fen       INTEGER NOT NULL,
	refunded_fen    INTEGER NOT NULL DEFAULT 0,
	product_code    TEXT NOT NULL,
	notify_url      TEXT NOT NULL,
	return_url      TEXT NOT NULL,
	quit_url        TEXT NOT NULL,
	passback_params TEXT NOT NULL,
	buyer_id        TEXT NOT NULL,
	buyer_open_id   TEXT NOT NULL,
	qr_token        TEXT NOT NULL,
	created_at      INTEGER NOT NULL,
	expires_at      INTEGER NOT NULL,
	paid_at         INTEGER NOT NULL DEFAULT 0,
	closed_at       INTEGER NOT NULL DEFAULT 0,
	UNIQUE (app_id, out_trade_no)
);
CREATE INDEX IF NOT EXISTS ali_trades_paid_at ON ali_trades (paid_at);
CREATE INDEX IF NOT EXISTS ali_trades_qr_token ON ali_trades (qr_token);
CREATE TABLE IF NOT EXISTS ali_refunds (
	trade_no       TEXT NOT NULL REFERENCES ali_trades (trade_no),
	out_request_no TEXT NOT NULL,
	amount_fen     INTEGER NOT NULL,
	reason         TEXT NOT NULL,
	created_at     INTEGER NOT NULL,
	PRIMARY KEY (trade_no, out_request_no)
);
CREATE INDEX IF NOT EXISTS ali_refunds_created_at ON ali_refunds (created_at);
CREATE TABLE IF NOT EXISTS ali_auth_codes (
	code       TEXT PRIMARY KEY,
	app_id     TEXT NOT NULL,
	user_id    TEXT NOT NULL REFERENCES ali_users (user_id),
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	used_at    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS ali_oauth_tokens (
	access_token  TEXT PRIMARY KEY,
	refresh_token TEXT NOT NULL UNIQUE,
	app_id        TEXT NOT NULL,
	user_id       TEXT NOT NULL REFERENCES ali_users (user_id),
	created_at    INTEGER NOT NULL,
	refreshed     INTEGER NOT NULL DEFAULT 0
);`

// New opens the Alipay sandbox over cfg.DB, creating its tables and, on the first run, the app,
// its keys and a default buyer. Later runs over the same database load them back.
func New(ctx context.Context, cfg Config) (*Sandbox, error) {
	if cfg.DB == nil {
		return nil, errors.New("alipay sandbox: no database")
	}
	s := &Sandbox{
		db: cfg.DB, sender: cfg.Sender, faults: cfg.Faults,
		baseURL: strings.TrimRight(cfg.BaseURL, "/"), now: cfg.Now, log: cfg.Logger,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if _, err := s.db.ExecContext(ctx, schema); err != nil {
		return nil, fmt.Errorf("alipay sandbox: create tables: %w", err)
	}
	a, err := s.loadOrCreateApp(ctx)
	if err != nil {
		return nil, err
	}
	s.app = a
	s.methods = s.apiMethods()
	if s.sender != nil {
		s.sender.Register(walletName, &wallet{s: s})
	}
	return s, nil
}

// Credentials returns the sandbox merchant's app id and keys.
func (s *Sandbox) Credentials() Credentials {
	return Credentials{AppID: s.app.id, AppPrivateKey: s.app.appPrivatePEM, AlipayPublicKey: s.app.alipayPublicPEM}
}

// Register mounts the gateway and the sandbox's payer and control endpoints on mux.
func (s *Sandbox) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /gateway.do", s.handleGateway)
	mux.HandleFunc("POST /gateway.do", s.handleGateway)

	mux.HandleFunc("GET /sandbox/alipay/trades/{out_trade_no}", s.handleTradeView)
	mux.HandleFunc("POST /sandbox/alipay/trades/{out_trade_no}/pay", s.handlePayAction)
	mux.HandleFunc("POST /sandbox/alipay/trades/{out_trade_no}/decline", s.handleDeclineAction)
	mux.HandleFunc("POST /sandbox/alipay/trades/{out_trade_no}/scan", s.handleScanAction)
	mux.HandleFunc("POST /sandbox/alipay/auth-codes", s.handleAuthCodes)

	mux.HandleFunc("GET /sandbox/alipay/qr/{token}", s.handleQRPage)
	mux.HandleFunc("POST /sandbox/alipay/cashier/{trade_no}/pay", s.handleCashierPay)
	mux.HandleFunc("POST /sandbox/alipay/cashier/{trade_no}/decline", s.handleCashierDecline)
	mux.HandleFunc("GET /sandbox/alipay/bills/download", s.handleBillDownload)
}

// timeText formats t as Alipay does, in Beijing time.
func timeText(t time.Time) string { return t.In(shanghai).Format(alipayTime) }

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms) }

// randomDigits returns n decimal digits from crypto/rand.
func randomDigits(n int) string {
	b := make([]byte, n)
	ten := big.NewInt(10)
	for i := range b {
		d, err := rand.Int(rand.Reader, ten)
		if err != nil {
			panic("alipay sandbox: crypto/rand failed: " + err.Error()) // the OS source never fails in practice
		}
		b[i] = byte('0' + d.Int64())
	}
	return string(b)
}

const alnum = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// randomToken returns n characters from [0-9a-zA-Z] from crypto/rand.
func randomToken(n int) string {
	b := make([]byte, n)
	max := big.NewInt(int64(len(alnum)))
	for i := range b {
		d, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic("alipay sandbox: crypto/rand failed: " + err.Error())
		}
		b[i] = alnum[d.Int64()]
	}
	return string(b)
}

// newUserID returns an Alipay user id: 2088 and twelve digits.
func newUserID() string { return "2088" + randomDigits(12) }
