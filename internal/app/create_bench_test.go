package app_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/apikey"
	"github.com/hutong-pay/hutong/internal/app"
	"github.com/hutong-pay/hutong/internal/app/apptest"
	"github.com/hutong-pay/hutong/internal/config"
	"github.com/hutong-pay/hutong/internal/fakewallet"
	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

// BenchmarkCreatePayment measures POST /v1/payments through a whole node: loopback HTTP, the
// middleware (request logs included, discarded), API key lookup, the Idempotency-Key claim and
// stored response, the payment's intent and the wallet's answer written durably, with its poll
// and expiry jobs inserted into River in the same transactions, and an in-process wallet so that
// the gateway alone is measured. 32 clients at once.
//
//	eval "$(scripts/testpg.sh)"
//	go test ./internal/app -run '^$' -bench CreatePayment -benchtime 10000x
func BenchmarkCreatePaymentSQLite(b *testing.B) { benchCreatePayment(b, "") }

func BenchmarkCreatePaymentPostgres(b *testing.B) { benchCreatePayment(b, postgresURL(b)) }

func benchCreatePayment(b *testing.B, databaseURL string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := config.Default()
	cfg.DataDir = filepath.Join(b.TempDir(), "gateway")
	cfg.DatabaseURL = databaseURL
	cfg.PublicURL = "http://127.0.0.1"
	node, err := app.NewNode(ctx, app.NodeOptions{Config: cfg, Migrate: true, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Providers: []gateway.Provider{fakewallet.New(fakewallet.Options{})}})
	if err != nil {
		b.Fatal(err)
	}
	m, err := app.SeedMerchant(ctx, node.Store, payment.NewID("mer"), "bench", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	secret, key := apikey.Generate(false)
	key.MerchantID, key.CreatedAt = m.ID, time.Now().UTC().Truncate(time.Microsecond)
	if err := node.Store.CreateAPIKey(ctx, key); err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- node.Run(ctx, ln) }()
	defer func() {
		cancel()
		<-done
		node.Close()
	}()
	url := app.BaseURL(ln) + "/v1/payments"
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}
	defer client.CloseIdleConnections()
	body := []byte(`{"amount":1234,"currency":"CNY","description":"Longjing tea","reference":"order-1","provider":"wechatpay","channel":"qr"}`)

	var (
		mu      sync.Mutex
		latency []time.Duration
		seq     atomic.Int64
	)
	b.SetParallelism(16)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var local []time.Duration
		for pb.Next() {
			t0 := time.Now()
			req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+secret)
			req.Header.Set("Idempotency-Key", "bench-"+strconv.FormatInt(seq.Add(1), 10))
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
			local = append(local, time.Since(t0))
		}
		mu.Lock()
		latency = append(latency, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if len(latency) == 0 {
		return
	}
	slices.Sort(latency)
	pct := func(p float64) float64 { return float64(latency[int(p*float64(len(latency)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(len(latency))/elapsed.Seconds(), "creations/s")
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
}

// BenchmarkCreatePaymentThroughWallet measures POST /v1/payments through a whole demo: the node on
// SQLite with its River jobs, and the real connector calling the wallet sandbox over loopback with
// its RSA signatures (the sandbox's own signing shares the same 2 cores).
//
//	go test ./internal/app -run '^$' -bench CreatePaymentThroughWallet -benchtime 2000x
func BenchmarkCreatePaymentThroughWallet(b *testing.B) {
	for _, provider := range []string{"wechatpay", "alipay"} {
		b.Run(provider, func(b *testing.B) { benchThroughWallet(b, provider) })
	}
}

func benchThroughWallet(b *testing.B, provider string) {
	info := apptest.StartDemo(b, nil)
	body := []byte(`{"amount":1234,"description":"Longjing tea","reference":"order-1","provider":"` + provider + `","channel":"qr"}`)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	b.SetParallelism(4)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("POST", info.GatewayURL+"/v1/payments", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+info.APIKey)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "creations/s")
}
