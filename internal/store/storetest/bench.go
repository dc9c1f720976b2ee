package storetest

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

// Bench runs the store benchmarks, each on a fresh store from open. Each reports writes per
// second ("payments/s"); parallel ones use 16 goroutines per GOMAXPROCS, as an HTTP server
// under load would.
func Bench(b *testing.B, open func(b *testing.B) gateway.Store) {
	b.Run("CreatePayment", func(b *testing.B) { benchCreate(b, open(b), true) })
	b.Run("CreatePaymentSerial", func(b *testing.B) { benchCreate(b, open(b), false) })
	b.Run("UpdatePayment", func(b *testing.B) { benchUpdate(b, open(b)) })
	b.Run("APICreate", func(b *testing.B) { benchAPICreate(b, open(b)) })
}

func benchMerchant(b *testing.B, s gateway.Store) *payment.Merchant {
	m := &payment.Merchant{ID: payment.NewID("mch"), Name: "bench", CreatedAt: t0}
	if err := s.CreateMerchant(ctx, m); err != nil {
		b.Fatal(err)
	}
	return m
}

func report(b *testing.B, start time.Time) {
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "payments/s")
}

func benchCreate(b *testing.B, s gateway.Store, parallel bool) {
	m := benchMerchant(b, s)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if !parallel {
		for range b.N {
			if err := s.CreatePayment(ctx, fullPayment(m.ID), nil); err != nil {
				b.Fatal(err)
			}
		}
		report(b, start)
		return
	}
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.CreatePayment(ctx, fullPayment(m.ID), nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
	report(b, start)
}

// benchUpdate changes payments spread over 1,000 rows, as wallet notifications would.
func benchUpdate(b *testing.B, s gateway.Store) {
	m := benchMerchant(b, s)
	ids := make([]string, 1000)
	for i := range ids {
		p := pendingPayment(m.ID, 100, t0)
		if err := s.CreatePayment(ctx, p, nil); err != nil {
			b.Fatal(err)
		}
		ids[i] = p.ID
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := next.Add(1)
			_, err := s.UpdatePayment(ctx, ids[n%int64(len(ids))], func(p *payment.Payment) (gateway.Effects, error) {
				p.Metadata["n"] = strconv.FormatInt(n, 10)
				p.UpdatedAt = t0.Add(time.Duration(n) * time.Microsecond)
				return gateway.Effects{}, nil
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	report(b, start)
}

// benchAPICreate is what POST /v1/payments with an Idempotency-Key asks of the store: claim the
// key, store the payment, store the response.
func benchAPICreate(b *testing.B, s gateway.Store) {
	m := benchMerchant(b, s)
	body := []byte(`{"id":"pay_x","object":"payment","status":"pending","amount":12345}`)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := payment.RandomString(20)
			if _, created, err := s.BeginIdempotent(ctx, m.ID, key, "hash", t0, time.Minute); err != nil || !created {
				b.Errorf("begin: %v %v", created, err)
				return
			}
			if err := s.CreatePayment(ctx, fullPayment(m.ID), nil); err != nil {
				b.Error(err)
				return
			}
			if err := s.FinishIdempotent(ctx, m.ID, key, 201, body); err != nil {
				b.Error(err)
				return
			}
		}
	})
	report(b, start)
}
