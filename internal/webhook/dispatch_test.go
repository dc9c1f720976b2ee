package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/payment"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// received is one request a receiver got.
type received struct {
	header http.Header
	body   []byte
}

// receiver is an httptest merchant server answering with statuses in turn (the last one repeats).
type receiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	statuses []int
	headers  map[string]string // added to every answer
	got      []received
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	rc := &receiver{statuses: statuses}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, received{r.Header.Clone(), body})
		status := rc.statuses[0]
		if len(rc.statuses) > 1 {
			rc.statuses = rc.statuses[1:]
		}
		for k, v := range rc.headers {
			w.Header().Set(k, v)
		}
		rc.mu.Unlock()
		w.WriteHeader(status)
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

type fixture struct {
	store *memStore
	clock *clock
	d     *Dispatcher
	ev    *payment.Event
	ep    *Endpoint
}

// newFixture has merchant mch_A with a payment.succeeded event and one endpoint at url.
func newFixture(t *testing.T, url string, cfg DispatcherConfig) *fixture {
	t.Helper()
	f := &fixture{store: newMemStore(), clock: newClock()}
	p := &payment.Payment{ID: "pay_1", Object: "payment", MerchantID: "mch_A", Status: payment.StatusSucceeded,
		Amount: 1999, Currency: "CNY", Reference: "order-42", CreatedAt: f.clock.Now()}
	ev, err := payment.PaymentEvent("evt_1", p, f.clock.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	f.ev = &ev
	f.store.addEvent(f.ev)
	f.ep = &Endpoint{ID: "we_1", MerchantID: "mch_A", URL: url, Secret: NewSecret(), CreatedAt: f.clock.Now()}
	if err := f.store.CreateEndpoint(context.Background(), f.ep); err != nil {
		t.Fatal(err)
	}
	cfg.Store = f.store
	if cfg.Now == nil {
		cfg.Now = f.clock.Now
	}
	f.d = NewDispatcher(cfg)
	return f
}

func TestDeliverSignedPayload(t *testing.T) {
	rc := newReceiver(t, http.StatusNoContent)
	f := newFixture(t, rc.srv.URL+"/hooks?token=abc", DispatcherConfig{})
	out, err := f.d.Deliver(context.Background(), "evt_1", "we_1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if out.Result != Delivered {
		t.Fatalf("result: got %s, want delivered", out.Result)
	}
	reqs := rc.requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(reqs))
	}
	req := reqs[0]
	if err := Verify([][]byte{mustKey(t, f.ep.Secret)}, req.header, req.body, f.clock.Now()); err != nil {
		t.Errorf("Verify: %v", err)
	}
	ts := f.clock.Now().Unix()
	if got, want := req.header.Get("Webhook-Signature"), independentSig(f.ep.Secret, "evt_1", ts, req.body); got != want {
		t.Errorf("signature: got %q, want %q (recomputed)", got, want)
	}
	if got := req.header.Get("webhook-id"); got != "evt_1" {
		t.Errorf("webhook-id: got %q, want evt_1", got)
	}
	if got := req.header.Get("webhook-timestamp"); got != fmt.Sprint(ts) {
		t.Errorf("webhook-timestamp: got %q, want %d", got, ts)
	}
	if got := req.header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type: got %q", got)
	}
	var body struct {
		ID        string          `json:"id"`
		Type      string          `json:"type"`
		Timestamp time.Time       `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader(req.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("body %s: %v", req.body, err)
	}
	if body.ID != "evt_1" || body.Type != "payment.succeeded" || !body.Timestamp.Equal(f.ev.CreatedAt) {
		t.Errorf("body: got id=%q type=%q timestamp=%s", body.ID, body.Type, body.Timestamp)
	}
	var data payment.Payment
	if err := json.Unmarshal(body.Data, &data); err != nil || data.ID != "pay_1" || data.Amount != 1999 || data.Status != payment.StatusSucceeded {
		t.Errorf("data: got %+v, %v", data, err)
	}

	as := f.store.allAttempts()
	if len(as) != 1 {
		t.Fatalf("recorded %d attempts, want 1", len(as))
	}
	a := as[0]
	if a.EventID != "evt_1" || a.EndpointID != "we_1" || a.MerchantID != "mch_A" || a.Number != 1 ||
		a.StatusCode != 204 || a.Error != "" || !a.NextAttemptAt.IsZero() || !a.At.Equal(f.clock.Now()) || !strings.HasPrefix(a.ID, "wha_") {
		t.Errorf("attempt: got %+v", a)
	}
}

func TestDeliverFailureSchedulesRetry(t *testing.T) {
	rc := newReceiver(t, http.StatusInternalServerError)
	f := newFixture(t, rc.srv.URL, DispatcherConfig{})
	for n := 1; n <= len(RetrySchedule); n++ {
		out, err := f.d.Deliver(context.Background(), "evt_1", "we_1", n)
		if err != nil {
			t.Fatal(err)
		}
		base := RetrySchedule[n-1]
		delay := out.RetryAt.Sub(f.clock.Now())
		if out.Result != Retry || delay < base-base/10 || delay > base+base/10 {
			t.Fatalf("attempt %d: got %s in %s, want retry in %s ±10%%", n, out.Result, delay, base)
		}
		if !out.Attempt.NextAttemptAt.Equal(out.RetryAt) || out.Attempt.StatusCode != 500 ||
			out.Attempt.Error != "receiver answered 500 Internal Server Error" {
			t.Fatalf("attempt %d: recorded %+v", n, out.Attempt)
		}
	}
	out, err := f.d.Deliver(context.Background(), "evt_1", "we_1", MaxAttempts)
	if err != nil {
		t.Fatal(err)
	}
	if out.Result != Exhausted || !out.RetryAt.IsZero() || !out.Attempt.NextAttemptAt.IsZero() {
		t.Fatalf("last attempt: got %s at %s, want exhausted", out.Result, out.RetryAt)
	}
	if n := len(f.store.allAttempts()); n != MaxAttempts {
		t.Fatalf("recorded %d attempts, want %d", n, MaxAttempts)
	}
}

func TestDeliverGoneDisablesEndpoint(t *testing.T) {
	rc := newReceiver(t, http.StatusGone)
	f := newFixture(t, rc.srv.URL, DispatcherConfig{})
	out, err := f.d.Deliver(context.Background(), "evt_1", "we_1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if out.Result != Gone || out.Attempt.StatusCode != 410 {
		t.Fatalf("got %s (%d), want gone", out.Result, out.Attempt.StatusCode)
	}
	ep, _ := f.store.Endpoint(context.Background(), "mch_A", "we_1")
	if !ep.Disabled || !strings.Contains(ep.DisabledReason, "410") {
		t.Fatalf("endpoint: disabled=%v reason=%q", ep.Disabled, ep.DisabledReason)
	}
	out, err = f.d.Deliver(context.Background(), "evt_1", "we_1", 2)
	if err != nil || out.Result != Skipped {
		t.Fatalf("after 410: got %s, %v; want skipped", out.Result, err)
	}
	if n := len(rc.requests()); n != 1 {
		t.Fatalf("receiver got %d requests, want 1 (none after the 410)", n)
	}
}

func TestDeliverTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	f := newFixture(t, srv.URL, DispatcherConfig{Timeout: 200 * time.Millisecond})
	start := time.Now()
	out, err := f.d.Deliver(context.Background(), "evt_1", "we_1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("took %s despite the 200ms timeout", elapsed)
	}
	a := out.Attempt
	if out.Result != Retry || a.StatusCode != 0 || a.Error != "no response within 200ms" || a.Duration < 200*time.Millisecond {
		t.Fatalf("got %s, attempt %+v", out.Result, a)
	}
}

func TestDefaultTimeoutIs15s(t *testing.T) {
	d := NewDispatcher(DispatcherConfig{Store: newMemStore()})
	if d.timeout != 15*time.Second || d.live.Timeout != 15*time.Second || d.test.Timeout != 15*time.Second {
		t.Fatalf("timeouts: %s %s %s", d.timeout, d.live.Timeout, d.test.Timeout)
	}
}

func TestLiveModeRefusesPrivateAddresses(t *testing.T) {
	rc := newReceiver(t, http.StatusOK)
	_, port, _ := net.SplitHostPort(rc.srv.Listener.Addr().String())
	cases := []struct {
		name     string
		url      string
		node     bool // the node is live
		endpoint bool // the endpoint was created with a live key
		want     Result
	}{
		{"test mode delivers to loopback", rc.srv.URL, false, false, Delivered},
		{"live endpoint refused", rc.srv.URL, false, true, Retry},
		{"live node refuses a test endpoint", rc.srv.URL, true, false, Retry},
		// A name is checked on the address it resolves to, at dial time: what DNS rebinding exploits.
		{"live endpoint by host name", "http://localhost:" + port, false, true, Retry},
		{"test endpoint by host name", "http://localhost:" + port, false, false, Delivered},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(rc.requests())
			f := newFixture(t, tc.url, DispatcherConfig{Livemode: tc.node})
			f.ep.Livemode = tc.endpoint
			out, err := f.d.Send(context.Background(), f.ep, f.ev, 1)
			if err != nil {
				t.Fatal(err)
			}
			if out.Result != tc.want {
				t.Fatalf("got %s (%s), want %s", out.Result, out.Attempt.Error, tc.want)
			}
			sent := len(rc.requests()) - before
			if tc.want == Retry {
				if sent != 0 {
					t.Fatalf("receiver got %d requests, want none", sent)
				}
				if !strings.HasPrefix(out.Attempt.Error, "refused: ") || !strings.Contains(out.Attempt.Error, "not public") {
					t.Fatalf("error: %q", out.Attempt.Error)
				}
			} else if sent != 1 {
				t.Fatalf("receiver got %d requests, want 1", sent)
			}
		})
	}
}

func TestRotationSignsWithBothSecretsUntilExpiry(t *testing.T) {
	rc := newReceiver(t, http.StatusOK)
	f := newFixture(t, rc.srv.URL, DispatcherConfig{})
	oldSecret := f.ep.Secret
	ep, err := f.store.RotateSecret(context.Background(), "mch_A", "we_1", NewSecret(), f.clock.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	newSecret := ep.Secret

	if _, err := f.d.Deliver(context.Background(), "evt_1", "we_1", 1); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(24*time.Hour + time.Second)
	if _, err := f.d.Deliver(context.Background(), "evt_1", "we_1", 1); err != nil {
		t.Fatal(err)
	}
	reqs := rc.requests()
	if len(reqs) != 2 {
		t.Fatalf("receiver got %d requests", len(reqs))
	}
	during, after := reqs[0], reqs[1]
	duringAt, afterAt := f.clock.Now().Add(-24*time.Hour-time.Second), f.clock.Now()

	if n := len(strings.Fields(during.header.Get(HeaderSignature))); n != 2 {
		t.Errorf("during the overlap: %d signatures, want 2", n)
	}
	for name, s := range map[string]string{"old": oldSecret, "new": newSecret} {
		if err := Verify([][]byte{mustKey(t, s)}, during.header, during.body, duringAt); err != nil {
			t.Errorf("during the overlap, the %s secret alone: %v", name, err)
		}
	}
	if got, want := after.header.Get(HeaderSignature), independentSig(newSecret, "evt_1", afterAt.Unix(), after.body); got != want {
		t.Errorf("after expiry: signature %q, want only the new secret's %q", got, want)
	}
	if err := Verify([][]byte{mustKey(t, oldSecret)}, after.header, after.body, afterAt); !errors.Is(err, ErrNoValidSignature) {
		t.Errorf("after expiry, the old secret: got %v, want ErrNoValidSignature", err)
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	target := newReceiver(t, http.StatusOK)
	srv := httptest.NewServer(http.RedirectHandler(target.srv.URL, http.StatusFound))
	defer srv.Close()
	f := newFixture(t, srv.URL, DispatcherConfig{})
	out, err := f.d.Deliver(context.Background(), "evt_1", "we_1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if out.Result != Retry || out.Attempt.StatusCode != 302 || !strings.Contains(out.Attempt.Error, "redirects are not followed") {
		t.Fatalf("got %s, attempt %+v", out.Result, out.Attempt)
	}
	if n := len(target.requests()); n != 0 {
		t.Fatalf("the redirect target got %d requests", n)
	}
}

func TestRetryAfterDelaysTheRetry(t *testing.T) {
	rc := newReceiver(t, http.StatusServiceUnavailable)
	rc.headers = map[string]string{"Retry-After": "3600"}
	f := newFixture(t, rc.srv.URL, DispatcherConfig{})
	out, err := f.d.Deliver(context.Background(), "evt_1", "we_1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := f.clock.Now().Add(time.Hour); out.Result != Retry || !out.RetryAt.Equal(want) {
		t.Fatalf("got %s at %s, want retry at %s", out.Result, out.RetryAt, want)
	}
	// A Retry-After shorter than the schedule does not bring the retry forward.
	rc.headers = map[string]string{"Retry-After": "1"}
	out, err = f.d.Deliver(context.Background(), "evt_1", "we_1", 2)
	if err != nil {
		t.Fatal(err)
	}
	if d := out.RetryAt.Sub(f.clock.Now()); d < 4*time.Minute {
		t.Fatalf("retry in %s, want the schedule's ~5m", d)
	}
}

func TestDeliverSkips(t *testing.T) {
	rc := newReceiver(t, http.StatusOK)
	ctx := context.Background()
	cases := []struct {
		name  string
		setup func(f *fixture) (eventID, endpointID string)
	}{
		{"deleted endpoint", func(f *fixture) (string, string) {
			_ = f.store.DeleteEndpoint(ctx, "mch_A", "we_1")
			return "evt_1", "we_1"
		}},
		{"disabled endpoint", func(f *fixture) (string, string) {
			_ = f.store.DisableEndpoint(ctx, "we_1", "test", f.clock.Now())
			return "evt_1", "we_1"
		}},
		{"another merchant's event", func(f *fixture) (string, string) {
			f.store.addEvent(&payment.Event{ID: "evt_B", MerchantID: "mch_B", Type: payment.EventPaymentSucceeded, Data: json.RawMessage(`{}`)})
			return "evt_B", "we_1"
		}},
		{"live event to a test endpoint", func(f *fixture) (string, string) {
			f.store.addEvent(&payment.Event{ID: "evt_live", MerchantID: "mch_A", Livemode: true, Type: payment.EventPaymentSucceeded, Data: json.RawMessage(`{}`)})
			return "evt_live", "we_1"
		}},
		{"test event to a live endpoint", func(f *fixture) (string, string) {
			_ = f.store.CreateEndpoint(ctx, &Endpoint{ID: "we_live", MerchantID: "mch_A", Livemode: true, URL: rc.srv.URL, Secret: NewSecret()})
			return "evt_1", "we_live"
		}},
		{"not subscribed", func(f *fixture) (string, string) {
			_ = f.store.CreateEndpoint(ctx, &Endpoint{ID: "we_2", MerchantID: "mch_A", URL: rc.srv.URL, Secret: NewSecret(),
				Events: []payment.EventType{payment.EventRefundFailed}})
			return "evt_1", "we_2"
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, rc.srv.URL, DispatcherConfig{})
			ev, ep := tc.setup(f)
			out, err := f.d.Deliver(ctx, ev, ep, 1)
			if err != nil || out.Result != Skipped || out.Attempt != nil {
				t.Fatalf("got %+v, %v; want skipped", out, err)
			}
		})
	}
	if n := len(rc.requests()); n != 0 {
		t.Fatalf("receiver got %d requests", n)
	}
}

func TestDeliverErrors(t *testing.T) {
	rc := newReceiver(t, http.StatusOK)
	f := newFixture(t, rc.srv.URL, DispatcherConfig{})
	f.store.failNext = errors.New("disk full")
	if _, err := f.d.Deliver(context.Background(), "evt_1", "we_1", 1); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("record failure: got %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := f.d.Deliver(ctx, "evt_1", "we_1", 1)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: got %v, want context.Canceled", err)
	}
	if n := len(f.store.allAttempts()); n != 0 {
		t.Fatalf("recorded %d attempts, want none", n)
	}
}

func TestAttemptErrorLeavesOutTheURL(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: connection refused
	f := newFixture(t, "http://"+addr+"/hooks?token=S3CR3T-TOKEN", DispatcherConfig{})
	out, err := f.d.Deliver(context.Background(), "evt_1", "we_1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if out.Result != Retry || out.Attempt.Error == "" || strings.Contains(out.Attempt.Error, "S3CR3T") || strings.Contains(out.Attempt.Error, "/hooks") {
		t.Fatalf("got %s, error %q", out.Result, out.Attempt.Error)
	}
}

func TestBackoff(t *testing.T) {
	var total time.Duration
	for n, base := range RetrySchedule {
		d, ok := Backoff(n+1, "evt_1/we_1")
		if !ok || d < base-base/10 || d > base+base/10 {
			t.Errorf("Backoff(%d): got %s, %v; want %s ±10%%", n+1, d, ok, base)
		}
		if again, _ := Backoff(n+1, "evt_1/we_1"); again != d {
			t.Errorf("Backoff(%d) is not deterministic: %s then %s", n+1, d, again)
		}
		total += base
	}
	if total != 75*time.Hour+35*time.Minute+5*time.Second {
		t.Errorf("schedule spans %s, want the spec's 75h35m5s", total)
	}
	if len(RetrySchedule)+1 != MaxAttempts {
		t.Errorf("MaxAttempts %d does not fit %d retries", MaxAttempts, len(RetrySchedule))
	}
	for _, n := range []int{0, -1, MaxAttempts, MaxAttempts + 1} {
		if _, ok := Backoff(n, "k"); ok {
			t.Errorf("Backoff(%d) returned a delay", n)
		}
	}
	// Jitter spreads deliveries: 50 keys do not all land on one delay.
	seen := map[time.Duration]bool{}
	for i := range 50 {
		d, _ := Backoff(3, fmt.Sprintf("evt_%d/we_1", i))
		seen[d] = true
	}
	if len(seen) < 40 {
		t.Errorf("50 keys gave only %d distinct delays", len(seen))
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"120":                           2 * time.Minute,
		"0":                             0,
		"-5":                            0,
		"1.5":                           0,
		"junk":                          0,
		"999999999":                     24 * time.Hour,
		"Tue, 04 Mar 2025 06:06:07 GMT": time.Hour,
		"Tue, 04 Mar 2025 04:06:07 GMT": 0,
	} {
		if got := ParseRetryAfter(v, now); got != want {
			t.Errorf("ParseRetryAfter(%q): got %s, want %s", v, got, want)
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "120", "Tue, 04 Mar 2025 06:06:07 GMT", "Monday, 02-Jan-06 15:04:05 MST", "18446744073709551615"} {
		f.Add(s)
	}
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		if d := ParseRetryAfter(v, now); d < 0 || d > 24*time.Hour {
			t.Fatalf("ParseRetryAfter(%q) = %s", v, d)
		}
	})
}

// discardStore records nothing, so that the benchmark measures delivery, not the fake.
type discardStore struct{ *memStore }

func (discardStore) RecordAttempt(context.Context, *Attempt) error { return nil }

func BenchmarkDispatcherSend(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	ev, _ := payment.PaymentEvent("evt_1", &payment.Payment{ID: "pay_1", Object: "payment", MerchantID: "mch_A",
		Status: payment.StatusSucceeded, Amount: 1999, Currency: "CNY"}, time.Now())
	ep := &Endpoint{ID: "we_1", MerchantID: "mch_A", URL: srv.URL, Secret: NewSecret()}
	d := NewDispatcher(DispatcherConfig{Store: discardStore{newMemStore()}})
	run := func(b *testing.B, parallel bool) {
		b.ReportAllocs()
		send := func() {
			out, err := d.Send(context.Background(), ep, &ev, 1)
			if err != nil || out.Result != Delivered {
				b.Fatalf("got %+v, %v", out, err)
			}
		}
		if parallel {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					send()
				}
			})
		} else {
			for b.Loop() {
				send()
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
	}
	b.Run("sequential", func(b *testing.B) { run(b, false) })
	b.Run("parallel", func(b *testing.B) { run(b, true) })
}
