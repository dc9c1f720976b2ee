package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
	"github.com/hutong-pay/hutong/internal/webhook"
)

// Full is a store with everything a gateway node keeps in its database: the gateway's tables,
// the webhook endpoints and attempts, the log of rejected notifications, and the job queue.
type Full interface {
	gateway.Store
	webhook.Store
	RecordRejected(ctx context.Context, n *gateway.RejectedNotification) error
	ListRejected(ctx context.Context, limit int) ([]*gateway.RejectedNotification, error)
	PurgeRejected(ctx context.Context, before time.Time) (int64, error)
}

// QueuedJob is a job found in a store's queue.
type QueuedJob struct {
	Kind        string
	Args        []byte
	ScheduledAt time.Time
}

// Harness is what RunTruthful needs of a store package.
type Harness struct {
	// Open returns a fresh, migrated, empty store, closed by the test's cleanup.
	Open func(t *testing.T) Full
	// Jobs returns every job in s's queue, in any order.
	Jobs func(t *testing.T, s Full) []QueuedJob
}

// RunTruthful runs the suite of what truthful payment state asks of a store: modes kept and
// filtered, jobs enqueued atomically with their change, webhook endpoints and attempts, and
// rejected notifications.
func RunTruthful(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness, s Full)
	}{
		{"ModesKeptAndFiltered", testModes},
		{"CreateRefundReadsRefundAfterCallback", testRefundAmountFromCallback},
		{"PagesBeyondTheAPILimit", testPagesBeyondAPILimit},
		{"JobsAtomicWithChange", testJobsAtomic},
		{"UniqueJobsOnce", testUniqueJobs},
		{"WebhookEndpoints", testWebhookEndpoints},
		{"WebhookSecretRotation", testWebhookRotation},
		{"WebhookDisable", testWebhookDisable},
		{"WebhookEventsAndAttempts", testWebhookAttempts},
		{"RejectedNotifications", testRejected},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h, h.Open(t)) })
	}
}

// testJob is a job kind of the suite's own; stores insert any job args without knowing them.
type testJob struct {
	Name string `json:"name"`
}

func (testJob) Kind() string { return "storetest_job" }

// uniqueJob is a job River keeps once per argument set.
type uniqueJob struct {
	Name string `json:"name"`
}

func (uniqueJob) Kind() string { return "storetest_unique" }

func (uniqueJob) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

func job(name string) gateway.Job { return gateway.Job{Args: testJob{Name: name}} }

// jobNames returns the names of h's storetest jobs in s, sorted.
func jobNames(t *testing.T, h Harness, s Full) []string {
	t.Helper()
	var names []string
	for _, j := range h.Jobs(t, s) {
		if j.Kind != (testJob{}).Kind() && j.Kind != (uniqueJob{}).Kind() {
			continue
		}
		var a testJob
		if err := json.Unmarshal(j.Args, &a); err != nil {
			t.Fatalf("job args %s: %v", j.Args, err)
		}
		names = append(names, a.Name)
	}
	sort.Strings(names)
	return names
}

