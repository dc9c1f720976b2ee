// Package wechatpay is Hutong's WeChat Pay API v3 connector, built on the official SDK
// (github.com/wechatpay-apiv3/wechatpay-go): it places, queries, closes and refunds orders for the
// gateway, verifies and decrypts WeChat Pay's notifications, and watches the clock skew that
// WeChat Pay punishes at five minutes.
package wechatpay

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/downloader"
	"github.com/wechatpay-apiv3/wechatpay-go/core/notify"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/app"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/h5"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/jsapi"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/native"
	"github.com/wechatpay-apiv3/wechatpay-go/services/refunddomestic"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

// Connector speaks WeChat Pay API v3 for one merchant account. It implements gateway.Provider
// and is safe for concurrent use. Call Close when done (certificate modes run a refresh loop).
type Connector struct {
	cfg    *settings
	client *core.Client
	mgr    *downloader.CertificateDownloaderMgr // nil in public-key mode
	// verifier checks notifications: by the public key, the platform certificates, or both by serial.
	verifier auth.Verifier
	notify   *notify.Handler
	skew     *skewMeter
	log      *slog.Logger

	// On-demand certificate refreshes (certificate modes), at most one per refreshEvery.
	refreshMu   sync.Mutex
	lastRefresh time.Time
	closed      bool
	refreshes   sync.WaitGroup

	native  native.NativeApiService
	jsapi   jsapi.JsapiApiService
	h5      h5.H5ApiService
	app     app.AppApiService
	refunds refunddomestic.RefundsApiService
}

var _ gateway.Provider = (*Connector)(nil)

// New validates cfg and builds a Connector. In certificate and both modes it downloads the
// platform certificates before returning (bounded by cfg.Timeout and ctx), so a wrong APIv3 key
// or an unreachable host fails here rather than at the first payment.
func New(ctx context.Context, cfg Config) (*Connector, error) {
	s, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	skew, err := newSkewMeter(s.Now, s.Logger, s.Metrics)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Transport: newTransport(s.base, s.baseURL, skew), Timeout: s.Timeout}
	c := &Connector{cfg: s, skew: skew, log: s.Logger}

	var opts []core.ClientOption
	switch s.Mode {
	case ModePublicKey:
		opts = append(opts, option.WithWechatPayPublicKeyAuthCipher(s.MchID, s.MerchantSerialNo, s.privateKey, s.PublicKeyID, s.publicKey))
		c.verifier = verifiers.NewSHA256WithRSAPubkeyVerifier(s.PublicKeyID, *s.publicKey)
	case ModeCertificate, ModeBoth:
		if err := c.startDownloader(ctx, hc); err != nil {
			return nil, err
		}
		certs := c.mgr.GetCertificateVisitor(s.MchID)
		if s.Mode == ModeCertificate {
			opts = append(opts, option.WithWechatPayAutoAuthCipherUsingDownloaderMgr(s.MchID, s.MerchantSerialNo, s.privateKey, c.mgr))
			c.verifier = verifiers.NewSHA256WithRSAVerifier(certs)
			break
		}
		combined := verifiers.NewSHA256WithRSACombinedVerifier(certs, s.PublicKeyID, *s.publicKey)
		c.verifier = combined
		// Responses are verified by serial too, but the request's Wechatpay-Serial header (taken
		// from the verifier's GetSerial) tells WeChat Pay which key the account wants them signed with.
		respVerifier := auth.Verifier(combined)
		if s.responseSerial == ModeCertificate {
			respVerifier = acceptSerial{Verifier: combined, serial: func(ctx context.Context) (string, error) {
				if sn := certs.GetNewestSerial(ctx); sn != "" {
					return sn, nil
				}
				return "", fmt.Errorf("wechatpay: no platform certificate downloaded")
			}}
		}
		// The option order matters: the later validator replaces the public-key-only one.
		opts = append(opts,
			option.WithWechatPayPublicKeyAuthCipher(s.MchID, s.MerchantSerialNo, s.privateKey, s.PublicKeyID, s.publicKey),
			option.WithVerifier(respVerifier))
	}
	opts = append(opts, option.WithHTTPClient(hc))
	client, err := core.NewClient(ctx, opts...)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("wechatpay: create client: %w", err)
	}
	c.client = client
	c.native = native.NativeApiService{Client: client}
	c.jsapi = jsapi.JsapiApiService{Client: client}
	c.h5 = h5.H5ApiService{Client: client}
	c.app = app.AppApiService{Client: client}
	c.refunds = refunddomestic.RefundsApiService{Client: client}

	c.notify, err = notify.NewRSANotifyHandler(s.APIv3Key, c.verifier)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("wechatpay: notification handler: %w", err)
	}
	return c, nil
}

