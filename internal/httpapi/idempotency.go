package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

// maxIdempotencyKey is the longest Idempotency-Key accepted, as at Stripe.
const maxIdempotencyKey = 255

// idempotent gives a POST Stripe's idempotency semantics when it carries an Idempotency-Key:
// the first response (2xx or 4xx) is stored and replayed byte for byte to any retry with the
// same key and request; the same key with another request is a 422; a retry while the first is
// still running is a 409. 5xx answers (including wallet failures, 502) release the key, because
// the outcome may change on retry. Keys are scoped per merchant.
func (a *api) idempotent(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		if key == "" {
			next.ServeHTTP(w, r)
			return
		}
		if len(key) > maxIdempotencyKey {
			a.writeError(w, r, payment.InvalidParam("Idempotency-Key", "the Idempotency-Key header must be at most %d characters", maxIdempotencyKey))
			return
		}
		body, err := readBody(r)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		apiKey := keyFrom(r.Context())
		merchantID := apiKey.MerchantID
		// Test and live requests are separate worlds: a key used in one must never replay the
		// other's response, so the stored key carries the mode.
		key = modePrefix(apiKey.Livemode) + key
		hash := requestHash(r.Method, r.URL.Path, body)

		rec, created, err := a.store.BeginIdempotent(r.Context(), merchantID, key, hash, a.now().UTC(), a.staleAfter)
		if err != nil {
			a.writeError(w, r, fmt.Errorf("idempotency: begin: %w", err))
			return
		}
		if !created {
			a.replay(w, r, rec, hash)
			return
		}

		capture := &captureWriter{ResponseWriter: w}
		finished := false
		// The outcome must be recorded even if the client has gone away meanwhile.
		ctx := context.WithoutCancel(r.Context())
		defer func() {
			if finished {
				return
			}
			// A panic: release the key so that a retry can run, then let the recovery middleware answer.
			if err := a.store.AbortIdempotent(ctx, merchantID, key); err != nil {
				a.logIdempotency(r, "abort after panic", err)
			}
		}()
		next.ServeHTTP(capture, r)
		finished = true

		status := capture.status
		if status == 0 {
			status = http.StatusOK
		}
		if status >= 500 {
			if err := a.store.AbortIdempotent(ctx, merchantID, key); err != nil {
				a.logIdempotency(r, "abort", err)
			}
			return
		}
		if err := a.store.FinishIdempotent(ctx, merchantID, key, status, capture.body.Bytes()); err != nil {
			a.logIdempotency(r, "finish", err)
			// Without a stored response the key would look in flight until it goes stale; freeing it
			// lets the client's retry run (and, for creations, possibly create again, which it would
			// without a key too).
			if err := a.store.AbortIdempotent(ctx, merchantID, key); err != nil {
				a.logIdempotency(r, "abort after failed finish", err)
			}
		}
	})
}

func (a *api) replay(w http.ResponseWriter, r *http.Request, rec *gateway.IdempotencyRecord, hash string) {
	switch {
	case rec.RequestHash != hash:
		a.writeError(w, r, &payment.Error{Kind: payment.Unprocessable, Code: codeIdempotencyReused, Param: "Idempotency-Key",
			Message: "this Idempotency-Key was already used with a different request; use a new key for a new request"})
	case rec.Status == 0:
		a.writeError(w, r, &payment.Error{Kind: payment.Conflict, Code: codeIdempotencyInFlight, Param: "Idempotency-Key",
			Message: "a request with this Idempotency-Key is still being processed; retry later"})
	default:
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Idempotent-Replayed", "true")
		w.WriteHeader(rec.Status)
		_, _ = w.Write(rec.Body)
	}
}

func (a *api) logIdempotency(r *http.Request, what string, err error) {
	a.log.LogAttrs(r.Context(), slog.LevelError, "idempotency "+what, slog.String("request_id", requestIDFrom(r.Context())),
		slog.String("route", routeFrom(r.Context())), slog.String("err", err.Error()))
}

func modePrefix(livemode bool) string {
	if livemode {
		return "live:"
	}
	return "test:"
}

// requestHash identifies a request for idempotency: the same key may only be replayed for the
// same method, path and body.
func requestHash(method, path string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(method))
	h.Write([]byte{0})
	h.Write([]byte(path))
	h.Write([]byte{0})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// captureWriter passes a response through and keeps a copy of its status and body.
type captureWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (c *captureWriter) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
	c.ResponseWriter.WriteHeader(status)
}

func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	c.body.Write(b)
	return c.ResponseWriter.Write(b)
}

func (c *captureWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// PurgeIdempotency deletes idempotency records older than IdempotencyTTL; the caller runs it
// periodically (hourly is plenty). It returns how many were deleted.
func PurgeIdempotency(ctx context.Context, store gateway.Store, now time.Time) (int64, error) {
	n, err := store.PurgeIdempotent(ctx, now.Add(-IdempotencyTTL))
	if err != nil {
		return 0, fmt.Errorf("purge idempotency records: %w", err)
	}
	return n, nil
}

// idempotencyScope names the request's Idempotency-Key as the use cases see it: the key within
// its mode (keys are scoped per merchant and mode), or "" without a key.
func idempotencyScope(r *http.Request) string {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		return ""
	}
	mode := "test"
	if keyFrom(r.Context()).Livemode {
		mode = "live"
	}
	return mode + ":" + key
}
