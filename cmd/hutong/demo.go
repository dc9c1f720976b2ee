package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"

	"github.com/hutong-pay/hutong/internal/app"
	"github.com/hutong-pay/hutong/internal/config"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := newFlags("demo", `Run the whole of Hutong on this machine: the gateway with its merchant API and hosted checkout,
offline sandboxes of WeChat Pay and Alipay wired to it, and an example shop, on embedded SQLite.
A seeded test merchant's API key is printed (fix it with --api-key).`, stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "gateway, checkout and example shop address")
	sandboxListen := fs.String("sandbox-listen", "127.0.0.1:8091", "wallet sandbox address")
	data := fs.String("data", filepath.Join(config.DefaultDataDir(), "demo"), "folder for all the demo's state")
	key := fs.String("api-key", "", "use this secret key (sk_test_…) for the demo merchant")
	scale := fs.Float64("time-scale", 0.01, "compress the wallets' notification retry schedules")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *scale <= 0 || *scale > 1 {
		return fmt.Errorf("--time-scale must be in (0, 1], got %v", *scale)
	}
	gln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	sln, err := net.Listen("tcp", *sandboxListen)
	if err != nil {
		gln.Close()
		return err
	}
	return app.RunDemo(ctx, app.DemoOptions{
		Listen: gln, SandboxListen: sln, DataDir: *data, APIKey: *key, TimeScale: *scale,
		Logger: app.NewLogger(*logLevel), Out: stdout,
	})
}
