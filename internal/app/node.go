package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/hutong-pay/hutong/internal/alipay"
	"github.com/hutong-pay/hutong/internal/checkout"
	"github.com/hutong-pay/hutong/internal/config"
	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/httpapi"
	"github.com/hutong-pay/hutong/internal/identity"
	"github.com/hutong-pay/hutong/internal/jobs"
	"github.com/hutong-pay/hutong/internal/payment"
	"github.com/hutong-pay/hutong/internal/store/postgres"
	"github.com/hutong-pay/hutong/internal/store/sqlite"
	"github.com/hutong-pay/hutong/internal/webhook"
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
	// Jobs tunes the background work (tests shorten its schedule).
	Jobs JobOptions
	// MinPaymentTTL is the shortest expires_at a merchant may ask for; 0: the gateway's minute.
	MinPaymentTTL time.Duration
	// Providers, when set, replace the configured wallet connectors (benchmarks use an
	// in-process wallet to measure the gateway alone).
	Providers []gateway.Provider
}

// Node is one stateless gateway process: any number share one PostgreSQL database.
type Node struct {
	Store    gateway.Store
	Service  *gateway.Service
	Registry *prometheus.Registry
	// Queue works the node's share of the background jobs (River) once Run starts it.
	Queue    Queue
	handler  http.Handler
	log      *slog.Logger
	now      func() time.Time
	jobs     JobOptions
	rejected *prometheus.CounterVec

	mu            sync.Mutex
	queueStarted  bool
	queueStopped  bool
	queueStopErrs error
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
	n := &Node{Store: st, Registry: reg, log: log, now: now, jobs: opts.Jobs.withDefaults()}
	n.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hutong_rejected_notifications_total",
		Help: "Wallet notifications that changed nothing (forged, stale, mismatched, unknown), by wallet and class.",
	}, []string{"provider", "kind"})
	reg.MustRegister(n.rejected)
	hooks, ok := st.(webhook.Store)
	if !ok {
		st.Close()
		return nil, fmt.Errorf("app: a %T store keeps no webhooks", st)
	}
	providers, notifyHandlers, err := n.connectors(ctx, cfg, now, reg)
	if len(opts.Providers) > 0 {
		providers = opts.Providers
	}
	if err != nil {
		st.Close()
		return nil, err
	}
	ids, wxLogin, err := identityService(cfg, st, now, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	n.Service = gateway.New(gateway.Config{
		Store: st, Providers: providers, PublicURL: cfg.PublicURL, PaymentTTL: cfg.PaymentTTL.Duration, Now: now, Logger: log,
		MinPaymentTTL: opts.MinPaymentTTL, Jobs: jobs.Planner{Schedule: opts.Jobs.Schedule}, Customers: ids,
	})
	dispatcher := webhook.NewDispatcher(webhook.DispatcherConfig{Store: hooks, Livemode: cfg.Livemode, Now: now, Logger: log.With("component", "webhooks")})
	if n.Queue, err = newQueue(st, n.Service, hooks, dispatcher, opts.Jobs, now, log.With("component", "jobs")); err != nil {
		st.Close()
		return nil, err
	}
	wh := webhook.NewHandlers(webhook.HandlersConfig{Store: hooks, Inserter: webhook.InserterFunc(n.Queue.InsertMany), Livemode: cfg.Livemode, Now: now})
	co := checkout.New(checkout.Config{Service: n.Service, Logger: log, Now: now, SandboxURL: opts.SandboxURL, WeChatOAuth: wxLogin != nil})
	n.handler = httpapi.New(httpapi.Config{
		Service: n.Service, Store: st, Logger: log, Metrics: reg, Now: now, IdempotencyStaleAfter: cfg.IdempotencyStaleAfter.Duration,
		Extra: func(mux *http.ServeMux) {
			for pattern, h := range notifyHandlers(n.Service, n.recorder) {
				mux.Handle(pattern, h)
			}
			co.Register(mux)
			if wxLogin != nil {
				identity.NewWebAuth(identity.WebAuthConfig{Gateway: n.Service, WeChat: wxLogin, Now: now, Logger: log}).Register(mux)
			}
		},
		ExtraAPI: func(mux *http.ServeMux, writeError func(http.ResponseWriter, *http.Request, error)) {
			wh.Register(mux, httpapi.Merchant, writeError)
			ids.RegisterAPI(mux, httpapi.Merchant, writeError)
		},
	})
	return n, nil
}

// recorderFor returns the Recorder of a wallet's rejected notifications.
type recorderFor func(provider payment.Provider) func(ctx context.Context, kind, reason string, fields map[string]string)

// notifyMounts builds the wallet notification handlers once the service exists.
type notifyMounts func(app *gateway.Service, rec recorderFor) map[string]http.Handler

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
	mounts := func(svc *gateway.Service, rec recorderFor) map[string]http.Handler {
		m := map[string]http.Handler{}
		if wx != nil {
			h := wx.NotificationHandler(svc, rec(payment.WeChatPay))
			m["POST /notify/wechatpay/payments"] = h
			m["POST /notify/wechatpay/refunds"] = h
		}
		if ali != nil {
			h := ali.NotificationHandler(svc, rec(payment.Alipay))
			m["POST /notify/alipay/payments"] = h
			m["POST /notify/alipay/refunds"] = h
		}
		return m
	}
	return providers, mounts, nil
}

