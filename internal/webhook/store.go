package webhook

import (
	"context"
	"time"

	"github.com/hutong-pay/hutong/internal/payment"
)

// Store is the persistence webhooks need. A missing or other merchant's object is a
// payment.ErrNotFound error, never (nil, nil). merchantID "" finds an object whoever owns it;
// only the workers use that, never the handlers.
type Store interface {
	CreateEndpoint(ctx context.Context, e *Endpoint) error
	Endpoint(ctx context.Context, merchantID, id string) (*Endpoint, error)
	// ListEndpoints returns a merchant's endpoints, oldest first, disabled ones included.
	ListEndpoints(ctx context.Context, merchantID string) ([]*Endpoint, error)
	DeleteEndpoint(ctx context.Context, merchantID, id string) error
	// RotateSecret makes secret the endpoint's current secret and, in the same statement, the
	// former current secret its previous one, valid until previousExpiresAt. It returns the
	// endpoint as updated.
	RotateSecret(ctx context.Context, merchantID, id, secret string, previousExpiresAt time.Time) (*Endpoint, error)
	// DisableEndpoint stops deliveries to endpoint id (e.g. after a 410 Gone); disabling a
	// disabled endpoint keeps its first reason.
	DisableEndpoint(ctx context.Context, id, reason string, at time.Time) error

	// Event returns one event from the outbox the gateway writes.
	Event(ctx context.Context, merchantID, id string) (*payment.Event, error)

	RecordAttempt(ctx context.Context, a *Attempt) error
	// ListAttempts returns an event's delivery attempts to every endpoint, oldest first.
	ListAttempts(ctx context.Context, eventID string) ([]*Attempt, error)
}
