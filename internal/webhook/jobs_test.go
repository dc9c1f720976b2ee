package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/hutong-pay/hutong/internal/payment"
)

func deliverJob(id int64, attempt int, args DeliverArgs) *river.Job[DeliverArgs] {
	return &river.Job[DeliverArgs]{
		JobRow: &rivertype.JobRow{ID: id, Attempt: attempt, MaxAttempts: MaxAttempts, Kind: args.Kind()},
		Args:   args,
	}
}

// runJob works a delivery job as River would: Work, then NextRetry after an error that is not a
// cancellation, until the job completes, is cancelled, or runs out of attempts. It returns the
// retry times River would have used and the final error.
func runJob(t *testing.T, w *DeliverWorker, args DeliverArgs) ([]time.Time, error) {
	t.Helper()
	var retries []time.Time
	for attempt := 1; ; attempt++ {
		job := deliverJob(7, attempt, args)
		err := w.Work(context.Background(), job)
		var cancel *river.JobCancelError
		if err == nil || errors.As(err, &cancel) || attempt >= job.MaxAttempts {
			return retries, err
		}
		retries = append(retries, w.NextRetry(job))
	}
}

func TestDeliverWorkerRetriesThenSucceeds(t *testing.T) {
	rc := newReceiver(t, 500, 500, 200)
	f := newFixture(t, rc.srv.URL, DispatcherConfig{})
	w := NewDeliverWorker(f.d)
	retries, err := runJob(t, w, DeliverArgs{EventID: "evt_1", EndpointID: "we_1"})
	if err != nil {
		t.Fatalf("final: %v", err)
	}
	if len(retries) != 2 {
		t.Fatalf("%d retries, want 2", len(retries))
	}
	as := f.store.allAttempts()
	if len(as) != 3 {
		t.Fatalf("%d attempts recorded, want 3", len(as))
	}
	for i, want := range []int{500, 500, 200} {
		if as[i].StatusCode != want || as[i].Number != i+1 {
			t.Errorf("attempt %d: status %d number %d", i+1, as[i].StatusCode, as[i].Number)
		}
	}
	// River reschedules exactly when the Dispatcher said, which is what the attempt shows.
	for i, at := range retries {
		if !at.Equal(as[i].NextAttemptAt) {
			t.Errorf("retry %d: River at %s, attempt says %s", i+1, at, as[i].NextAttemptAt)
		}
	}
	if d := retries[1].Sub(f.clock.Now()); d < 270*time.Second || d > 330*time.Second {
		t.Errorf("second retry in %s, want about 5m", d)
	}
	if len(rc.requests()) != 3 {
		t.Errorf("receiver got %d requests", len(rc.requests()))
	}
	// Every delivery carries the same webhook-id, so receivers can deduplicate.
	for _, r := range rc.requests() {
		if r.header.Get(HeaderID) != "evt_1" {
			t.Errorf("webhook-id %q", r.header.Get(HeaderID))
		}
	}
}

func TestDeliverWorkerGivesUpAfterTheSchedule(t *testing.T) {
	rc := newReceiver(t, 503)
	f := newFixture(t, rc.srv.URL, DispatcherConfig{})
	retries, err := runJob(t, NewDeliverWorker(f.d), DeliverArgs{EventID: "evt_1", EndpointID: "we_1"})
	var cancel *river.JobCancelError
	if !errors.As(err, &cancel) {
		t.Fatalf("final: got %v, want a cancellation", err)
	}
	if len(retries) != len(RetrySchedule) || len(rc.requests()) != MaxAttempts {
		t.Fatalf("%d retries, %d requests; want %d and %d", len(retries), len(rc.requests()), len(RetrySchedule), MaxAttempts)
	}
}

func TestDeliverWorker410CancelsAndDisables(t *testing.T) {
	rc := newReceiver(t, 410)
	f := newFixture(t, rc.srv.URL, DispatcherConfig{})
	_, err := runJob(t, NewDeliverWorker(f.d), DeliverArgs{EventID: "evt_1", EndpointID: "we_1"})
	var cancel *river.JobCancelError
	if !errors.As(err, &cancel) {
		t.Fatalf("got %v, want a cancellation", err)
	}
	ep, _ := f.store.Endpoint(context.Background(), "", "we_1")
	if !ep.Disabled || len(rc.requests()) != 1 {
		t.Fatalf("disabled=%v after %d requests", ep.Disabled, len(rc.requests()))
	}
}

func TestDeliverWorkerStoreFailureUsesTheSchedule(t *testing.T) {
	rc := newReceiver(t, 200)
	f := newFixture(t, rc.srv.URL, DispatcherConfig{})
	f.store.failNext = errors.New("database is locked")
	w := NewDeliverWorker(f.d)
	job := deliverJob(9, 2, DeliverArgs{EventID: "evt_1", EndpointID: "we_1"})
	if err := w.Work(context.Background(), job); err == nil {
		t.Fatal("Work succeeded although the attempt was not recorded")
	}
	want, _ := Backoff(2, "evt_1/we_1")
	if got := w.NextRetry(job).Sub(f.clock.Now()); got != want {
		t.Fatalf("NextRetry in %s, want the schedule's %s", got, want)
	}
}

func TestDeliverWorkerTimeoutCoversTheRequest(t *testing.T) {
	w := NewDeliverWorker(NewDispatcher(DispatcherConfig{Store: newMemStore()}))
	if got := w.Timeout(deliverJob(1, 1, DeliverArgs{})); got <= Timeout {
		t.Fatalf("job timeout %s does not exceed the request timeout %s", got, Timeout)
	}
}

