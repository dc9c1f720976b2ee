package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/hutong-pay/hutong/internal/alipay"
	"github.com/hutong-pay/hutong/internal/checkout"
	"github.com/hutong-pay/hutong/internal/config"
	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/httpapi"
	"github.com/hutong-pay/hutong/internal/payment"
	"github.com/hutong-pay/hutong/internal/store/postgres"
	"github.com/hutong-pay/hutong/internal/store/sqlite"
	"github.com/hutong-pay/hutong/internal/wechatpay"
)

// OpenStore opens the configured database: PostgreSQL when database_url is set, else SQLite in
// the data folder. With migrate it applies pending migrations; without, it refuses an outdated schema.
func OpenStore(ctx context.Context, cfg config.Config, migrate bool) (gateway.Store, error) {
	if cfg.DatabaseURL != "" {
		return postgres.Open(ctx, cfg.DatabaseURL, postgres.Options{Migrate: migrate})
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	return sqlite.Open(ctx, filepath.Join(cfg.DataDir, "hutong.db"), sqlite.Options{Synchronous: cfg.Synchronous, Migrate: migrate})
}

// NodeOptions configure a gateway node.
type NodeOptions struct {
	Config  config.Config
	Logger  *slog.Logger
	Migrate bool             // apply pending migrations (demo, tests) instead of refusing to start
	Now     func() time.Time // nil: time.Now
	// SandboxURL, when set, tells the checkout it may load the sandbox's emulated wallet bridge.
	SandboxURL string
}

// Node is one stateless gateway process: any number share one PostgreSQL database.
type Node struct {
	Store    gateway.Store
	Service  *gateway.Service
	Registry *prometheus.Registry
	handler  http.Handler
	log      *slog.Logger
}

// NewNode opens the store and builds the connectors, use cases and HTTP handler.
func NewNode(ctx context.Context, opts NodeOptions) (*Node, error) {
	cfg, log := opts.Config, opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	st, err := OpenStore(ctx, cfg, opts.Migrate)
	if err != nil {
		return nil, err
	}
	n := &Node{Store: st, Registry: reg, log: log}
	providers, notifyHandlers, err := n.connectors(ctx, cfg, now, reg)
	if err != nil {
		st.Close()
		return nil, err
	}
	n.Service = gateway.New(gateway.Config{
		Store: st, Providers: providers, PublicURL: cfg.PublicURL, PaymentTTL: cfg.PaymentTTL.Duration, Now: now, Logger: log,
	})
	co := checkout.New(checkout.Config{Service: n.Service, Logger: log, Now: now, SandboxURL: opts.SandboxURL})
	n.handler = httpapi.New(httpapi.Config{
		Service: n.Service, Store: st, Logger: log, Metrics: reg, Now: now, IdempotencyStaleAfter: cfg.IdempotencyStaleAfter.Duration,
		Extra: func(mux *http.ServeMux) {
			for pattern, h := range notifyHandlers(n.Service, n.recordRejected) {
				mux.Handle(pattern, h)
			}
			co.Register(mux)
		},
	})
	return n, nil
}

// notifyMounts builds the wallet notification handlers once the service exists.
type notifyMounts func(app *gateway.Service, rec func(ctx context.Context, kind, reason string, fields map[string]string)) map[string]http.Handler

// connectors builds the configured wallet connectors.
func (n *Node) connectors(ctx context.Context, cfg config.Config, now func() time.Time, reg prometheus.Registerer) ([]gateway.Provider, notifyMounts, error) {
	var providers []gateway.Provider
	var wx *wechatpay.Connector
	var ali *alipay.Connector
	if w := cfg.WeChatPay; w != nil {
		var err error
		wx, err = wechatpay.New(ctx, wechatpay.Config{
			MchID: w.MchID, AppID: w.AppID, MerchantSerialNo: w.MerchantSerialNo, MerchantPrivateKeyPEM: w.MerchantPrivateKey,
			APIv3Key: w.APIv3Key, PublicKeyID: w.PublicKeyID, PublicKeyPEM: w.PublicKey, Mode: w.Mode, ResponseSerial: w.ResponseSerial,
			BaseURL: w.BaseURL, Timeout: w.Timeout.Duration, Now: now, Logger: n.log, Metrics: reg,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("wechatpay: %w", err)
		}
		providers = append(providers, wx)
	}
	if a := cfg.Alipay; a != nil {
		var err error
		ali, err = alipay.New(alipay.Config{
			AppID: a.AppID, AppPrivateKey: a.AppPrivateKey, AlipayPublicKey: a.AlipayPublicKey, GatewayURL: a.GatewayURL,
			Timeout: a.Timeout.Duration, Now: now, Logger: n.log,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("alipay: %w", err)
		}
		providers = append(providers, ali)
	}
	mounts := func(svc *gateway.Service, rec func(context.Context, string, string, map[string]string)) map[string]http.Handler {
		m := map[string]http.Handler{}
		if wx != nil {
			h := wx.NotificationHandler(svc, rec)
			m["POST /notify/wechatpay/payments"] = h
			m["POST /notify/wechatpay/refunds"] = h
		}
		if ali != nil {
			h := ali.NotificationHandler(svc, rec)
			m["POST /notify/alipay/payments"] = h
			m["POST /notify/alipay/refunds"] = h
		}
		return m
	}
	return providers, mounts, nil
}

// recordRejected logs a wallet notification that changed nothing (forged, stale, mismatched,
// unknown) for operators. Only identifiers are logged, never bodies or signatures.
func (n *Node) recordRejected(ctx context.Context, kind, reason string, fields map[string]string) {
	attrs := []any{"kind", kind, "reason", reason}
	for k, v := range fields {
		attrs = append(attrs, k, v)
	}
	n.log.WarnContext(ctx, "wallet notification rejected", attrs...)
}

// Handler is the node's whole HTTP surface.
func (n *Node) Handler() http.Handler { return n.handler }

// Run serves on ln and runs the background work until ctx is done.
func (n *Node) Run(ctx context.Context, ln net.Listener) error {
	n.log.Info("gateway listening", "url", BaseURL(ln))
	return Serve(ctx, ln, n.handler, n.log)
}

// Close releases the store.
func (n *Node) Close() error { return n.Store.Close() }

// SeedMerchant makes sure merchant id exists with name, returning it.
func SeedMerchant(ctx context.Context, st gateway.Store, id, name string, now time.Time) (*payment.Merchant, error) {
	m, err := st.Merchant(ctx, id)
	if err == nil {
		return m, nil
	}
	if !payment.IsNotFound(err) {
		return nil, err
	}
	m = &payment.Merchant{ID: id, Name: name, CreatedAt: now.UTC().Truncate(time.Microsecond)}
	if err := st.CreateMerchant(ctx, m); err != nil {
		return nil, err
	}
	return m, nil
}
