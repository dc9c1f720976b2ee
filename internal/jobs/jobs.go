// Package jobs is the background work that must not be forgotten: following pending payments and
// refunds at the wallet until they are final (recovering lost notifications), closing payments at
// their expiry, delivering events to webhooks, and housekeeping. Jobs are River jobs; Planner
// tells the gateway which to enqueue with each state change, and the store inserts them in that
// change's transaction, so a crash can lose neither.
package jobs

import (
	"context"
	"errors"
	"time"

	"github.com/riverqueue/river"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
	"github.com/hutong-pay/hutong/internal/webhook"
)

// Service is what the workers need of the use cases (gateway.Service satisfies it).
type Service interface {
	SyncPayment(ctx context.Context, id string) (*payment.Payment, error)
	ExpirePayment(ctx context.Context, id string) (*payment.Payment, error)
	SyncRefund(ctx context.Context, id string) (*payment.Refund, error)
}

// uniqueActive keeps one live job per argument set: scheduling a poll that is already scheduled
// is a no-op, so repeated triggers (duplicate notifications, retries) never multiply work.
var uniqueActive = &river.UniqueOpts{ByArgs: true}

// PollPaymentArgs asks the wallet about a pending payment.
type PollPaymentArgs struct {
	PaymentID string `json:"payment_id" river:"unique"`
}

// Kind names the job.
func (PollPaymentArgs) Kind() string { return "payment_poll" }

// InsertOpts makes polls unique per payment.
func (PollPaymentArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: *uniqueActive, MaxAttempts: 25}
}

// ExpirePaymentArgs closes a payment at the wallet and cancels it at its expires_at.
type ExpirePaymentArgs struct {
	PaymentID string `json:"payment_id" river:"unique"`
}

// Kind names the job.
func (ExpirePaymentArgs) Kind() string { return "payment_expire" }

// InsertOpts makes expiry unique per payment.
func (ExpirePaymentArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: *uniqueActive, MaxAttempts: 25}
}

// PollRefundArgs asks the wallet about a pending refund.
type PollRefundArgs struct {
	RefundID string `json:"refund_id" river:"unique"`
}

// Kind names the job.
func (PollRefundArgs) Kind() string { return "refund_poll" }

// InsertOpts makes polls unique per refund.
func (PollRefundArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: *uniqueActive, MaxAttempts: 25}
}

// Schedule spaces the questions to the wallets. The zero value is the production schedule;
// tests shorten it.
type Schedule struct {
	// FirstPoll is when a payment is first asked about once a buyer can pay it: long enough for a
	// quick buyer's notification to arrive first, short enough that a lost one is noticed soon.
	// Default 30 s.
	FirstPoll time.Duration
	// FirstRefundPoll is when a refund is first asked about; default 10 s.
	FirstRefundPoll time.Duration
	// MinPoll and MaxPoll bound the spacing of later questions; default 10 s and 10 min.
	MinPoll, MaxPoll time.Duration
}

func (s Schedule) withDefaults() Schedule {
	if s.FirstPoll <= 0 {
		s.FirstPoll = 30 * time.Second
	}
	if s.FirstRefundPoll <= 0 {
		s.FirstRefundPoll = 10 * time.Second
	}
	if s.MinPoll <= 0 {
		s.MinPoll = 10 * time.Second
	}
	if s.MaxPoll <= 0 {
		s.MaxPoll = 10 * time.Minute
	}
	s.MaxPoll = max(s.MaxPoll, s.MinPoll)
	return s
}

// pollDelay spaces the questions to the wallet by the age of the object: often while a buyer is
// likely paying, rarely later.
func (s Schedule) pollDelay(age time.Duration) time.Duration {
	return min(max(age/4, s.MinPoll), s.MaxPoll)
}

// Planner is the gateway.JobPlanner on River: it names the jobs above and the webhook fan-out.
type Planner struct {
	Schedule Schedule
}

var _ gateway.JobPlanner = Planner{}

// PaymentCreated returns the jobs a new payment needs. One with a wallet gets one job that
// follows it to its end: it polls the wallet and, at expires_at, closes and cancels it. One
// without a wallet gets its expiry; the follow-up comes when the buyer chooses (MethodChosen).
// One job rather than two matters on SQLite, where each job insert takes the single writer's time.
func (pl Planner) PaymentCreated(p *payment.Payment, now time.Time) []gateway.Job {
	if p.Provider != "" {
		return pl.MethodChosen(p, now)
	}
	return []gateway.Job{{Args: ExpirePaymentArgs{PaymentID: p.ID}, ScheduledAt: p.ExpiresAt}}
}

// MethodChosen returns the job that follows a payment once a buyer can pay it: first asked at
// FirstPoll, or at its expiry when that comes sooner.
func (pl Planner) MethodChosen(p *payment.Payment, now time.Time) []gateway.Job {
	first := now.Add(pl.Schedule.withDefaults().FirstPoll)
	if p.ExpiresAt.Before(first) {
		first = p.ExpiresAt
	}
	return []gateway.Job{{Args: PollPaymentArgs{PaymentID: p.ID}, ScheduledAt: first}}
}

