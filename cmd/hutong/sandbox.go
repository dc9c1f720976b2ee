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

func runSandbox(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := newFlags("sandbox", `Serve offline, wire-faithful sandboxes of WeChat Pay API v3 (/v3, /sns) and Alipay OpenAPI
(/gateway.do) on one listener, with a payer side (/sandbox/...) and fault injection (PUT /sandbox/faults).
The sandbox merchants' credentials are served at GET /sandbox/credentials and written to <data>/credentials.json.`, stderr)
	listen := fs.String("listen", "127.0.0.1:8091", "address to listen on")
	data := fs.String("data", filepath.Join(config.DefaultDataDir(), "sandbox"), "folder for the sandbox's state")
	scale := fs.Float64("time-scale", 1, "compress the wallets' notification retry schedules (0.001 turns 15s into 15ms)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *scale <= 0 || *scale > 1 {
		return fmt.Errorf("--time-scale must be in (0, 1], got %v", *scale)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	return app.RunSandbox(ctx, ln, app.SandboxOptions{DataDir: *data, TimeScale: *scale, Logger: app.NewLogger(*logLevel)})
}