func testModes(t *testing.T, _ Harness, s Full) {
	m := newMerchant(t, s)
	test := createPayment(t, s, pendingPayment(m.ID, 100, t0))
	liveP := pendingPayment(m.ID, 200, t0.Add(time.Second))
	liveP.Livemode = true
	live := createPayment(t, s, liveP)

	for _, mode := range []bool{false, true} {
		list, err := s.ListPayments(ctx, m.ID, gateway.PaymentFilter{Livemode: mode, Limit: 10})
		want := test
		if mode {
			want = live
		}
		if err != nil || len(list) != 1 || list[0].ID != want.ID {
			t.Fatalf("livemode %v payments: %v (%v), want only %s", mode, list, err, want.ID)
		}
	}
	// A cursor of the other mode is not the merchant's in this mode.
	_, err := s.ListPayments(ctx, m.ID, gateway.PaymentFilter{Livemode: false, Limit: 10, StartingAfter: live.ID})
	if err != nil && !payment.IsNotFound(err) {
		t.Fatalf("cursor of another mode: %v", err)
	}

	// Refunds keep the mode of their payment; a refund claiming another mode is refused.
	paid := succeededPayment(t, s, m.ID, 500)
	livePaid := pendingPayment(m.ID, 500, t0)
	livePaid.Livemode, livePaid.Status, livePaid.NextAction = true, payment.StatusSucceeded, nil
	createPayment(t, s, livePaid)
	r := newRefund(livePaid, 100)
	r.Livemode = true
	if err := s.CreateRefund(ctx, r, nil, reserve(100)); err != nil {
		t.Fatal(err)
	}
	got, err := s.Refund(ctx, m.ID, r.ID)
	if err != nil || !got.Livemode {
		t.Fatalf("live refund came back %+v (%v)", got, err)
	}
	wrongMode := newRefund(paid, 100)
	wrongMode.Livemode = true
	wantKind(t, "live refund of a test payment", s.CreateRefund(ctx, wrongMode, nil, reserve(100)), payment.NotFound)

	// Events keep their mode and are listed per mode.
	for _, p := range []*payment.Payment{test, live} {
		if _, err := s.UpdatePayment(ctx, p.ID, func(p *payment.Payment) (gateway.Effects, error) {
			if _, err := p.Cancel("requested_by_merchant", t0); err != nil {
				return gateway.Effects{}, err
			}
			e, err := payment.PaymentEvent(payment.NewID("evt"), p, t0)
			return gateway.Effects{Events: []payment.Event{e}}, err
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, mode := range []bool{false, true} {
		events, err := s.ListEvents(ctx, m.ID, gateway.EventFilter{Livemode: mode, Limit: 10})
		if err != nil || len(events) != 1 || events[0].Livemode != mode {
			t.Fatalf("livemode %v events: %+v (%v), want one of that mode", mode, events, err)
		}
		got, err := s.Event(ctx, m.ID, events[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		wantEqual(t, "event by id", got, events[0])
	}
}

// The gateway refunds "everything refundable" by letting the callback set the amount: the store
// must write the refund as the callback left it.
func testRefundAmountFromCallback(t *testing.T, _ Harness, s Full) {
	m := newMerchant(t, s)
	p := succeededPayment(t, s, m.ID, 1000)
	first := newRefund(p, 300)
	if err := s.CreateRefund(ctx, first, nil, reserve(300)); err != nil {
		t.Fatal(err)
	}
	rest := newRefund(p, 0)
	err := s.CreateRefund(ctx, rest, nil, func(p *payment.Payment) error {
		rest.Amount = p.Refundable()
		return reserve(rest.Amount)(p)
	})
	if err != nil {
		t.Fatalf("refund of the rest: %v", err)
	}
	got, err := s.Refund(ctx, m.ID, rest.ID)
	if err != nil || got.Amount != 700 {
		t.Fatalf("refund of the rest stored as %+v (%v), want amount 700", got, err)
	}
	if p := mustPayment(t, s, m.ID, p.ID); p.AmountRefunded != 1000 {
		t.Fatalf("amount_refunded %d, want 1000", p.AmountRefunded)
	}
}

// The API asks for one more than its largest page (100) to learn whether more follow.
func testPagesBeyondAPILimit(t *testing.T, _ Harness, s Full) {
	m := newMerchant(t, s)
	for i := range 102 {
		createPayment(t, s, pendingPayment(m.ID, 100, t0.Add(time.Duration(i)*time.Millisecond)))
	}
	list, err := s.ListPayments(ctx, m.ID, gateway.PaymentFilter{Limit: 101})
	if err != nil || len(list) != 101 {
		t.Fatalf("limit 101: %d payments (%v), want 101", len(list), err)
	}
	for i := range 102 {
		p := pendingPayment(m.ID, 100, t0)
		createPayment(t, s, p)
		if _, err := s.UpdatePayment(ctx, p.ID, func(p *payment.Payment) (gateway.Effects, error) {
			_, err := p.Fail("x", "y", t0.Add(time.Duration(i)*time.Millisecond))
			e, _ := payment.PaymentEvent(payment.NewID("evt"), p, p.UpdatedAt)
			return gateway.Effects{Events: []payment.Event{e}}, err
		}); err != nil {
			t.Fatal(err)
		}
	}
	events, err := s.ListEvents(ctx, m.ID, gateway.EventFilter{Limit: 101})
	if err != nil || len(events) != 101 {
		t.Fatalf("limit 101: %d events (%v), want 101", len(events), err)
	}
}

func testJobsAtomic(t *testing.T, h Harness, s Full) {
	m := newMerchant(t, s)
	if got := jobNames(t, h, s); len(got) != 0 {
		t.Fatalf("jobs in a fresh store: %v", got)
	}
	at := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	p := pendingPayment(m.ID, 100, t0)
	if err := s.CreatePayment(ctx, p, []gateway.Job{job("created"), {Args: testJob{Name: "later"}, ScheduledAt: at}}); err != nil {
		t.Fatal(err)
	}
	for _, j := range h.Jobs(t, s) {
		var a testJob
		_ = json.Unmarshal(j.Args, &a)
		if a.Name == "later" && !j.ScheduledAt.Equal(at) {
			t.Fatalf("job scheduled at %v, want %v", j.ScheduledAt, at)
		}
	}
	// A payment that cannot be stored enqueues nothing.
	dup := pendingPayment(m.ID, 100, t0)
	dup.ID = p.ID
	if err := s.CreatePayment(ctx, dup, []gateway.Job{job("duplicate payment")}); err == nil {
		t.Fatal("duplicate payment stored")
	}

	if _, err := s.UpdatePayment(ctx, p.ID, func(p *payment.Payment) (gateway.Effects, error) {
		p.Description = "placed"
		return gateway.Effects{Jobs: []gateway.Job{job("updated")}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	// The callback's error, or an event that cannot be written, takes the jobs with it.
	_, err := s.UpdatePayment(ctx, p.ID, func(p *payment.Payment) (gateway.Effects, error) {
		return gateway.Effects{Jobs: []gateway.Job{job("refused update")}}, errCallback
	})
	if !errors.Is(err, errCallback) {
		t.Fatalf("got %v, want the callback's error", err)
	}
	evt := payment.Event{ID: payment.NewID("evt"), MerchantID: m.ID, Type: payment.EventPaymentFailed, Data: []byte(`{}`), CreatedAt: t0}
	if _, err := s.UpdatePayment(ctx, p.ID, func(p *payment.Payment) (gateway.Effects, error) {
		return gateway.Effects{Events: []payment.Event{evt}, Jobs: []gateway.Job{job("event written")}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdatePayment(ctx, p.ID, func(p *payment.Payment) (gateway.Effects, error) {
		return gateway.Effects{Events: []payment.Event{evt}, Jobs: []gateway.Job{job("event rewritten")}}, nil
	}); err == nil {
		t.Fatal("an event written twice was accepted")
	}

	paid := succeededPayment(t, s, m.ID, 100)
	r := newRefund(paid, 60)
	if err := s.CreateRefund(ctx, r, []gateway.Job{job("refund")}, reserve(60)); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRefund(ctx, newRefund(paid, 60), []gateway.Job{job("over-refund")}, reserve(60)); err == nil {
		t.Fatal("over-refund accepted")
	}
	if _, err := s.UpdateRefund(ctx, r.ID, func(r *payment.Refund, p *payment.Payment) (gateway.Effects, error) {
		_, err := r.Succeed(t0, t0)
		return gateway.Effects{Jobs: []gateway.Job{job("refund updated")}}, err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateRefund(ctx, r.ID, func(r *payment.Refund, p *payment.Payment) (gateway.Effects, error) {
		return gateway.Effects{Jobs: []gateway.Job{job("refused refund update")}}, errCallback
	}); !errors.Is(err, errCallback) {
		t.Fatalf("got %v, want the callback's error", err)
	}
	wantEqual(t, "jobs", jobNames(t, h, s), []string{"created", "event written", "later", "refund", "refund updated", "updated"})
}

// A unique job enqueued by two changes (a notification and a poll, say) is queued once.
func testUniqueJobs(t *testing.T, h Harness, s Full) {
	m := newMerchant(t, s)
	p := pendingPayment(m.ID, 100, t0)
	if err := s.CreatePayment(ctx, p, []gateway.Job{{Args: uniqueJob{Name: "poll " + p.ID}}}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := s.UpdatePayment(ctx, p.ID, func(*payment.Payment) (gateway.Effects, error) {
			return gateway.Effects{Jobs: []gateway.Job{{Args: uniqueJob{Name: "poll " + p.ID}}, {Args: uniqueJob{Name: "other"}}}}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	wantEqual(t, "unique jobs", jobNames(t, h, s), []string{"other", "poll " + p.ID})
}

func newEndpoint(merchantID string, created time.Time) *webhook.Endpoint {
	return &webhook.Endpoint{
		ID: payment.NewID("we"), MerchantID: merchantID, URL: "https://shop.example/hooks?token=x",
		Events: []payment.EventType{payment.EventPaymentSucceeded, payment.EventRefundFailed}, Secret: webhook.NewSecret(),
		CreatedAt: created,
	}
}

func testWebhookEndpoints(t *testing.T, _ Harness, s Full) {
	m, other := newMerchant(t, s), newMerchant(t, s)
	cst := time.FixedZone("CST", 8*3600)
	full := newEndpoint(m.ID, time.Date(2026, 11, 25, 16, 0, 0, 123456789, cst))
	full.Livemode, full.PreviousSecret, full.PreviousSecretExpiresAt = true, webhook.NewSecret(), t0.Add(time.Hour)
	if err := s.CreateEndpoint(ctx, full); err != nil {
		t.Fatal(err)
	}
	if !full.CreatedAt.Equal(time.Date(2026, 11, 25, 8, 0, 0, 123456000, time.UTC)) || full.CreatedAt.Location() != time.UTC {
		t.Fatalf("CreateEndpoint left created_at %v, want UTC to the microsecond", full.CreatedAt)
	}
	got, err := s.Endpoint(ctx, m.ID, full.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "endpoint", got, full)
	if got, err = s.Endpoint(ctx, "", full.ID); err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "endpoint by id alone", got, full)

	all := newEndpoint(m.ID, t0.Add(time.Minute))
	all.Events = nil // every type
	if err := s.CreateEndpoint(ctx, all); err != nil {
		t.Fatal(err)
	}
	empty := newEndpoint(m.ID, t0.Add(time.Minute)) // same time: the id orders them
	empty.Events = []payment.EventType{}
	if err := s.CreateEndpoint(ctx, empty); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Endpoint(ctx, m.ID, empty.ID); got.Events != nil || !got.Subscribes(payment.EventPaymentCanceled) {
		t.Fatalf("an endpoint with no event list came back with %v", got.Events)
	}
	theirs := newEndpoint(other.ID, t0)
	if err := s.CreateEndpoint(ctx, theirs); err != nil {
		t.Fatal(err)
	}
	dup := newEndpoint(m.ID, t0)
	dup.ID = full.ID
	wantKind(t, "duplicate endpoint id", s.CreateEndpoint(ctx, dup), payment.Conflict)

	list, err := s.ListEndpoints(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{full.ID, all.ID, empty.ID}
	if all.ID > empty.ID {
		want[1], want[2] = empty.ID, all.ID
	}
	var ids []string
	for _, e := range list {
		ids = append(ids, e.ID)
	}
	wantEqual(t, "endpoints, oldest first", ids, want)
	if list, err := s.ListEndpoints(ctx, "mch_nobody"); err != nil || list == nil || len(list) != 0 {
		t.Fatalf("endpoints of nobody: %#v (%v), want an empty list", list, err)
	}

	e, err := s.Endpoint(ctx, other.ID, full.ID)
	wantNotFound(t, "another merchant's endpoint", e, err)
	e, err = s.Endpoint(ctx, "", "we_missing")
	wantNotFound(t, "missing endpoint", e, err)
	wantKind(t, "delete another merchant's endpoint", s.DeleteEndpoint(ctx, other.ID, full.ID), payment.NotFound)
	if err := s.DeleteEndpoint(ctx, m.ID, full.ID); err != nil {
		t.Fatal(err)
	}
	e, err = s.Endpoint(ctx, m.ID, full.ID)
	wantNotFound(t, "deleted endpoint", e, err)
	wantKind(t, "delete twice", s.DeleteEndpoint(ctx, m.ID, full.ID), payment.NotFound)
	if _, err := s.Endpoint(ctx, other.ID, theirs.ID); err != nil {
		t.Fatalf("the other merchant's endpoint after a delete: %v", err)
	}
}

func testWebhookRotation(t *testing.T, _ Harness, s Full) {
	m, other := newMerchant(t, s), newMerchant(t, s)
	ep := newEndpoint(m.ID, t0)
	if err := s.CreateEndpoint(ctx, ep); err != nil {
		t.Fatal(err)
	}
	first, second := webhook.NewSecret(), webhook.NewSecret()
	until := time.Date(2026, 11, 26, 8, 0, 0, 987654321, time.UTC)
	got, err := s.RotateSecret(ctx, m.ID, ep.ID, first, until)
	if err != nil {
		t.Fatal(err)
	}
	if got.Secret != first || got.PreviousSecret != ep.Secret || !got.PreviousSecretExpiresAt.Equal(until.Truncate(time.Microsecond)) {
		t.Fatalf("after rotation: secret %q previous %q until %v", got.Secret, got.PreviousSecret, got.PreviousSecretExpiresAt)
	}
	read, _ := s.Endpoint(ctx, m.ID, ep.ID)
	wantEqual(t, "rotation's answer and a fresh read", read, got)
	if got, err = s.RotateSecret(ctx, m.ID, ep.ID, second, until.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got.Secret != second || got.PreviousSecret != first {
		t.Fatalf("second rotation: secret %q previous %q, want %q and %q", got.Secret, got.PreviousSecret, second, first)
	}
	e, err := s.RotateSecret(ctx, other.ID, ep.ID, webhook.NewSecret(), until)
	wantNotFound(t, "rotation of another merchant's endpoint", e, err)
	if read, _ := s.Endpoint(ctx, m.ID, ep.ID); read.Secret != second {
		t.Fatal("a refused rotation changed the secret")
	}
}

func testWebhookDisable(t *testing.T, _ Harness, s Full) {
	m := newMerchant(t, s)
	ep := newEndpoint(m.ID, t0)
	if err := s.CreateEndpoint(ctx, ep); err != nil {
		t.Fatal(err)
	}
	if err := s.DisableEndpoint(ctx, ep.ID, "the endpoint answered 410 Gone", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.DisableEndpoint(ctx, ep.ID, "a later reason", t0.Add(time.Hour)); err != nil {
		t.Fatalf("disabling a disabled endpoint: %v", err)
	}
	got, err := s.Endpoint(ctx, m.ID, ep.ID)
	if err != nil || !got.Disabled || got.DisabledReason != "the endpoint answered 410 Gone" {
		t.Fatalf("disabled endpoint: %+v (%v), want disabled with the first reason", got, err)
	}
	wantKind(t, "disable a missing endpoint", s.DisableEndpoint(ctx, "we_missing", "x", t0), payment.NotFound)
}

func testWebhookAttempts(t *testing.T, _ Harness, s Full) {
	m, other := newMerchant(t, s), newMerchant(t, s)
	p := createPayment(t, s, pendingPayment(m.ID, 100, t0))
	var evt payment.Event
	if _, err := s.UpdatePayment(ctx, p.ID, func(p *payment.Payment) (gateway.Effects, error) {
		_, err := p.Succeed(payment.ProviderRef{TradeNo: "2026"}, t0, t0)
		if err == nil {
			evt, err = payment.PaymentEvent(payment.NewID("evt"), p, t0)
		}
		return gateway.Effects{Events: []payment.Event{evt}}, err
	}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Event(ctx, m.ID, evt.ID)
	if err != nil {
		t.Fatal(err)
	}
	evt.Object = "event"
	wantEqual(t, "event", got, &evt)
	e, err := s.Event(ctx, other.ID, evt.ID)
	wantNotFound(t, "another merchant's event", e, err)
	e, err = s.Event(ctx, "", "evt_missing")
	wantNotFound(t, "missing event", e, err)

	ep := newEndpoint(m.ID, t0)
	if err := s.CreateEndpoint(ctx, ep); err != nil {
		t.Fatal(err)
	}
	failed := &webhook.Attempt{ID: payment.NewID("wha"), EventID: evt.ID, EndpointID: ep.ID, MerchantID: m.ID, Number: 1,
		StatusCode: 503, Error: "receiver answered 503 Service Unavailable", Duration: 1234567 * time.Nanosecond,
		At: t0.Add(time.Second), NextAttemptAt: t0.Add(6 * time.Second)}
	timeout := &webhook.Attempt{ID: payment.NewID("wha"), EventID: evt.ID, EndpointID: ep.ID, MerchantID: m.ID, Number: 2,
		Error: "no response within 15s", Duration: 15 * time.Second, At: t0.Add(7 * time.Second), NextAttemptAt: t0.Add(5 * time.Minute)}
	ok := &webhook.Attempt{ID: payment.NewID("wha"), EventID: evt.ID, EndpointID: ep.ID, MerchantID: m.ID, Number: 3,
		StatusCode: 204, Duration: 3 * time.Millisecond, At: t0.Add(6 * time.Minute)}
	for _, a := range []*webhook.Attempt{ok, failed, timeout} { // recorded out of order
		if err := s.RecordAttempt(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if failed.Duration != 1234*time.Microsecond {
		t.Fatalf("RecordAttempt left duration %v, want it to the microsecond", failed.Duration)
	}
	if err := s.RecordAttempt(ctx, &webhook.Attempt{ID: payment.NewID("wha"), EventID: "evt_missing", EndpointID: ep.ID,
		MerchantID: m.ID, Number: 1, At: t0}); err == nil {
		t.Fatal("an attempt for a missing event was recorded")
	}
	// Attempts outlive their endpoint.
	if err := s.DeleteEndpoint(ctx, m.ID, ep.ID); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListAttempts(ctx, evt.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "attempts, oldest first", list, []*webhook.Attempt{failed, timeout, ok})
	if list, err := s.ListAttempts(ctx, "evt_missing"); err != nil || list == nil || len(list) != 0 {
		t.Fatalf("attempts of a missing event: %#v (%v), want an empty list", list, err)
	}
}

func testRejected(t *testing.T, _ Harness, s Full) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	old := &gateway.RejectedNotification{Provider: payment.Alipay, Kind: "forged", Reason: "signature did not verify",
		Fields: map[string]string{"out_trade_no": "HT1", "notify_id": "n1"}, At: now.Add(-48 * time.Hour)}
	recent := &gateway.RejectedNotification{Provider: payment.WeChatPay, Kind: "mismatch", Reason: "amount 1 is not 100",
		At: now.Add(-time.Minute)}
	for _, n := range []*gateway.RejectedNotification{old, recent} {
		if err := s.RecordRejected(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.ListRejected(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	recent.Fields = map[string]string{}
	wantEqual(t, "rejected notifications, newest first", list, []*gateway.RejectedNotification{recent, old})
	n, err := s.PurgeRejected(ctx, now.Add(-24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("purge: %d (%v), want 1", n, err)
	}
	if list, _ := s.ListRejected(ctx, 10); len(list) != 1 || list[0].Kind != "mismatch" {
		t.Fatalf("after purge: %+v", list)
	}
}

// QueuedJobs lists the jobs in the queue that driver reaches, for Harness.Jobs.
func QueuedJobs[TTx any](t *testing.T, driver riverdriver.Driver[TTx]) []QueuedJob {
	t.Helper()
	c, err := river.NewClient(driver, &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.JobList(ctx, river.NewJobListParams().First(10000))
	if err != nil {
		t.Fatalf("list jobs: %v", err)
	}
	var out []QueuedJob
	for _, j := range res.Jobs {
		out = append(out, QueuedJob{Kind: j.Kind, Args: j.EncodedArgs, ScheduledAt: j.ScheduledAt})
	}
	return out
}