// startDownloader registers a platform-certificate downloader that uses our HTTP client (and so
// BaseURL): WithWechatPayAutoAuthCipher would build its own client on the production host.
func (c *Connector) startDownloader(ctx context.Context, hc *http.Client) error {
	s := c.cfg
	// The manager's refresh loop outlives New's context; Close stops it.
	c.mgr = downloader.NewCertificateDownloaderMgr(context.WithoutCancel(ctx))
	dl, err := core.NewClient(ctx,
		option.WithMerchantCredential(s.MchID, s.MerchantSerialNo, s.privateKey),
		// The first download is checked with the certificates it brings (the SDK swaps in a
		// certificate validator); their content is authenticated by the APIv3 key's AEAD.
		option.WithoutValidator(),
		option.WithHTTPClient(hc))
	if err != nil {
		c.Close()
		return fmt.Errorf("wechatpay: certificate downloader client: %w", err)
	}
	dctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	if err := c.mgr.RegisterDownloaderWithClient(dctx, dl, s.MchID, s.APIv3Key); err != nil {
		c.Close()
		return fmt.Errorf("wechatpay: download platform certificates: %w", sanitize(err))
	}
	return nil
}

// Close stops the certificate refresh loop, if any.
func (c *Connector) Close() {
	if c.mgr != nil {
		c.mgr.Stop()
		c.refreshMu.Lock()
		c.closed = true
		c.refreshMu.Unlock()
		c.refreshes.Wait()
	}
}

// refreshEvery bounds on-demand certificate downloads, which forged notifications can trigger.
const refreshEvery = 10 * time.Minute

// refreshCertificatesFor downloads the platform certificates again, in the background, when a
// message names a serial we do not have: WeChat Pay may start signing with a new certificate
// before the SDK's daily refresh. The message itself is still refused; WeChat Pay retries it.
func (c *Connector) refreshCertificatesFor(ctx context.Context, serial string) {
	if c.mgr == nil || serial == c.cfg.PublicKeyID {
		return
	}
	if _, ok := c.mgr.GetCertificate(ctx, c.cfg.MchID, serial); ok {
		return
	}
	now := time.Now()
	c.refreshMu.Lock()
	if c.closed || (!c.lastRefresh.IsZero() && now.Sub(c.lastRefresh) < refreshEvery) {
		c.refreshMu.Unlock()
		return
	}
	c.lastRefresh = now
	c.refreshes.Add(1)
	c.refreshMu.Unlock()
	c.log.Info("wechatpay: refreshing platform certificates for an unknown serial", "provider", "wechatpay", "serial", truncate(serial, 64))
	go func() {
		defer c.refreshes.Done()
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
		defer cancel()
		c.mgr.DownloadCertificates(ctx)
	}()
}

// Name reports the wallet this connector speaks to.
func (c *Connector) Name() payment.Provider { return payment.WeChatPay }

// acceptSerial overrides which serial the SDK announces in Wechatpay-Serial.
type acceptSerial struct {
	auth.Verifier
	serial func(context.Context) (string, error)
}

func (a acceptSerial) GetSerial(ctx context.Context) (string, error) { return a.serial(ctx) }

// transport redirects requests to BaseURL (when set) and measures the wallet's clock on the way back.
type transport struct {
	base http.RoundTripper
	to   *url.URL
	skew *skewMeter
}

func newTransport(base http.RoundTripper, to *url.URL, skew *skewMeter) *transport {
	if base != nil {
		return &transport{base: base, to: to, skew: skew}
	}
	return &transport{to: to, skew: skew, base: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   64, // the default 2 would make busy gateways reconnect (TLS) all the time
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
	}}
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.to != nil {
		r2 := r.Clone(r.Context())
		r2.URL.Scheme, r2.URL.Host, r2.Host = t.to.Scheme, t.to.Host, t.to.Host
		r = r2
	}
	resp, err := t.base.RoundTrip(r)
	if err == nil {
		// Over TLS to WeChat Pay (or a loopback sandbox) the header is the wallet's; reading it here
		// also catches skews so large that the SDK then rejects the response.
		t.skew.observeHeader(resp.Header.Get("Wechatpay-Timestamp"))
	}
	return resp, err
}
