package app

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivertype"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/httpapi"
	"github.com/hutong-pay/hutong/internal/jobs"
	"github.com/hutong-pay/hutong/internal/store/postgres"
	"github.com/hutong-pay/hutong/internal/store/sqlite"
	"github.com/hutong-pay/hutong/internal/webhook"
)

// JobOptions tune a node's background work: the polls that recover lost notifications, expiry,
// webhook delivery and housekeeping, all River jobs in the node's database. The zero value is
// what production runs.
type JobOptions struct {
	// Schedule spaces the questions to the wallets.
	Schedule jobs.Schedule
	// Workers and WebhookWorkers are the jobs one node runs at once in the default queue and in
	// the webhook queue; defaults 16 and 64 (their work is mostly waiting on the network).
	Workers, WebhookWorkers int
	// FetchCooldown is the least time between two fetches of due jobs by one queue: with the
	// worker counts, it bounds a node's job throughput (about workers per cooldown); default 10 ms.
	FetchCooldown time.Duration
	// PurgeEvery is how often the elected leader purges idempotency keys older than 24 h and
	// rejected notifications older than RejectedRetention; default 1 h.
	PurgeEvery        time.Duration
	RejectedRetention time.Duration // default 30 days
	// JobTimeout bounds one run of a gateway job (a poll, an expiry: wallet calls with their own
	// timeouts, and a write); default 1 min. Webhook deliveries have their own (15 s + 15 s).
	JobTimeout time.Duration
	// RescueAfter is how long a job may stay running before River presumes its node dead (a
	// crash) and runs it again, here or on another node; default 3 min. It must exceed
	// JobTimeout; River looks for such jobs every 30 s.
	RescueAfter time.Duration
	// StopTimeout bounds the wait for running jobs at shutdown before their contexts are
	// cancelled; default 20 s.
	StopTimeout time.Duration
	// FetchPollInterval is how often an idle node looks for due jobs; default River's 1 s.
	FetchPollInterval time.Duration
	// Disabled runs no jobs on this node. Jobs are still enqueued, for other nodes to run.
	Disabled bool
}

func (o JobOptions) withDefaults() JobOptions {
	if o.Workers <= 0 {
		o.Workers = 16
	}
	if o.WebhookWorkers <= 0 {
		o.WebhookWorkers = 64
	}
	if o.FetchCooldown <= 0 {
		o.FetchCooldown = 10 * time.Millisecond
	}
	if o.PurgeEvery <= 0 {
		o.PurgeEvery = time.Hour
	}
	if o.RejectedRetention <= 0 {
		o.RejectedRetention = 30 * 24 * time.Hour
	}
	if o.JobTimeout <= 0 {
		o.JobTimeout = time.Minute
	}
	if o.RescueAfter <= 0 {
		o.RescueAfter = max(3*time.Minute, 2*o.JobTimeout)
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 20 * time.Second
	}
	return o
}

// Queue is a node's River client, whatever its database: it works the node's share of the
// jobs and enqueues jobs outside a state change (webhook fan-out and redelivery).
type Queue interface {
	// Start begins working jobs; Stop waits for the running ones (up to JobOptions.StopTimeout,
	// then cancels them) and returns once they have ended.
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	InsertMany(ctx context.Context, params []river.InsertManyParams) error
	// Unfinished counts the jobs not yet completed, cancelled or discarded, of the given kinds
	// (all when none), and lists up to 100 of them.
	Unfinished(ctx context.Context, kinds ...string) (int, []*rivertype.JobRow, error)
	// Subscribe delivers River's job events (completed, failed, …) as they happen on this node.
	Subscribe(kinds ...river.EventKind) (<-chan *river.Event, func())
	// ID is the River client's id, unique per process.
	ID() string
}

type riverQueue[TTx any] struct {
	c *river.Client[TTx]
}

func (q *riverQueue[TTx]) Start(ctx context.Context) error { return q.c.Start(ctx) }
func (q *riverQueue[TTx]) Stop(ctx context.Context) error  { return q.c.Stop(ctx) }
func (q *riverQueue[TTx]) ID() string                      { return q.c.ID() }

func (q *riverQueue[TTx]) InsertMany(ctx context.Context, params []river.InsertManyParams) error {
	_, err := q.c.InsertMany(ctx, params)
	return err
}

func (q *riverQueue[TTx]) Subscribe(kinds ...river.EventKind) (<-chan *river.Event, func()) {
	return q.c.Subscribe(kinds...)
}

func (q *riverQueue[TTx]) Unfinished(ctx context.Context, kinds ...string) (int, []*rivertype.JobRow, error) {
	params := river.NewJobListParams().First(10000).States(rivertype.JobStateAvailable, rivertype.JobStatePending,
		rivertype.JobStateRetryable, rivertype.JobStateRunning, rivertype.JobStateScheduled)
	if len(kinds) > 0 {
		params = params.Kinds(kinds...)
	}
	res, err := q.c.JobList(ctx, params)
	if err != nil {
		return 0, nil, fmt.Errorf("jobs: list: %w", err)
	}
	return len(res.Jobs), res.Jobs[:min(len(res.Jobs), 100)], nil
}

