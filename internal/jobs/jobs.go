// Package jobs is the background work that must not be forgotten: following pending payments and
// refunds at the wallet until they are final (recovering lost notifications), closing payments at
// their expiry, and housekeeping. Jobs are River jobs, inserted in the same transaction as the
// state change that calls for them, so a crash can lose neither.
package jobs

import (
	"context"
	"errors"
	"time"

	"github.com/riverqueue/river"

	"github.com/hutong-pay/hutong/internal/payment"
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

// FirstPoll is when a new payment is first asked about: long enough for a quick buyer's
// notification to arrive first, short enough that a lost one is noticed soon.
const FirstPoll = 30 * time.Second

// pollDelay spaces the questions to the wallet by the age of the object: often while a buyer is
// likely paying, rarely later, never more than every 10 minutes apart.
func pollDelay(age time.Duration) time.Duration {
	return min(max(age/4, 10*time.Second), 10*time.Minute)
}

// PaymentJobs are the jobs a new payment needs: polls for its truth and its expiry.
func PaymentJobs(p *payment.Payment, now time.Time) []river.InsertManyParams {
	return []river.InsertManyParams{
		{Args: PollPaymentArgs{PaymentID: p.ID}, InsertOpts: &river.InsertOpts{ScheduledAt: now.Add(FirstPoll)}},
		{Args: ExpirePaymentArgs{PaymentID: p.ID}, InsertOpts: &river.InsertOpts{ScheduledAt: p.ExpiresAt}},
	}
}

// RefundJobs are the jobs a new refund needs.
func RefundJobs(r *payment.Refund, now time.Time) []river.InsertManyParams {
	return []river.InsertManyParams{
		{Args: PollRefundArgs{RefundID: r.ID}, InsertOpts: &river.InsertOpts{ScheduledAt: now.Add(10 * time.Second)}},
	}
}

// PollPaymentWorker follows a payment until it is final or expired (then the expiry job owns it).
type PollPaymentWorker struct {
	river.WorkerDefaults[PollPaymentArgs]
	Service Service
	Now     func() time.Time
}

// Work asks once and snoozes while the payment is still pending.
func (w *PollPaymentWorker) Work(ctx context.Context, job *river.Job[PollPaymentArgs]) error {
	p, err := w.Service.SyncPayment(ctx, job.Args.PaymentID)
	if err != nil {
		if payment.IsNotFound(err) {
			return river.JobCancel(err)
		}
		return err // River retries with backoff
	}
	now := w.Now()
	if p.Status.Final() || !now.Before(p.ExpiresAt) {
		return nil
	}
	return river.JobSnooze(pollDelay(now.Sub(p.CreatedAt)))
}

// ExpirePaymentWorker cancels a payment at its expiry, after closing it at the wallet.
type ExpirePaymentWorker struct {
	river.WorkerDefaults[ExpirePaymentArgs]
	Service Service
	Now     func() time.Time
}

// Work expires the payment; a wallet error is retried (the payment stays pending meanwhile,
// which is the truth: it may still be paid until the wallet has closed it).
func (w *ExpirePaymentWorker) Work(ctx context.Context, job *river.Job[ExpirePaymentArgs]) error {
	p, err := w.Service.ExpirePayment(ctx, job.Args.PaymentID)
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
		return river.JobSnooze(max(p.ExpiresAt.Sub(w.Now()), time.Second))
	}
	return nil
}

// PollRefundWorker follows a refund until it is final.
type PollRefundWorker struct {
	river.WorkerDefaults[PollRefundArgs]
	Service Service
	Now     func() time.Time
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
	return river.JobSnooze(pollDelay(w.Now().Sub(r.CreatedAt)))
}

// Register adds the workers to workers.
func Register(workers *river.Workers, svc Service, now func() time.Time) {
	river.AddWorker(workers, &PollPaymentWorker{Service: svc, Now: now})
	river.AddWorker(workers, &ExpirePaymentWorker{Service: svc, Now: now})
	river.AddWorker(workers, &PollRefundWorker{Service: svc, Now: now})
}
