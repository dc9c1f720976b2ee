// Package apptest runs whole Hutong processes inside tests.
package apptest

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/app"
)

// StartDemo runs `hutong demo` in-process on ephemeral loopback ports, with its data in a
// temporary folder and the wallets' retry schedules compressed a thousandfold, and stops it when
// the test ends. logger nil discards the logs.
func StartDemo(t testing.TB, logger *slog.Logger) app.DemoInfo {
	t.Helper()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan app.DemoInfo, 1), make(chan error, 1)
	go func() {
		done <- app.RunDemo(ctx, app.DemoOptions{
			Listen: gln, SandboxListen: sln, DataDir: t.TempDir(), TimeScale: 0.001,
			Logger: logger, Ready: func(i app.DemoInfo) { ready <- i },
		})
	}()
	var info app.DemoInfo
	select {
	case info = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("demo did not start: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("demo did not start within 60s")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo stopped with %v", err)
		}
	})
	return info
}