// RefundCreated returns the poll that follows a new refund to its end.
func (pl Planner) RefundCreated(r *payment.Refund, now time.Time) []gateway.Job {
	return []gateway.Job{{Args: PollRefundArgs{RefundID: r.ID}, ScheduledAt: now.Add(pl.Schedule.withDefaults().FirstRefundPoll)}}
}

// EventsWritten returns one webhook fan-out per event.
func (pl Planner) EventsWritten(events []payment.Event) []gateway.Job {
	jobs := make([]gateway.Job, len(events))
	for i, e := range events {
		jobs[i] = gateway.Job{Args: webhook.FanOutArgs{EventID: e.ID}}
	}
	return jobs
}

// PollPaymentWorker follows a payment until it is final: it asks the wallet, and at expires_at
// closes the order there and cancels the payment.
type PollPaymentWorker struct {
	river.WorkerDefaults[PollPaymentArgs]
	Service  Service
	Now      func() time.Time
	Schedule Schedule
}

// Work asks once and snoozes while the payment is still pending; once it is due, expires it.
func (w *PollPaymentWorker) Work(ctx context.Context, job *river.Job[PollPaymentArgs]) error {
	p, err := w.Service.SyncPayment(ctx, job.Args.PaymentID)
	if err != nil {
		if payment.IsNotFound(err) {
			return river.JobCancel(err)
		}
		return err // River retries with backoff
	}
	if p.Status.Final() {
		return nil
	}
	now := w.Now()
	if !now.Before(p.ExpiresAt) {
		return expire(ctx, w.Service, w.Now, p.ID)
	}
	delay := w.Schedule.withDefaults().pollDelay(now.Sub(p.CreatedAt))
	return river.JobSnooze(max(min(delay, p.ExpiresAt.Sub(now)), time.Millisecond))
}

// ExpirePaymentWorker cancels a payment at its expiry, after closing it at the wallet.
type ExpirePaymentWorker struct {
	river.WorkerDefaults[ExpirePaymentArgs]
	Service Service
	Now     func() time.Time
}

// Work expires the payment.
func (w *ExpirePaymentWorker) Work(ctx context.Context, job *river.Job[ExpirePaymentArgs]) error {
	return expire(ctx, w.Service, w.Now, job.Args.PaymentID)
}

// expire closes and cancels a payment at its expiry. A wallet error is retried (the payment stays
// pending meanwhile, which is the truth: it may still be paid until the wallet has closed it).
func expire(ctx context.Context, svc Service, now func() time.Time, id string) error {
	p, err := svc.ExpirePayment(ctx, id)
	if err != nil {
		if payment.IsNotFound(err) {
			return river.JobCancel(err)
		}
		var pe *payment.Error
		if errors.As(err, &pe) && pe.Kind == payment.Conflict {
			return nil // paid meanwhile: the payment succeeded instead
		}
		return err
	}
	if p.Status == payment.StatusPending {
		// Not yet due (expires_at moved, or our clock is behind the job's): come back then.
		return river.JobSnooze(max(p.ExpiresAt.Sub(now()), time.Second))
	}
	return nil
}

// PollRefundWorker follows a refund until it is final.
type PollRefundWorker struct {
	river.WorkerDefaults[PollRefundArgs]
	Service  Service
	Now      func() time.Time
	Schedule Schedule
}

// Work asks once and snoozes while the refund is still pending.
func (w *PollRefundWorker) Work(ctx context.Context, job *river.Job[PollRefundArgs]) error {
	r, err := w.Service.SyncRefund(ctx, job.Args.RefundID)
	if err != nil {
		if payment.IsNotFound(err) {
			return river.JobCancel(err)
		}
		return err
	}
	if r.Status != payment.RefundPending {
		return nil
	}
	return river.JobSnooze(w.Schedule.withDefaults().pollDelay(w.Now().Sub(r.CreatedAt)))
}

// PurgeArgs asks for old housekeeping records to be deleted: idempotency keys past their 24 h,
// rejected notifications past their retention. It runs as a periodic job, which River enqueues
// on its elected leader only: one node of many does it.
type PurgeArgs struct{}

// Kind names the job.
func (PurgeArgs) Kind() string { return "housekeeping_purge" }

// InsertOpts keeps one purge queued at a time.
func (PurgeArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: time.Minute}}
}

// PurgeWorker runs Purge.
type PurgeWorker struct {
	river.WorkerDefaults[PurgeArgs]
	Purge func(ctx context.Context) error
}

// Work purges once; an error is retried by River.
func (w *PurgeWorker) Work(ctx context.Context, _ *river.Job[PurgeArgs]) error { return w.Purge(ctx) }

// Register adds the payment and refund workers to workers.
func Register(workers *river.Workers, svc Service, now func() time.Time, s Schedule) {
	river.AddWorker(workers, &PollPaymentWorker{Service: svc, Now: now, Schedule: s})
	river.AddWorker(workers, &ExpirePaymentWorker{Service: svc, Now: now})
	river.AddWorker(workers, &PollRefundWorker{Service: svc, Now: now, Schedule: s})
}
