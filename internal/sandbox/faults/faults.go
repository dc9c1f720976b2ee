// Package faults holds the sandbox's fault-injection settings: what fraction of notifications are
// dropped, duplicated, delayed, reordered or forged, and how often and how slowly wallet APIs fail.
package faults

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync"
	"time"
)

// Settings are the faults in force. The zero value is all off.
type Settings struct {
	Notifications NotificationFaults `json:"notifications"`
	API           APIFaults          `json:"api"`
}

// NotificationFaults shape how wallet notifications reach the merchant.
type NotificationFaults struct {
	DropRate      float64 `json:"drop_rate"`      // attempt not sent; counts as failed and is retried on schedule
	DuplicateRate float64 `json:"duplicate_rate"` // delivered twice
	DelayMS       int     `json:"delay_ms"`       // extra delay before each attempt
	ReorderRate   float64 `json:"reorder_rate"`   // held back so a later notification overtakes it
	ForgedRate    float64 `json:"forged_rate"`    // a mis-signed probe is sent before the real one
}

// APIFaults shape the wallets' API answers.
type APIFaults struct {
	ErrorRate float64 `json:"error_rate"` // the wallet's system error instead of an answer
	LatencyMS int     `json:"latency_ms"` // added to every API call
}

// Validate reports the first setting out of range.
func (s Settings) Validate() error {
	rates := []struct {
		name string
		v    float64
	}{
		{"notifications.drop_rate", s.Notifications.DropRate},
		{"notifications.duplicate_rate", s.Notifications.DuplicateRate},
		{"notifications.reorder_rate", s.Notifications.ReorderRate},
		{"notifications.forged_rate", s.Notifications.ForgedRate},
		{"api.error_rate", s.API.ErrorRate},
	}
	for _, r := range rates {
		if !(r.v >= 0 && r.v <= 1) { // also catches NaN
			return fmt.Errorf("faults: %s must be between 0 and 1, got %v", r.name, r.v)
		}
	}
	const maxDelay = 10 * 60 * 1000
	if s.Notifications.DelayMS < 0 || s.Notifications.DelayMS > maxDelay {
		return fmt.Errorf("faults: notifications.delay_ms must be between 0 and %d, got %d", maxDelay, s.Notifications.DelayMS)
	}
	if s.API.LatencyMS < 0 || s.API.LatencyMS > maxDelay {
		return fmt.Errorf("faults: api.latency_ms must be between 0 and %d, got %d", maxDelay, s.API.LatencyMS)
	}
	return nil
}

// Injector holds the settings in force; it is safe for concurrent use.
type Injector struct {
	mu sync.RWMutex
	s  Settings
}

// New returns an injector with every fault off.
func New() *Injector { return &Injector{} }

// Settings returns the settings in force.
func (f *Injector) Settings() Settings {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.s
}

// Set replaces the settings after validating them.
func (f *Injector) Set(s Settings) error {
	if err := s.Validate(); err != nil {
		return err
	}
	f.mu.Lock()
	f.s = s
	f.mu.Unlock()
	return nil
}

// Roll reports true with probability rate.
func (f *Injector) Roll(rate float64) bool {
	if rate <= 0 {
		return false
	}
	if rate >= 1 {
		return true
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return float64(binary.BigEndian.Uint64(b[:])>>11)/(1<<53) < rate
}

// API applies the API faults to one wallet call: it waits the configured latency (or until ctx is
// done) and reports whether the call must fail with the wallet's system error.
func (f *Injector) API(ctx context.Context) (fail bool) {
	s := f.Settings().API
	if s.LatencyMS > 0 {
		t := time.NewTimer(time.Duration(s.LatencyMS) * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return true
		case <-t.C:
		}
	}
	return f.Roll(s.ErrorRate)
}
