package webhook

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/hutong-pay/hutong/internal/payment"
)

// memStore is an in-memory Store for the tests, with the semantics the SQL stores must have.
type memStore struct {
	mu        sync.Mutex
	endpoints []*Endpoint // creation order
	events    map[string]*payment.Event
	attempts  []*Attempt
	failNext  error // returned once by the next RecordAttempt
}

var _ Store = (*memStore)(nil)

func newMemStore() *memStore { return &memStore{events: map[string]*payment.Event{}} }

func clone(e *Endpoint) *Endpoint {
	c := *e
	c.Events = slices.Clone(e.Events)
	return &c
}

func (s *memStore) addEvent(e *payment.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := *e
	s.events[e.ID] = &c
}

func (s *memStore) CreateEndpoint(_ context.Context, e *Endpoint) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endpoints = append(s.endpoints, clone(e))
	return nil
}

func (s *memStore) find(merchantID, id string) *Endpoint {
	for _, e := range s.endpoints {
		if e.ID == id && (merchantID == "" || e.MerchantID == merchantID) {
			return e
		}
	}
	return nil
}

func (s *memStore) Endpoint(_ context.Context, merchantID, id string) (*Endpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.find(merchantID, id); e != nil {
		return clone(e), nil
	}
	return nil, payment.ErrNotFound("webhook endpoint", id)
}

func (s *memStore) ListEndpoints(_ context.Context, merchantID string) ([]*Endpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Endpoint
	for _, e := range s.endpoints {
		if e.MerchantID == merchantID {
			out = append(out, clone(e))
		}
	}
	return out, nil
}

func (s *memStore) DeleteEndpoint(_ context.Context, merchantID, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, e := range s.endpoints {
		if e.ID == id && e.MerchantID == merchantID {
			s.endpoints = slices.Delete(s.endpoints, i, i+1)
			return nil
		}
	}
	return payment.ErrNotFound("webhook endpoint", id)
}

func (s *memStore) RotateSecret(_ context.Context, merchantID, id, secret string, previousExpiresAt time.Time) (*Endpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.find(merchantID, id)
	if e == nil {
		return nil, payment.ErrNotFound("webhook endpoint", id)
	}
	e.PreviousSecret, e.Secret, e.PreviousSecretExpiresAt = e.Secret, secret, previousExpiresAt
	return clone(e), nil
}

func (s *memStore) DisableEndpoint(_ context.Context, id, reason string, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.find("", id)
	if e == nil {
		return payment.ErrNotFound("webhook endpoint", id)
	}
	if !e.Disabled {
		e.Disabled, e.DisabledReason = true, reason
	}
	return nil
}

func (s *memStore) Event(_ context.Context, merchantID, id string) (*payment.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.events[id]
	if !ok || (merchantID != "" && e.MerchantID != merchantID) {
		return nil, payment.ErrNotFound("event", id)
	}
	c := *e
	return &c, nil
}

func (s *memStore) RecordAttempt(_ context.Context, a *Attempt) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failNext; err != nil {
		s.failNext = nil
		return err
	}
	c := *a
	s.attempts = append(s.attempts, &c)
	return nil
}

func (s *memStore) ListAttempts(_ context.Context, eventID string) ([]*Attempt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Attempt
	for _, a := range s.attempts {
		if a.EventID == eventID {
			c := *a
			out = append(out, &c)
		}
	}
	return out, nil
}

func (s *memStore) allAttempts() []*Attempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.attempts)
}
