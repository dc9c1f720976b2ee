package webhook

import (
	"context"
	"database/sql"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
	_ "modernc.org/sqlite"

	"github.com/hutong-pay/hutong/internal/payment"
)

// TestRiverSQLite runs the workers in a real River client on SQLite (the embedded mode): a
// fan-out inserted twice delivers once per endpoint, and a failed delivery is rescheduled at
// exactly the time its attempt records.
func TestRiverSQLite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "river.db")+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	driver := riversqlite.New(db)
	migrator, err := rivermigrate.New(driver, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		t.Fatal(err)
	}

	ok, failing := newReceiver(t, 200), newReceiver(t, 500)
	s := newMemStore()
	s.addEvent(&payment.Event{ID: "evt_1", MerchantID: "mch_A", Type: payment.EventPaymentSucceeded, Data: []byte(`{"id":"pay_1"}`)})
	_ = s.CreateEndpoint(ctx, &Endpoint{ID: "we_ok", MerchantID: "mch_A", URL: ok.srv.URL, Secret: NewSecret()})
	_ = s.CreateEndpoint(ctx, &Endpoint{ID: "we_fail", MerchantID: "mch_A", URL: failing.srv.URL, Secret: NewSecret()})

	var client *river.Client[*sql.Tx]
	ins := InserterFunc(func(ctx context.Context, p []river.InsertManyParams) error {
		_, err := client.InsertMany(ctx, p)
		return err
	})
	workers := river.NewWorkers()
	river.AddWorker(workers, NewDeliverWorker(NewDispatcher(DispatcherConfig{Store: s})))
	river.AddWorker(workers, NewFanOutWorker(s, ins))
	client, err = river.NewClient(driver, &river.Config{
		Queues:            map[string]river.QueueConfig{Queue: {MaxWorkers: 4}},
		Workers:           workers,
		FetchPollInterval: 50 * time.Millisecond,
		FetchCooldown:     10 * time.Millisecond,
		TestOnly:          true,
		Logger:            slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	events, stop := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobCancelled)
	defer stop()
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Stop(context.Background()) }()

	if _, err := client.InsertMany(ctx, []river.InsertManyParams{{Args: FanOutArgs{EventID: "evt_1"}}}); err != nil {
		t.Fatal(err)
	}
	// Three jobs end: the fan-out, the delivery to we_ok (completed), the one to we_fail (failed).
	var failed *rivertype.JobRow
	for done := 0; done < 3; {
		select {
		case e := <-events:
			done++
			if e.Kind == river.EventKindJobFailed {
				failed = e.Job
			}
		case <-ctx.Done():
			t.Fatalf("only %d jobs finished", done)
		}
	}
	// A repeated fan-out (a retried outbox insert) delivers nothing twice.
	if _, err := client.InsertMany(ctx, []river.InsertManyParams{{Args: FanOutArgs{EventID: "evt_1"}}}); err != nil {
		t.Fatal(err)
	}
	if err := NewFanOutWorker(s, ins).Work(ctx, &river.Job[FanOutArgs]{JobRow: &rivertype.JobRow{ID: 99, Attempt: 1}, Args: FanOutArgs{EventID: "evt_1"}}); err != nil {
		t.Fatal(err)
	}
	jobs, err := client.JobList(ctx, river.NewJobListParams().Kinds(DeliverArgs{}.Kind()).First(10))
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs.Jobs) != 2 {
		t.Fatalf("%d delivery jobs, want 2 (one per endpoint)", len(jobs.Jobs))
	}
	if len(ok.requests()) != 1 || len(failing.requests()) != 1 {
		t.Fatalf("requests: ok %d, failing %d; want 1 each", len(ok.requests()), len(failing.requests()))
	}

	if failed == nil {
		t.Fatal("no delivery failed")
	}
	job, err := client.JobGet(ctx, failed.ID)
	if err != nil {
		t.Fatal(err)
	}
	as, _ := s.ListAttempts(ctx, "evt_1")
	var recorded *Attempt
	for _, a := range as {
		if a.EndpointID == "we_fail" {
			recorded = a
		}
	}
	if job.State != rivertype.JobStateRetryable || job.MaxAttempts != MaxAttempts || recorded == nil {
		t.Fatalf("failed job: state %s, max attempts %d; attempt %+v", job.State, job.MaxAttempts, recorded)
	}
	if d := job.ScheduledAt.Sub(recorded.NextAttemptAt).Abs(); d > time.Millisecond {
		t.Fatalf("River retries at %s, the attempt says %s", job.ScheduledAt, recorded.NextAttemptAt)
	}
}
