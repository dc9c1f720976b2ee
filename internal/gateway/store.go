package gateway

import (
	"context"
	"time"

	"github.com/hutong-pay/hutong/internal/payment"
)

// Store is the persistence the use cases need. Every method that changes state owns its
// transaction; the callbacks it takes run inside it and must not call out to wallets.
type Store interface {
	CreateMerchant(ctx context.Context, m *payment.Merchant) error
	Merchant(ctx context.Context, id string) (*payment.Merchant, error)
	CreateAPIKey(ctx context.Context, k *payment.APIKey) error
	// APIKeyByHash returns the key with that secret hash, revoked or not.
	APIKeyByHash(ctx context.Context, hash []byte) (*payment.APIKey, error)
	ListAPIKeys(ctx context.Context, merchantID string) ([]*payment.APIKey, error)
	RevokeAPIKey(ctx context.Context, id string, at time.Time) error

	// CreatePayment stores p and enqueues jobs, in one transaction.
	CreatePayment(ctx context.Context, p *payment.Payment, jobs []Job) error
	// Payment returns a merchant's payment; merchantID "" finds it whoever owns it (internal use only).
	Payment(ctx context.Context, merchantID, id string) (*payment.Payment, error)
	PaymentByOutTradeNo(ctx context.Context, provider payment.Provider, outTradeNo string) (*payment.Payment, error)
	// ListPayments returns up to f.Limit payments, newest first, after f.StartingAfter.
	ListPayments(ctx context.Context, merchantID string, f PaymentFilter) ([]*payment.Payment, error)
	// UpdatePayment locks payment id, lets fn change it, and writes it with the events and jobs fn
	// returns, all in one transaction. An error from fn rolls everything back and is returned.
	UpdatePayment(ctx context.Context, id string, fn func(p *payment.Payment) (Effects, error)) (*payment.Payment, error)

	// CreateRefund locks the refund's payment, lets fn check and reserve the amount on it, then
	// writes the payment, inserts r and enqueues jobs, in one transaction: concurrent refunds
	// cannot over-refund. The values of r are read after fn, which may set its amount.
	CreateRefund(ctx context.Context, r *payment.Refund, jobs []Job, fn func(p *payment.Payment) error) error
	Refund(ctx context.Context, merchantID, id string) (*payment.Refund, error)
	RefundByOutRefundNo(ctx context.Context, provider payment.Provider, outRefundNo string) (*payment.Refund, error)
	ListRefunds(ctx context.Context, paymentID string) ([]*payment.Refund, error)
	// UpdateRefund locks refund id and its payment, lets fn change both, and writes them with the
	// events and jobs fn returns in one transaction.
	UpdateRefund(ctx context.Context, id string, fn func(r *payment.Refund, p *payment.Payment) (Effects, error)) (*payment.Refund, error)

	// ListEvents returns up to f.Limit of a merchant's events, newest first, after f.StartingAfter.
	ListEvents(ctx context.Context, merchantID string, f EventFilter) ([]*payment.Event, error)

	// BeginIdempotent claims (merchantID, key) for a request with hash. When the key is new, or
	// its earlier claim is stale (in flight for longer than staleAfter: the process died), it
	// returns created=true. Otherwise it returns the existing record.
	BeginIdempotent(ctx context.Context, merchantID, key, hash string, now time.Time, staleAfter time.Duration) (rec *IdempotencyRecord, created bool, err error)
	// FinishIdempotent stores the response to replay for (merchantID, key).
	FinishIdempotent(ctx context.Context, merchantID, key string, status int, body []byte) error
	// AbortIdempotent forgets an in-flight claim so that the request may be retried.
	AbortIdempotent(ctx context.Context, merchantID, key string) error
	// PurgeIdempotent deletes records created before t.
	PurgeIdempotent(ctx context.Context, before time.Time) (int64, error)

	Close() error
}

// Effects are what a state change writes besides the changed rows, in its transaction: the
// events it reports (the outbox) and the background jobs it calls for.
type Effects struct {
	Events []payment.Event
	Jobs   []Job
}

// Job is background work enqueued with a state change, so that a crash can lose neither. The
// stores insert it into their job queue (River) in the change's transaction; Args carries the
// job's kind and its own insert options (queue, uniqueness), as River's job arguments do.
type Job struct {
	Args        JobArgs
	ScheduledAt time.Time // zero: as soon as possible
}

// JobArgs are a job's JSON-encodable arguments; Kind names the worker that runs it.
type JobArgs interface {
	Kind() string
}

// PaymentFilter narrows ListPayments.
type PaymentFilter struct {
	Livemode      bool // only payments of this mode: a test key never sees live ones
	Reference     string
	Status        payment.Status
	Limit         int
	StartingAfter string // a payment id
}

// EventFilter narrows ListEvents.
type EventFilter struct {
	Livemode      bool // only events of this mode
	Type          payment.EventType
	Limit         int
	StartingAfter string // an event id
}

// IdempotencyRecord is a stored request key and, once finished, its response.
type IdempotencyRecord struct {
	MerchantID  string
	Key         string
	RequestHash string
	Status      int // 0 while the first request is in flight
	Body        []byte
	CreatedAt   time.Time
	LockedAt    time.Time
}

// RejectedNotification is a wallet notification that changed nothing (forged, stale, mismatched,
// for an unknown payment), kept for operators. Fields holds the notification's identifiers only,
// never its body, signature or secrets.
type RejectedNotification struct {
	Provider payment.Provider
	Kind     string // the connector's class, e.g. "forged", "mismatch"
	Reason   string
	Fields   map[string]string
	At       time.Time
}
