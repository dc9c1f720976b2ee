package webhook

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/hutong-pay/hutong/internal/payment"
)

// Queue is the River queue webhook jobs run in, apart from the gateway's own jobs so that slow
// receivers cannot hold them up. The River client must list it in Config.Queues.
const Queue = "webhooks"

// DeliverArgs asks for one event to be delivered to one endpoint.
type DeliverArgs struct {
	EventID    string `json:"event_id"`
	EndpointID string `json:"endpoint_id"`
	// Redelivery is empty for the delivery that follows the event and a fresh id for each
	// manual redelivery: jobs are unique by their arguments, which keeps a repeated fan-out from
	// delivering twice without stopping a merchant from asking again.
	Redelivery string `json:"redelivery,omitempty"`
}

func (DeliverArgs) Kind() string { return "webhook_deliver" }

func (DeliverArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, MaxAttempts: MaxAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// FanOutArgs asks for an event to be delivered to every endpoint subscribed to it. The store
// inserts it in the transaction that writes the event (the outbox).
type FanOutArgs struct {
	EventID string `json:"event_id"`
}

func (FanOutArgs) Kind() string { return "webhook_fanout" }

func (FanOutArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// Inserter enqueues jobs. A *river.Client fits through InserterFunc:
//
//	webhook.InserterFunc(func(ctx context.Context, p []river.InsertManyParams) error {
//		_, err := client.InsertMany(ctx, p)
//		return err
//	})
type Inserter interface {
	InsertMany(ctx context.Context, params []river.InsertManyParams) error
}

// InserterFunc adapts a function to Inserter.
type InserterFunc func(ctx context.Context, params []river.InsertManyParams) error

func (f InserterFunc) InsertMany(ctx context.Context, params []river.InsertManyParams) error {
	return f(ctx, params)
}

// DeliverWorker works DeliverArgs: one attempt per run. A failed attempt returns an error so
// that River counts it and calls NextRetry, which returns the time the Dispatcher chose (the
// schedule with jitter, or later if the receiver sent Retry-After). A 410 Gone or an exhausted
// schedule cancels the job: there is nothing left to try.
type DeliverWorker struct {
	river.WorkerDefaults[DeliverArgs]
	dispatcher *Dispatcher
	// retryAt carries the Dispatcher's chosen time from Work to NextRetry, which River calls
	// right after Work returns, in the same process, with the same job.
	retryAt sync.Map // job id → time.Time
}

// NewDeliverWorker returns the worker for DeliverArgs.
func NewDeliverWorker(d *Dispatcher) *DeliverWorker { return &DeliverWorker{dispatcher: d} }

func (w *DeliverWorker) Work(ctx context.Context, job *river.Job[DeliverArgs]) error {
	out, err := w.dispatcher.Deliver(ctx, job.Args.EventID, job.Args.EndpointID, job.Attempt)
	if err != nil {
		return err
	}
	switch out.Result {
	case Delivered, Skipped:
		return nil
	case Gone:
		return river.JobCancel(fmt.Errorf("webhook: endpoint %s answered 410 Gone and was disabled", job.Args.EndpointID))
	case Exhausted:
		return river.JobCancel(fmt.Errorf("webhook: gave up after attempt %d: %s", job.Attempt, out.Attempt.Error))
	case Retry:
		if job.Attempt < job.MaxAttempts { // River calls NextRetry only then
			w.retryAt.Store(job.ID, out.RetryAt)
		}
		return fmt.Errorf("webhook: attempt %d failed: %s", job.Attempt, out.Attempt.Error)
	}
	return fmt.Errorf("webhook: unexpected result %q", out.Result)
}

// NextRetry returns when River should run the job again: the Dispatcher's time after a failed
// delivery, else (the attempt could not be made, e.g. the store was down) the schedule's.
func (w *DeliverWorker) NextRetry(job *river.Job[DeliverArgs]) time.Time {
	if t, ok := w.retryAt.LoadAndDelete(job.ID); ok {
		return t.(time.Time)
	}
	d, ok := Backoff(job.Attempt, job.Args.EventID+"/"+job.Args.EndpointID)
	if !ok {
		d = RetrySchedule[len(RetrySchedule)-1]
	}
	return w.dispatcher.now().Add(d)
}

// Timeout leaves room for the receiver's timeout plus the store calls around it.
func (w *DeliverWorker) Timeout(*river.Job[DeliverArgs]) time.Duration {
	return w.dispatcher.timeout + 15*time.Second
}

// FanOutWorker works FanOutArgs: it enqueues one DeliverArgs per enabled endpoint of the
// event's merchant that subscribes to the event's type.
type FanOutWorker struct {
	river.WorkerDefaults[FanOutArgs]
	store    Store
	inserter Inserter
}

// NewFanOutWorker returns the worker for FanOutArgs.
func NewFanOutWorker(s Store, ins Inserter) *FanOutWorker {
	return &FanOutWorker{store: s, inserter: ins}
}

func (w *FanOutWorker) Work(ctx context.Context, job *river.Job[FanOutArgs]) error {
	ev, err := w.store.Event(ctx, "", job.Args.EventID)
	if payment.IsNotFound(err) {
		return river.JobCancel(fmt.Errorf("webhook: fan out: %w", err))
	}
	if err != nil {
		return fmt.Errorf("webhook: fan out %s: %w", job.Args.EventID, err)
	}
	_, err = enqueue(ctx, w.store, w.inserter, ev, "", "")
	return err
}

// enqueue inserts a DeliverArgs for ev to each enabled endpoint of its merchant and mode subscribed
// to its type (or only to endpoint onlyID, when set), and returns their ids.
func enqueue(ctx context.Context, s Store, ins Inserter, ev *payment.Event, onlyID, redelivery string) ([]string, error) {
	eps, err := s.ListEndpoints(ctx, ev.MerchantID)
	if err != nil {
		return nil, fmt.Errorf("webhook: list endpoints of %s: %w", ev.MerchantID, err)
	}
	var ids []string
	var params []river.InsertManyParams
	for _, ep := range eps {
		if ep.Disabled || ep.Livemode != ev.Livemode || !ep.Subscribes(ev.Type) || (onlyID != "" && ep.ID != onlyID) {
			continue
		}
		ids = append(ids, ep.ID)
		params = append(params, river.InsertManyParams{Args: DeliverArgs{EventID: ev.ID, EndpointID: ep.ID, Redelivery: redelivery}})
	}
	if len(params) == 0 {
		return nil, nil
	}
	if err := ins.InsertMany(ctx, params); err != nil {
		return nil, fmt.Errorf("webhook: enqueue deliveries of %s: %w", ev.ID, err)
	}
	return ids, nil
}