func TestJobArgs(t *testing.T) {
	d := DeliverArgs{EventID: "evt_1", EndpointID: "we_1"}
	if d.Kind() != "webhook_deliver" || (FanOutArgs{}).Kind() != "webhook_fanout" {
		t.Fatal("kinds changed: jobs already queued would be orphaned")
	}
	opts := d.InsertOpts()
	if opts.MaxAttempts != MaxAttempts || opts.Queue != Queue || !opts.UniqueOpts.ByArgs {
		t.Fatalf("deliver insert opts: %+v", opts)
	}
	b, _ := json.Marshal(d)
	if string(b) != `{"event_id":"evt_1","endpoint_id":"we_1"}` {
		t.Fatalf("encoded args: %s", b)
	}
}

// fakeInserter records what would be inserted.
type fakeInserter struct {
	mu   sync.Mutex
	jobs []river.InsertManyParams
	err  error
}

func (f *fakeInserter) InsertMany(_ context.Context, p []river.InsertManyParams) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.jobs = append(f.jobs, p...)
	return nil
}

func (f *fakeInserter) deliveries() []DeliverArgs {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []DeliverArgs
	for _, p := range f.jobs {
		out = append(out, p.Args.(DeliverArgs))
	}
	return out
}

func TestFanOut(t *testing.T) {
	s := newMemStore()
	ctx := context.Background()
	s.addEvent(&payment.Event{ID: "evt_1", MerchantID: "mch_A", Type: payment.EventPaymentSucceeded, Data: json.RawMessage(`{}`)})
	for _, e := range []*Endpoint{
		{ID: "we_all", MerchantID: "mch_A"},
		{ID: "we_pay", MerchantID: "mch_A", Events: []payment.EventType{payment.EventRefundFailed, payment.EventPaymentSucceeded}},
		{ID: "we_refunds", MerchantID: "mch_A", Events: []payment.EventType{payment.EventRefundSucceeded}},
		{ID: "we_disabled", MerchantID: "mch_A", Disabled: true},
		{ID: "we_live", MerchantID: "mch_A", Livemode: true}, // the event is a test-mode one
		{ID: "we_other", MerchantID: "mch_B"},
	} {
		e.URL, e.Secret = "https://example.com", NewSecret()
		_ = s.CreateEndpoint(ctx, e)
	}
	ins := &fakeInserter{}
	w := NewFanOutWorker(s, ins)
	job := &river.Job[FanOutArgs]{JobRow: &rivertype.JobRow{ID: 1, Attempt: 1}, Args: FanOutArgs{EventID: "evt_1"}}
	if err := w.Work(ctx, job); err != nil {
		t.Fatal(err)
	}
	want := []DeliverArgs{{EventID: "evt_1", EndpointID: "we_all"}, {EventID: "evt_1", EndpointID: "we_pay"}}
	if got := ins.deliveries(); !slices.Equal(got, want) {
		t.Fatalf("enqueued %v, want %v", got, want)
	}

	ins.err = errors.New("queue full")
	if err := w.Work(ctx, job); err == nil || errors.As(err, new(*river.JobCancelError)) {
		t.Fatalf("insert failure: got %v, want a retryable error", err)
	}

	job.Args.EventID = "evt_missing"
	if err := w.Work(ctx, job); !errors.As(err, new(*river.JobCancelError)) {
		t.Fatalf("missing event: got %v, want a cancellation", err)
	}
}

func TestFanOutToNobody(t *testing.T) {
	s := newMemStore()
	s.addEvent(&payment.Event{ID: "evt_1", MerchantID: "mch_A", Type: payment.EventRefundFailed, Data: json.RawMessage(`{}`)})
	ins := &fakeInserter{err: errors.New("must not be called")}
	job := &river.Job[FanOutArgs]{JobRow: &rivertype.JobRow{ID: 1, Attempt: 1}, Args: FanOutArgs{EventID: "evt_1"}}
	if err := NewFanOutWorker(s, ins).Work(context.Background(), job); err != nil {
		t.Fatalf("no endpoints: %v", err)
	}
}

// The whole path without River: fan-out enqueues, each delivery job is worked until done.
func TestFanOutThenDeliver(t *testing.T) {
	rc := newReceiver(t, http.StatusOK)
	f := newFixture(t, rc.srv.URL, DispatcherConfig{})
	ins := &fakeInserter{}
	job := &river.Job[FanOutArgs]{JobRow: &rivertype.JobRow{ID: 1, Attempt: 1}, Args: FanOutArgs{EventID: "evt_1"}}
	if err := NewFanOutWorker(f.store, ins).Work(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	w := NewDeliverWorker(f.d)
	for _, args := range ins.deliveries() {
		if _, err := runJob(t, w, args); err != nil {
			t.Fatal(err)
		}
	}
	if len(rc.requests()) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(rc.requests()))
	}
}

func TestWorkersRegisterWithRiver(t *testing.T) {
	d := NewDispatcher(DispatcherConfig{Store: newMemStore()})
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, NewDeliverWorker(d)); err != nil {
		t.Fatalf("deliver worker: %v", err)
	}
	if err := river.AddWorkerSafely(workers, NewFanOutWorker(newMemStore(), &fakeInserter{})); err != nil {
		t.Fatalf("fan-out worker: %v", err)
	}
}
