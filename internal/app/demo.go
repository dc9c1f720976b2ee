package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/hutong-pay/hutong/examples/shop"
	"github.com/hutong-pay/hutong/internal/apikey"
	"github.com/hutong-pay/hutong/internal/config"
	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
	"github.com/hutong-pay/hutong/internal/sandbox"
)

// DemoOptions configure `hutong demo`.
type DemoOptions struct {
	Listen        net.Listener // the gateway, checkout and example shop
	SandboxListen net.Listener // both wallet sandboxes
	DataDir       string
	APIKey        string  // fixes the demo merchant's secret key; empty: made once and kept in DataDir
	TimeScale     float64 // compresses the sandboxes' notification retry schedules
	Logger        *slog.Logger
	Out           io.Writer // where the banner goes
	// Ready, when set, is called once everything serves (tests use it).
	Ready func(DemoInfo)
}

// DemoInfo is what the demo prints.
type DemoInfo struct {
	GatewayURL, SandboxURL, ShopURL, APIKey, MerchantID string
}

// DemoMerchantID is the seeded demo merchant.
const DemoMerchantID = "mer_demo"

// RunDemo runs the sandboxes and a gateway wired to them on embedded SQLite until ctx is done.
func RunDemo(ctx context.Context, opts DemoOptions) error {
	log := opts.Logger
	gatewayURL, sandboxURL := BaseURL(opts.Listen), BaseURL(opts.SandboxListen)
	sb, err := sandbox.Open(ctx, sandbox.Config{DataDir: filepath.Join(opts.DataDir, "sandbox"), BaseURL: sandboxURL, TimeScale: opts.TimeScale, Logger: log.With("component", "sandbox")})
	if err != nil {
		return err
	}
	defer sb.Close()
	creds := sb.Credentials()

	cfg := config.Default()
	cfg.Listen = opts.Listen.Addr().String()
	cfg.PublicURL = gatewayURL
	cfg.DataDir = filepath.Join(opts.DataDir, "gateway")
	cfg.WeChatPay = &config.WeChatPay{
		MchID: creds.WeChatPay.MchID, AppID: creds.WeChatPay.AppID, AppSecret: creds.WeChatPay.AppSecret,
		MerchantSerialNo: creds.WeChatPay.MerchantSerialNo, MerchantPrivateKey: creds.WeChatPay.MerchantPrivateKey,
		APIv3Key: creds.WeChatPay.APIv3Key, PublicKeyID: creds.WeChatPay.PublicKeyID, PublicKey: creds.WeChatPay.PublicKey,
		Mode: "public_key", BaseURL: sandboxURL,
	}
	cfg.Alipay = &config.Alipay{
		AppID: creds.Alipay.AppID, AppPrivateKey: creds.Alipay.AppPrivateKey, AlipayPublicKey: creds.Alipay.AlipayPublicKey,
		GatewayURL: sandboxURL + "/gateway.do",
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("demo configuration: %w", err)
	}
	node, err := NewNode(ctx, NodeOptions{Config: cfg, Logger: log.With("component", "gateway"), Migrate: true, SandboxURL: sandboxURL})
	if err != nil {
		return err
	}
	defer node.Close()
	secret, err := demoKey(ctx, node.Store, opts.DataDir, opts.APIKey)
	if err != nil {
		return err
	}
	info := DemoInfo{GatewayURL: gatewayURL, SandboxURL: sandboxURL, ShopURL: gatewayURL + "/shop/", APIKey: secret, MerchantID: DemoMerchantID}
	printBanner(opts.Out, info)
	// The example shop is a merchant's site beside the gateway: it shares the listener under /shop/
	// but talks to the gateway only over HTTP, with the demo key, as any merchant would.
	demoShop := shop.New(shop.Config{APIBaseURL: gatewayURL, APIKey: secret, PublicURL: gatewayURL, Logger: log.With("component", "shop")})
	node.handler = withShop(node.handler, demoShop)

	sb.Start(ctx)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return Serve(gctx, opts.SandboxListen, sb.Handler(), log) })
	g.Go(func() error { return node.Run(gctx, opts.Listen) })
	g.Go(func() error { demoShop.Start(gctx); return nil }) // registers its webhook endpoint once the gateway answers
	if opts.Ready != nil {
		opts.Ready(info)
	}
	return g.Wait()
}

// withShop serves the shop under /shop/ and everything else from the gateway.
func withShop(gateway, shop http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/shop/", shop)
	mux.Handle("/", gateway)
	return mux
}

// demoKey seeds the demo merchant and returns its secret key: the one given, else the one kept in
// the data folder from an earlier run, else a new one (written there, readable by the owner only).
func demoKey(ctx context.Context, st gateway.Store, dataDir, given string) (string, error) {
	now := time.Now()
	if _, err := SeedMerchant(ctx, st, DemoMerchantID, "Hutong Demo Shop", now); err != nil {
		return "", err
	}
	keyFile := filepath.Join(dataDir, "demo-api-key")
	secret := given
	if secret == "" {
		if b, err := os.ReadFile(keyFile); err == nil {
			secret = strings.TrimSpace(string(b))
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
	}
	if secret != "" && !apikey.WellFormed(secret) {
		return "", fmt.Errorf("--api-key must look like sk_test_ followed by %d letters or digits", 40)
	}
	if secret != "" {
		k, err := st.APIKeyByHash(ctx, apikey.Hash(secret))
		switch {
		case err == nil && k.MerchantID == DemoMerchantID && k.RevokedAt == nil:
			return secret, nil
		case err == nil:
			return "", errors.New("that API key belongs to another merchant or was revoked")
		case !payment.IsNotFound(err):
			return "", err
		}
	}
	var key *payment.APIKey
	if secret == "" {
		secret, key = apikey.Generate(false)
	} else {
		_, key = apikey.Generate(strings.HasPrefix(secret, apikey.LivePrefix))
		key.Prefix, key.Hash = secret[:apikey.PrefixLen], apikey.Hash(secret)
	}
	key.MerchantID, key.CreatedAt = DemoMerchantID, now.UTC().Truncate(time.Microsecond)
	if err := st.CreateAPIKey(ctx, key); err != nil {
		return "", err
	}
	if given == "" {
		if err := os.WriteFile(keyFile, []byte(secret+"\n"), 0o600); err != nil {
			return "", err
		}
	}
	return secret, nil
}

func printBanner(w io.Writer, i DemoInfo) {
	if w == nil {
		return
	}
	fmt.Fprintf(w, `
Hutong demo is running (embedded SQLite, offline wallet sandboxes).

  Example shop     %s
                   buy something, pay with WeChat Pay or Alipay on the sandbox payer pages
  Merchant API     %s/v1        (OpenAPI: %s/openapi.json)
  API key          %s
  Wallet sandbox   %s       (credentials: %s/sandbox/credentials)

Try:
  curl -s %s/v1/payments -H 'Authorization: Bearer %s' \
    -d '{"amount":1,"currency":"CNY","description":"Tea","reference":"order-1","provider":"alipay","channel":"qr"}'

Press Ctrl-C to stop.
`, i.ShopURL, i.GatewayURL, i.GatewayURL, i.APIKey, i.SandboxURL, i.SandboxURL, i.GatewayURL, i.APIKey)
}