// rejectionLog is what the node needs of a store to keep rejected notifications.
type rejectionLog interface {
	RecordRejected(ctx context.Context, n *gateway.RejectedNotification) error
	PurgeRejected(ctx context.Context, before time.Time) (int64, error)
}

// newQueue builds the River client for st's database with every worker the node runs: the
// gateway's polls and expiry, webhook fan-out and delivery, and the periodic purge.
func newQueue(st gateway.Store, svc *gateway.Service, hooks webhook.Store, dispatcher *webhook.Dispatcher,
	opts JobOptions, now func() time.Time, log *slog.Logger) (Queue, error) {
	opts = opts.withDefaults()
	var q Queue
	ins := webhook.InserterFunc(func(ctx context.Context, p []river.InsertManyParams) error { return q.InsertMany(ctx, p) })

	workers := river.NewWorkers()
	jobs.Register(workers, svc, now, opts.Schedule)
	river.AddWorker(workers, webhook.NewDeliverWorker(dispatcher))
	river.AddWorker(workers, webhook.NewFanOutWorker(hooks, ins))
	rejected, _ := st.(rejectionLog)
	river.AddWorker(workers, &jobs.PurgeWorker{Purge: func(ctx context.Context) error {
		n, err := httpapi.PurgeIdempotency(ctx, st, now())
		if err != nil {
			return err
		}
		var r int64
		if rejected != nil {
			if r, err = rejected.PurgeRejected(ctx, now().Add(-opts.RejectedRetention)); err != nil {
				return fmt.Errorf("purge rejected notifications: %w", err)
			}
		}
		log.Info("purged housekeeping records", "idempotency_keys", n, "rejected_notifications", r)
		return nil
	}})

	cfg := &river.Config{
		Queues: map[string]river.QueueConfig{
			river.QueueDefault: {MaxWorkers: opts.Workers},
			webhook.Queue:      {MaxWorkers: opts.WebhookWorkers},
		},
		Workers: workers,
		// River enqueues periodic jobs on its elected leader only: one node of many purges.
		PeriodicJobs: []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(opts.PurgeEvery),
			func() (river.JobArgs, *river.InsertOpts) { return jobs.PurgeArgs{}, nil }, &river.PeriodicJobOpts{RunOnStart: true})},
		JobTimeout:           opts.JobTimeout,
		RescueStuckJobsAfter: opts.RescueAfter,
		SoftStopTimeout:      opts.StopTimeout,
		FetchPollInterval:    opts.FetchPollInterval,
		FetchCooldown:        opts.FetchCooldown,
		Logger:               slog.New(minLevel{Handler: log.Handler(), min: slog.LevelWarn}),
		ErrorHandler:         jobErrorLogger{log: log},
	}
	switch s := st.(type) {
	case *sqlite.Store:
		// The store's one write connection: River's transactions and the store's writer take
		// turns on it, and jobs inserted by state changes ride in the writer's transactions.
		c, err := river.NewClient(riversqlite.New(s.DB()), cfg)
		if err != nil {
			return nil, fmt.Errorf("jobs: %w", err)
		}
		q = &riverQueue[*sql.Tx]{c: c}
	case *postgres.Store:
		c, err := river.NewClient(riverpgxv5.New(s.Pool()), cfg)
		if err != nil {
			return nil, fmt.Errorf("jobs: %w", err)
		}
		q = &riverQueue[pgx.Tx]{c: c}
	default:
		return nil, fmt.Errorf("jobs: no job queue for a %T store", st)
	}
	return q, nil
}

// minLevel drops records below min: River is chatty at info level.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{Handler: h.Handler.WithAttrs(as), min: h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{Handler: h.Handler.WithGroup(name), min: h.min}
}

// jobErrorLogger logs each failed job run: the job is retried (or cancelled) as its worker said.
type jobErrorLogger struct{ log *slog.Logger }

func (h jobErrorLogger) HandleError(ctx context.Context, job *rivertype.JobRow, err error) *river.ErrorHandlerResult {
	h.log.WarnContext(ctx, "job failed", "job_id", job.ID, "kind", job.Kind, "attempt", job.Attempt, "args", string(job.EncodedArgs), "err", err)
	return nil
}

func (h jobErrorLogger) HandlePanic(ctx context.Context, job *rivertype.JobRow, v any, trace string) *river.ErrorHandlerResult {
	h.log.ErrorContext(ctx, "job panicked", "job_id", job.ID, "kind", job.Kind, "attempt", job.Attempt, "panic", fmt.Sprint(v), "trace", trace)
	return nil
}
