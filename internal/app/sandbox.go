package app

import (
	"context"
	"log/slog"
	"net"

	"github.com/hutong-pay/hutong/internal/sandbox"
)

// SandboxOptions configure a standalone sandbox process.
type SandboxOptions struct {
	DataDir   string
	TimeScale float64
	Logger    *slog.Logger
}

// RunSandbox serves both wallet sandboxes on ln until ctx is done.
func RunSandbox(ctx context.Context, ln net.Listener, opts SandboxOptions) error {
	sb, err := sandbox.Open(ctx, sandbox.Config{DataDir: opts.DataDir, BaseURL: BaseURL(ln), TimeScale: opts.TimeScale, Logger: opts.Logger})
	if err != nil {
		return err
	}
	defer sb.Close()
	sb.Start(ctx)
	opts.Logger.Info("sandbox listening", "url", BaseURL(ln), "data", opts.DataDir)
	return Serve(ctx, ln, sb.Handler(), opts.Logger)
}
