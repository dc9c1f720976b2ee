// Package sandbox assembles the offline wallet emulators behind one listener, as the real hosts
// (api.mch.weixin.qq.com, api.weixin.qq.com, openapi.alipay.com) would answer: WeChat Pay under
// /v3 and /sns, Alipay at /gateway.do, and the payer and control side under /sandbox.
package sandbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/hutong-pay/hutong/internal/sandbox/alipay"
	"github.com/hutong-pay/hutong/internal/sandbox/faults"
	"github.com/hutong-pay/hutong/internal/sandbox/notify"
	"github.com/hutong-pay/hutong/internal/sandbox/sandboxdb"
	"github.com/hutong-pay/hutong/internal/sandbox/wechatpay"
)

// Config configures the sandbox.
type Config struct {
	DataDir   string  // sandbox.db and credentials.json live here
	BaseURL   string  // where the sandbox is reached, e.g. http://127.0.0.1:8091
	TimeScale float64 // compresses the wallets' notification retry schedules; 1 = real time
	Now       func() time.Time
	Logger    *slog.Logger
}

// Credentials are both sandbox merchants' accounts, as GET /sandbox/credentials returns them.
type Credentials struct {
	WeChatPay wechatpay.Credentials `json:"wechatpay"`
	Alipay    alipay.Credentials    `json:"alipay"`
}

// Sandbox is both wallet emulators with their shared notification sender and fault injector.
type Sandbox struct {
	db     *sql.DB
	Faults *faults.Injector
	Sender *notify.Sender
	WeChat *wechatpay.Sandbox
	Alipay *alipay.Sandbox
	log    *slog.Logger
}

// Open opens (or creates on the first run) the sandbox in cfg.DataDir and writes credentials.json.
func Open(ctx context.Context, cfg Config) (*Sandbox, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("sandbox: data folder: %w", err)
	}
	db, err := sandboxdb.Open(filepath.Join(cfg.DataDir, "sandbox.db"))
	if err != nil {
		return nil, err
	}
	s := &Sandbox{db: db, Faults: faults.New(), log: cfg.Logger}
	s.Sender, err = notify.New(notify.Options{DB: db, Faults: s.Faults, TimeScale: cfg.TimeScale, Now: cfg.Now, Logger: cfg.Logger})
	if err != nil {
		db.Close()
		return nil, err
	}
	s.WeChat, err = wechatpay.New(ctx, wechatpay.Config{DB: db, Sender: s.Sender, Faults: s.Faults, BaseURL: cfg.BaseURL, TimeScale: cfg.TimeScale, Now: cfg.Now, Logger: cfg.Logger})
	if err != nil {
		db.Close()
		return nil, err
	}
	s.Alipay, err = alipay.New(ctx, alipay.Config{DB: db, Sender: s.Sender, Faults: s.Faults, BaseURL: cfg.BaseURL, Now: cfg.Now, Logger: cfg.Logger})
	if err != nil {
		db.Close()
		return nil, err
	}
	creds, err := json.MarshalIndent(s.Credentials(), "", "  ")
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("sandbox: credentials: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(cfg.DataDir, "credentials.json"), append(creds, '\n')); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("sandbox: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("sandbox: write %s: %w", path, err)
	}
	return nil
}

// Credentials returns both sandbox merchants' accounts.
func (s *Sandbox) Credentials() Credentials {
	return Credentials{WeChatPay: s.WeChat.Credentials(), Alipay: s.Alipay.Credentials()}
}

// Start begins delivering notifications, including those left pending by an earlier run.
func (s *Sandbox) Start(ctx context.Context) { s.Sender.Start(ctx) }

// Close stops delivery and closes the database.
func (s *Sandbox) Close() error {
	s.Sender.Close()
	return s.db.Close()
}

// Register mounts every wallet endpoint and the sandbox's own control endpoints on mux.
func (s *Sandbox) Register(mux *http.ServeMux) {
	s.WeChat.Register(mux)
	s.Alipay.Register(mux)
	mux.HandleFunc("GET /sandbox/credentials", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Credentials())
	})
	mux.HandleFunc("GET /sandbox/faults", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Faults.Settings())
	})
	mux.HandleFunc("PUT /sandbox/faults", s.putFaults)
}

// Handler returns a mux serving the whole sandbox.
func (s *Sandbox) Handler() http.Handler {
	mux := http.NewServeMux()
	s.Register(mux)
	return mux
}

func (s *Sandbox) putFaults(w http.ResponseWriter, r *http.Request) {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	var set faults.Settings
	if err := dec.Decode(&set); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "faults: " + err.Error()})
		return
	}
	if dec.More() {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "faults: trailing data after the JSON object"})
		return
	}
	if err := s.Faults.Set(set); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	s.log.Info("sandbox faults changed", "faults", set)
	writeJSON(w, http.StatusOK, s.Faults.Settings())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may have gone; nothing to do about it
}
