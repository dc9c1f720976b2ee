package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/jobs"
	"github.com/hutong-pay/hutong/internal/payment"
)

// Benchmarks of truthful state on a whole node (HTTP, connectors, store, River), on SQLite (the
// file synced at every commit, FULL) and on PostgreSQL (its default durability):
//
//	eval "$(scripts/testpg.sh)"
//	go test ./internal/app -run '^$' -bench 'Notifications|WebhookDeliveries' -benchtime 2000x
//
// b.N is the number of notifications or deliveries measured; each reports its rate.

func BenchmarkNotificationsSQLite(b *testing.B) { benchNotifications(b, "") }

func BenchmarkNotificationsPostgres(b *testing.B) { benchNotifications(b, postgresURL(b)) }

func BenchmarkWebhookDeliveriesSQLite(b *testing.B) { benchWebhookDeliveries(b, "") }

func BenchmarkWebhookDeliveriesPostgres(b *testing.B) { benchWebhookDeliveries(b, postgresURL(b)) }

// captured is a notification as the wallet sent it.
type captured struct {
	path   string
	header http.Header
	body   []byte
}

// benchNotifications measures signed wallet notifications applied per second: each is verified,
// decrypted (WeChat Pay) and checked, then applied with its event and its webhook fan-out job in
// one transaction, and only then acknowledged. The notifications are real ones: the sandbox pays
// b.N orders and its notifications are captured on their way, then posted to the node's notify
// endpoints by 64 concurrent senders, half WeChat Pay, half Alipay.
func benchNotifications(b *testing.B, databaseURL string) {
	var mu sync.Mutex
	var got []captured
	seen := map[string]bool{}
	capture := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		// A wallet may send one notification more than once; keep one of each.
		var id string
		if r.URL.Path == "/notify/alipay/payments" {
			form, _ := url.ParseQuery(string(body))
			id = form.Get("notify_id")
		} else {
			var n struct{ ID string }
			_ = json.Unmarshal(body, &n)
			id = n.ID
		}
		mu.Lock()
		if !seen[id] {
			seen[id] = true
			got = append(got, captured{path: r.URL.Path, header: r.Header.Clone(), body: body})
		}
		mu.Unlock()
		if r.URL.Path == "/notify/alipay/payments" {
			_, _ = io.WriteString(w, "success")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer capture.Close()
	s := startNode(b, nodeSetup{databaseURL: databaseURL, publicURL: capture.URL, quiet: true, schedule: noEarlyPolls})
	ctx := context.Background()
	ids := make([]string, b.N)
	work := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				provider := []payment.Provider{payment.WeChatPay, payment.Alipay}[i%2]
				p, err := s.node.Service.CreatePayment(ctx, s.merchantID, gateway.CreatePaymentParams{Amount: 100, Description: "tea",
					Provider: provider, Channel: payment.ChannelQR})
				if err != nil {
					b.Error(err)
					return
				}
				ids[i] = p.ID
				if code := s.call(b, "POST", s.sandboxURL+walletPath(string(provider))+p.ProviderRef.OutTradeNo+"/pay", nil, nil); code/100 != 2 {
					b.Errorf("pay: %d", code)
					return
				}
			}
		}()
	}
	for i := range b.N {
		work <- i
	}
	close(work)
	wg.Wait()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= b.N {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("captured %d of %d notifications", n, b.N)
		}
		time.Sleep(20 * time.Millisecond)
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	next := atomic.Int64{}
	stopProfile := profileTimed(b)
	b.ResetTimer()
	start := time.Now()
	var senders sync.WaitGroup
	for range 64 {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				c := got[i]
				req, _ := http.NewRequest("POST", s.gatewayURL+c.path, bytes.NewReader(c.body))
				req.Header = c.header.Clone()
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 != 2 || (c.path == "/notify/alipay/payments" && string(body) != "success") {
					b.Errorf("%s: %d %s", c.path, resp.StatusCode, body)
					return
				}
			}
		}()
	}
	senders.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	stopProfile()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "notifications/s")
	pending := 0
	for _, id := range ids {
		p, err := s.node.Store.Payment(ctx, "", id)
		if err != nil || p.Status != payment.StatusSucceeded {
			pending++
			found := 0
			for _, c := range got {
				if bytes.Contains(c.body, []byte(p.ProviderRef.OutTradeNo)) {
					found++
				}
			}
			b.Errorf("payment %s %s %s after its notification: %v; %d captured", id, p.Provider, p.ProviderRef.OutTradeNo, p.Status, found)
		}
	}
	if pending > 0 {
		b.Fatalf("%d of %d payments pending; %d captured", pending, b.N, len(got))
	}
}

// noEarlyPolls keeps the polls (and so any other path to the wallet's truth) out of the way:
// what is measured is the notifications and the deliveries alone.
var noEarlyPolls = jobs.Schedule{FirstPoll: time.Hour, MinPoll: time.Hour}

// benchWebhookDeliveries measures webhook deliveries per second: b.N payments succeed while the
// node's jobs are stopped, then the jobs start and the time until a local receiver has
// acknowledged all b.N signed deliveries is measured. Each delivery is two River jobs (the
// event's fan-out, then the delivery), one HTTP POST and one recorded attempt.
func benchWebhookDeliveries(b *testing.B, databaseURL string) {
	var delivered atomic.Int64
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		delivered.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()
	s := startNode(b, nodeSetup{databaseURL: databaseURL, manualJobs: true, quiet: true,
		schedule: noEarlyPolls})
	var ep apiEndpoint
	if code := s.call(b, "POST", s.gatewayURL+"/v1/webhook_endpoints", map[string]any{"url": receiver.URL}, &ep); code != 200 {
		b.Fatalf("create endpoint: %d", code)
	}
	ctx := context.Background()
	work := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				p, err := s.node.Service.CreatePayment(ctx, s.merchantID, gateway.CreatePaymentParams{Amount: 100, Description: "tea",
					Provider: payment.WeChatPay, Channel: payment.ChannelQR})
				if err == nil {
					_, err = s.node.Service.ApplyWalletPayment(ctx, payment.WeChatPay, gateway.WalletPayment{
						OutTradeNo: p.ProviderRef.OutTradeNo, State: gateway.WalletPaid, Amount: p.Amount, PaidAt: time.Now()})
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	for i := range b.N {
		work <- i
	}
	close(work)
	wg.Wait()

	stopProfile := profileTimed(b)
	b.ResetTimer()
	start := time.Now()
	if err := s.node.StartJobs(ctx); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Minute)
	for delivered.Load() < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d deliveries", delivered.Load(), b.N)
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	stopProfile()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
	if n := delivered.Load(); n != int64(b.N) {
		b.Fatalf("%d deliveries of %d events", n, b.N)
	}
}

// profileTimed writes a CPU profile of the measured part alone (not the setup, where the sandbox
// signs every notification) to $HUTONG_BENCH_CPUPROFILE, when set.
func profileTimed(b *testing.B) (stop func()) {
	path := os.Getenv("HUTONG_BENCH_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
