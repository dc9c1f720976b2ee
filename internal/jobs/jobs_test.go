package jobs

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
	"github.com/hutong-pay/hutong/internal/webhook"
)

var t0 = time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)

func TestPlanner(t *testing.T) {
	pl := Planner{}
	p := &payment.Payment{ID: "pay_1", Provider: payment.Alipay, ExpiresAt: t0.Add(2 * time.Hour)}
	// With a wallet one job follows the payment: it polls, then expires it.
	poll := gateway.Job{Args: PollPaymentArgs{PaymentID: "pay_1"}, ScheduledAt: t0.Add(30 * time.Second)}
	if jobs := pl.PaymentCreated(p, t0); len(jobs) != 1 || jobs[0] != poll {
		t.Fatalf("payment with a wallet: %+v, want %+v", jobs, poll)
	}
	// Without a wallet nobody can pay yet: only the expiry, and the follow-up once the buyer chooses.
	p.Provider = ""
	expiry := gateway.Job{Args: ExpirePaymentArgs{PaymentID: "pay_1"}, ScheduledAt: p.ExpiresAt}
	if jobs := pl.PaymentCreated(p, t0); len(jobs) != 1 || jobs[0] != expiry {
		t.Fatalf("payment without a wallet: %+v, want only the expiry", jobs)
	}
	if jobs := pl.MethodChosen(p, t0.Add(time.Minute)); len(jobs) != 1 || jobs[0] != (gateway.Job{Args: PollPaymentArgs{PaymentID: "pay_1"}, ScheduledAt: t0.Add(90 * time.Second)}) {
		t.Fatalf("method chosen: %+v", jobs)
	}
	// A payment expiring before the first poll is followed up at its expiry.
	short := &payment.Payment{ID: "pay_2", Provider: payment.WeChatPay, ExpiresAt: t0.Add(10 * time.Second)}
	if jobs := pl.PaymentCreated(short, t0); len(jobs) != 1 || jobs[0].ScheduledAt != short.ExpiresAt {
		t.Fatalf("short payment: %+v, want its follow-up at its expiry", jobs)
	}
	fast := Planner{Schedule: Schedule{FirstPoll: time.Second, FirstRefundPoll: 2 * time.Second}}
	if jobs := fast.RefundCreated(&payment.Refund{ID: "re_1"}, t0); len(jobs) != 1 || jobs[0] != (gateway.Job{Args: PollRefundArgs{RefundID: "re_1"}, ScheduledAt: t0.Add(2 * time.Second)}) {
		t.Fatalf("refund: %+v", jobs)
	}
	events := []payment.Event{{ID: "evt_1"}, {ID: "evt_2"}}
	if jobs := pl.EventsWritten(events); len(jobs) != 2 || jobs[1] != (gateway.Job{Args: webhook.FanOutArgs{EventID: "evt_2"}}) {
		t.Fatalf("events: %+v", jobs)
	}
	// The poll is unique per payment, so that creation and placement queue it once.
	var args river.JobArgs = PollPaymentArgs{}
	if opts := args.(river.JobArgsWithInsertOpts).InsertOpts(); !opts.UniqueOpts.ByArgs {
		t.Fatal("payment polls are not unique by payment")
	}
}

func TestPollDelay(t *testing.T) {
	s := Schedule{}.withDefaults()
	for age, want := range map[time.Duration]time.Duration{
		0: 10 * time.Second, 20 * time.Second: 10 * time.Second, 4 * time.Minute: time.Minute, 24 * time.Hour: 10 * time.Minute,
	} {
		if got := s.pollDelay(age); got != want {
			t.Errorf("delay at age %s: %s, want %s", age, got, want)
		}
	}
	s = Schedule{MinPoll: time.Second, MaxPoll: 2 * time.Second}.withDefaults()
	if got := s.pollDelay(time.Hour); got != 2*time.Second {
		t.Errorf("bounded delay %s, want 2s", got)
	}
}

// fakeService answers as the gateway would, from fixed objects.
type fakeService struct {
	payment *payment.Payment
	refund  *payment.Refund
	err     error
	expired int // ExpirePayment calls
}

func (f *fakeService) SyncPayment(context.Context, string) (*payment.Payment, error) {
	return f.payment, f.err
}
func (f *fakeService) ExpirePayment(context.Context, string) (*payment.Payment, error) {
	f.expired++
	return f.payment, f.err
}
func (f *fakeService) SyncRefund(context.Context, string) (*payment.Refund, error) {
	return f.refund, f.err
}

// expiringService cancels the payment when asked to expire it.
type expiringService struct{ *fakeService }

func (e *expiringService) ExpirePayment(ctx context.Context, id string) (*payment.Payment, error) {
	e.expired++
	p := *e.payment
	p.Status = payment.StatusCanceled
	return &p, e.err
}

func job[T river.JobArgs](args T) *river.Job[T] {
	return &river.Job[T]{JobRow: &rivertype.JobRow{ID: 1, Attempt: 1}, Args: args}
}

func snoozed(err error) (time.Duration, bool) {
	var s *river.JobSnoozeError
	if errors.As(err, &s) {
		return s.Duration, true
	}
	return 0, false
}