// recorder returns the Recorder of provider's notifications that changed nothing (forged, stale,
// mismatched, unknown): each is counted, logged and kept in rejected_notifications for operators.
// Only identifiers are kept, never bodies or signatures.
func (n *Node) recorder(provider payment.Provider) func(ctx context.Context, kind, reason string, fields map[string]string) {
	return func(ctx context.Context, kind, reason string, fields map[string]string) {
		n.rejected.WithLabelValues(string(provider), kind).Inc()
		attrs := []any{"provider", provider, "kind", kind, "reason", reason}
		for k, v := range fields {
			attrs = append(attrs, k, v)
		}
		n.log.WarnContext(ctx, "wallet notification rejected", attrs...)
		log, ok := n.Store.(rejectionLog)
		if !ok {
			return
		}
		// The wallet's request may be gone by now; the record is kept regardless.
		rec := &gateway.RejectedNotification{Provider: provider, Kind: kind, Reason: reason, Fields: fields, At: n.now()}
		if err := log.RecordRejected(context.WithoutCancel(ctx), rec); err != nil {
			n.log.ErrorContext(ctx, "record rejected notification", "provider", provider, "kind", kind, "err", err)
		}
	}
}

// Handler is the node's whole HTTP surface.
func (n *Node) Handler() http.Handler { return n.handler }

// Run serves on ln and runs the background work until ctx is done. Then it stops serving (letting
// requests in flight finish), stops the jobs (letting running ones finish, up to
// JobOptions.StopTimeout) and returns; Close then closes the store.
func (n *Node) Run(ctx context.Context, ln net.Listener) error {
	if err := n.StartJobs(ctx); err != nil {
		return err
	}
	n.log.Info("gateway listening", "url", BaseURL(ln))
	err := Serve(ctx, ln, n.handler, n.log)
	return errors.Join(err, n.StopJobs())
}

// StartJobs starts working background jobs, unless JobOptions.Disabled; Run calls it. The jobs
// run until StopJobs or Close, whatever becomes of ctx.
func (n *Node) StartJobs(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.jobs.Disabled || n.queueStarted || n.queueStopped {
		return nil
	}
	if err := n.Queue.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start jobs: %w", err)
	}
	n.queueStarted = true
	n.log.Info("background jobs started", "river_client", n.Queue.ID())
	return nil
}

// StopJobs stops working jobs: running ones get JobOptions.StopTimeout to finish, then are
// cancelled (River runs them again later, here or on another node). It is safe to call twice.
func (n *Node) StopJobs() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.queueStarted || n.queueStopped {
		n.queueStopped = true
		return n.queueStopErrs
	}
	n.queueStopped = true
	ctx, cancel := context.WithTimeout(context.Background(), n.jobs.StopTimeout+10*time.Second)
	defer cancel()
	if err := n.Queue.Stop(ctx); err != nil {
		n.queueStopErrs = fmt.Errorf("stop jobs: %w", err)
	}
	return n.queueStopErrs
}

// Close stops the jobs if they run, then closes the store.
func (n *Node) Close() error { return errors.Join(n.StopJobs(), n.Store.Close()) }

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

// identityService builds the customer use cases with a login client for each configured wallet.
// WeChat login needs the app secret (wechatpay.app_secret_file), which also turns on web
// authorization in the checkout; WeChat's login hosts are the sandbox's when the WeChat Pay base
// URL points there (it serves them all), else the real api.weixin.qq.com / open.weixin.qq.com.
func identityService(cfg config.Config, st gateway.Store, now func() time.Time, log *slog.Logger) (*identity.Service, *identity.WeChat, error) {
	idStore, ok := st.(identity.Store)
	if !ok {
		return nil, nil, fmt.Errorf("app: a %T store keeps no customers", st)
	}
	var exchangers []identity.Exchanger
	var wxLogin *identity.WeChat
	if w := cfg.WeChatPay; w != nil && w.AppSecret != "" {
		var err error
		wxLogin, err = identity.NewWeChat(identity.WeChatConfig{AppID: w.AppID, AppSecret: w.AppSecret,
			APIBase: w.BaseURL, OpenBase: w.BaseURL, Timeout: w.Timeout.Duration})
		if err != nil {
			return nil, nil, err
		}
		exchangers = append(exchangers, wxLogin)
	}
	if a := cfg.Alipay; a != nil {
		aliLogin, err := identity.NewAlipay(identity.AlipayConfig{AppID: a.AppID, AppPrivateKey: a.AppPrivateKey,
			AlipayPublicKey: a.AlipayPublicKey, GatewayURL: a.GatewayURL, Timeout: a.Timeout.Duration})
		if err != nil {
			return nil, nil, err
		}
		exchangers = append(exchangers, aliLogin)
	}
	return identity.New(identity.Config{Store: idStore, Exchangers: exchangers, Now: now, Logger: log.With("component", "identity")}), wxLogin, nil
}
