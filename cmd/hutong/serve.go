package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/hutong-pay/hutong/internal/apikey"
	"github.com/hutong-pay/hutong/internal/app"
	"github.com/hutong-pay/hutong/internal/config"
	"github.com/hutong-pay/hutong/internal/payment"
)

const configHelp = `Configuration comes from --config (TOML) and then the environment (HUTONG_LISTEN, HUTONG_PUBLIC_URL,
HUTONG_DATA_DIR, HUTONG_DATABASE_URL, HUTONG_LOG_LEVEL, HUTONG_WECHATPAY_*, HUTONG_ALIPAY_*). Secrets (private keys,
the APIv3 key, database passwords) are read only from files named in the config or from the environment,
never from flags. See docs/configuration.md.`

// configured adds --config to fs, parses args and loads the configuration it names (or
// HUTONG_CONFIG), with the environment's overrides.
func configured(fs *flag.FlagSet, args []string, getenv func(string) string) (config.Config, error) {
	path := fs.String("config", "", "path to the TOML configuration file (or HUTONG_CONFIG)")
	if err := parse(fs, args); err != nil {
		return config.Config{}, err
	}
	if *path == "" {
		*path = getenv("HUTONG_CONFIG")
	}
	return config.Load(*path, getenv)
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := newFlags("serve", "Serve the gateway: merchant API (/v1), hosted checkout, wallet notifications.\n\n"+configHelp, stderr)
	cfg, err := configured(fs, args, getenv)
	if err != nil {
		return err
	}
	log := app.NewLogger(cfg.LogLevel)
	node, err := app.NewNode(ctx, app.NodeOptions{Config: cfg, Logger: log,
		Jobs: app.JobOptions{JobTimeout: cfg.JobTimeout.Duration, RescueAfter: cfg.JobsRescueAfter.Duration}})
	if err != nil {
		return err
	}
	defer node.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	return node.Run(ctx, ln)
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := newFlags("migrate", "Apply the pending database migrations (SQLite in the data folder, or PostgreSQL).\n\n"+configHelp, stderr)
	cfg, err := configured(fs, args, getenv)
	if err != nil {
		return err
	}
	st, err := app.OpenStore(ctx, cfg, true)
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Fprintln(stdout, "schema is up to date")
	return nil
}

func runAPIKey(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	const summary = `Manage merchant API keys. The secret is shown once, at creation; only its hash is stored.

Usage:
  hutong apikey create [--merchant ID | --name NAME] [--live] [--config FILE]
  hutong apikey list --merchant ID [--config FILE]
  hutong apikey revoke --key KEY_ID [--config FILE]`
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stderr, summary)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	sub, rest := args[0], args[1:]
	fs := newFlags("apikey "+sub, summary, stderr)
	merchant := fs.String("merchant", "", "merchant id (mer_…)")
	name := fs.String("name", "", "with create and no --merchant: create a new merchant with this name")
	live := fs.Bool("live", false, "with create: a live-mode key (sk_live_…)")
	keyID := fs.String("key", "", "with revoke: the key id (key_…)")
	cfg, err := configured(fs, rest, getenv)
	if err != nil {
		return err
	}
	st, err := app.OpenStore(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer st.Close()
	now := time.Now()
	switch sub {
	case "create":
		if *merchant == "" {
			if *name == "" {
				return fmt.Errorf("create needs --merchant ID or --name NAME")
			}
			m, err := app.SeedMerchant(ctx, st, payment.NewID("mer"), *name, now)
			if err != nil {
				return err
			}
			*merchant = m.ID
		} else if _, err := st.Merchant(ctx, *merchant); err != nil {
			return err
		}
		secret, key := apikey.Generate(*live)
		key.MerchantID, key.CreatedAt = *merchant, now.UTC().Truncate(time.Microsecond)
		if err := st.CreateAPIKey(ctx, key); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "merchant %s\nkey      %s\nsecret   %s\n\nThe secret is shown only now; store it safely.\n", *merchant, key.ID, secret)
	case "list":
		if *merchant == "" {
			return fmt.Errorf("list needs --merchant ID")
		}
		keys, err := st.ListAPIKeys(ctx, *merchant)
		if err != nil {
			return err
		}
		for _, k := range keys {
			state := "active"
			if k.RevokedAt != nil {
				state = "revoked " + k.RevokedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(stdout, "%s\t%s…\t%s\t%s\n", k.ID, k.Prefix, k.CreatedAt.Format(time.RFC3339), state)
		}
	case "revoke":
		if *keyID == "" {
			return fmt.Errorf("revoke needs --key KEY_ID")
		}
		if err := st.RevokeAPIKey(ctx, *keyID, now.UTC()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s\n", *keyID)
	default:
		fmt.Fprintf(stderr, "unknown apikey command %q\n\n%s\n", sub, summary)
		return errUsage
	}
	return nil
}