func cancelled(err error) bool {
	var c *river.JobCancelError
	return errors.As(err, &c)
}

func TestPollPaymentWorker(t *testing.T) {
	now := t0.Add(8 * time.Minute)
	svc := &fakeService{payment: &payment.Payment{ID: "pay_1", Status: payment.StatusPending, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}}
	w := &PollPaymentWorker{Service: svc, Now: func() time.Time { return now }}
	if d, ok := snoozed(w.Work(context.Background(), job(PollPaymentArgs{PaymentID: "pay_1"}))); !ok || d != 2*time.Minute {
		t.Fatalf("pending payment: snooze %s %v, want 2m (a quarter of its age)", d, ok)
	}
	svc.payment.Status = payment.StatusSucceeded
	if err := w.Work(context.Background(), job(PollPaymentArgs{PaymentID: "pay_1"})); err != nil {
		t.Fatalf("final payment: %v, want done", err)
	}
	// Close to its expiry it comes back at the expiry, not later.
	svc.payment.Status, now = payment.StatusPending, t0.Add(time.Hour-30*time.Second)
	if d, ok := snoozed(w.Work(context.Background(), job(PollPaymentArgs{PaymentID: "pay_1"}))); !ok || d != 30*time.Second {
		t.Fatalf("payment about to expire: snooze %s %v, want 30s", d, ok)
	}
	// Past its expiry the same job expires it.
	now = t0.Add(2 * time.Hour)
	expirer := &expiringService{fakeService: svc}
	w.Service = expirer
	if err := w.Work(context.Background(), job(PollPaymentArgs{PaymentID: "pay_1"})); err != nil || expirer.expired != 1 {
		t.Fatalf("expired payment: %v after %d expiries, want done after one", err, expirer.expired)
	}
	w.Service = svc
	svc.err = payment.ErrNotFound("payment", "pay_1")
	if err := w.Work(context.Background(), job(PollPaymentArgs{PaymentID: "pay_1"})); !cancelled(err) {
		t.Fatalf("missing payment: %v, want cancelled", err)
	}
	svc.err = errors.New("wallet down")
	if err := w.Work(context.Background(), job(PollPaymentArgs{PaymentID: "pay_1"})); err == nil || cancelled(err) {
		t.Fatalf("wallet error: %v, want an error River retries", err)
	}
}

func TestExpirePaymentWorker(t *testing.T) {
	now := t0.Add(time.Hour - 10*time.Second)
	svc := &fakeService{payment: &payment.Payment{ID: "pay_1", Status: payment.StatusPending, ExpiresAt: t0.Add(time.Hour)}}
	w := &ExpirePaymentWorker{Service: svc, Now: func() time.Time { return now }}
	if d, ok := snoozed(w.Work(context.Background(), job(ExpirePaymentArgs{PaymentID: "pay_1"}))); !ok || d != 10*time.Second {
		t.Fatalf("not yet due: snooze %s %v, want 10s", d, ok)
	}
	svc.payment.Status = payment.StatusCanceled
	if err := w.Work(context.Background(), job(ExpirePaymentArgs{PaymentID: "pay_1"})); err != nil {
		t.Fatalf("expired: %v", err)
	}
	// Paid meanwhile: the gateway says so with a conflict, and the job is done.
	svc.err = payment.Errorf(payment.Conflict, "payment_state", "paid")
	if err := w.Work(context.Background(), job(ExpirePaymentArgs{PaymentID: "pay_1"})); err != nil {
		t.Fatalf("paid meanwhile: %v", err)
	}
	svc.err = &payment.Error{Kind: payment.ProviderError, Code: "provider_unavailable"}
	if err := w.Work(context.Background(), job(ExpirePaymentArgs{PaymentID: "pay_1"})); err == nil || cancelled(err) {
		t.Fatalf("wallet error: %v, want an error River retries", err)
	}
}

func TestPollRefundWorker(t *testing.T) {
	now := t0.Add(40 * time.Second)
	svc := &fakeService{refund: &payment.Refund{ID: "re_1", Status: payment.RefundPending, CreatedAt: t0}}
	w := &PollRefundWorker{Service: svc, Now: func() time.Time { return now }, Schedule: Schedule{MinPoll: time.Second}}
	if d, ok := snoozed(w.Work(context.Background(), job(PollRefundArgs{RefundID: "re_1"}))); !ok || d != 10*time.Second {
		t.Fatalf("pending refund: snooze %s %v, want 10s", d, ok)
	}
	svc.refund.Status = payment.RefundFailed
	if err := w.Work(context.Background(), job(PollRefundArgs{RefundID: "re_1"})); err != nil {
		t.Fatalf("final refund: %v", err)
	}
	svc.err = payment.ErrNotFound("refund", "re_1")
	if err := w.Work(context.Background(), job(PollRefundArgs{RefundID: "re_1"})); !cancelled(err) {
		t.Fatalf("missing refund: %v, want cancelled", err)
	}
}

func TestPurgeWorker(t *testing.T) {
	calls := 0
	w := &PurgeWorker{Purge: func(context.Context) error { calls++; return nil }}
	if err := w.Work(context.Background(), job(PurgeArgs{})); err != nil || calls != 1 {
		t.Fatalf("purge: %v, %d calls", err, calls)
	}
}
