package httpapi

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hutong-pay/hutong/internal/apikey"
	"github.com/hutong-pay/hutong/internal/fakewallet"
	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
	"github.com/hutong-pay/hutong/internal/store/sqlite"
)

// BenchmarkCreatePayment measures POST /v1/payments end to end: loopback HTTP, the whole
// middleware chain (request logging included, to a JSON handler that discards), API key
// lookup, two durable writes (intent, then the wallet's answer) on SQLite with
// synchronous=FULL, and an in-process wallet. Many clients at once, as a busy shop would send.
//
//	go test ./internal/httpapi -run '^$' -bench BenchmarkCreatePayment -benchtime 5s
func BenchmarkCreatePayment(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchCreate(b, false) })
	b.Run("idempotency_key", func(b *testing.B) { benchCreate(b, true) })
}

func benchCreate(b *testing.B, withKey bool) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{Migrate: true, Synchronous: "FULL"})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	svc := gateway.New(gateway.Config{Store: st, Providers: []gateway.Provider{fakewallet.New(fakewallet.Options{})},
		PublicURL: "https://pay.example.test", Logger: logger})
	m := &payment.Merchant{ID: payment.NewID("mch"), Name: "bench", CreatedAt: time.Now()}
	if err := st.CreateMerchant(ctx, m); err != nil {
		b.Fatal(err)
	}
	secret, key := apikey.Generate(false)
	key.MerchantID, key.CreatedAt = m.ID, time.Now()
	if err := st.CreateAPIKey(ctx, key); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(New(Config{Service: svc, Store: st, Logger: logger, Metrics: prometheus.NewRegistry()}))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024}}
	defer client.CloseIdleConnections()
	body := []byte(`{"amount":1234,"currency":"CNY","description":"Longjing tea","reference":"order-1","provider":"wechatpay","channel":"qr","metadata":{"table":"7"}}`)

	var (
		mu      sync.Mutex
		latency []time.Duration
		seq     atomic.Int64
	)
	b.SetParallelism(16) // 32 clients on 2 cores: enough concurrency for group commit to matter
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 4096)
		for pb.Next() {
			t0 := time.Now()
			req, err := http.NewRequest("POST", srv.URL+"/v1/payments", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			req.Header.Set("Authorization", "Bearer "+secret)
			req.Header.Set("Content-Type", "application/json")
			if withKey {
				req.Header.Set("Idempotency-Key", "bench-"+strconv.FormatInt(seq.Add(1), 10))
			}
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
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
	pct := func(p float64) float64 {
		return float64(latency[int(p*float64(len(latency)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(latency))/elapsed.Seconds(), "creations/s")
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
}
