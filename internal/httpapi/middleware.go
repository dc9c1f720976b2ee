package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/hutong-pay/hutong/internal/apikey"
	"github.com/hutong-pay/hutong/internal/payment"
)

// reqInfo is what the outer middleware learns about a request from the inner layers, for its
// log line and metrics. It is shared through the context by pointer.
type reqInfo struct {
	id    string
	route string
	key   *payment.APIKey
}

type infoKey struct{}

func infoFrom(ctx context.Context) *reqInfo {
	if i, ok := ctx.Value(infoKey{}).(*reqInfo); ok {
		return i
	}
	return &reqInfo{}
}

func requestIDFrom(ctx context.Context) string { return infoFrom(ctx).id }
func routeFrom(ctx context.Context) string     { return routeLabel(infoFrom(ctx).route) }

// keyFrom returns the authenticated key; only routes behind authenticate call it.
func keyFrom(ctx context.Context) *payment.APIKey { return infoFrom(ctx).key }

// ServeHTTP is the outermost middleware: request id, logging, metrics, panic recovery, body
// limit, then routing.
func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	info := &reqInfo{id: requestID(r.Header.Get("X-Request-Id"))}
	w.Header().Set("X-Request-Id", info.id)
	r = r.WithContext(context.WithValue(r.Context(), infoKey{}, info))
	_, info.route = a.mux.Handler(r)
	rec := &statusRecorder{ResponseWriter: w}

	defer func() {
		status := rec.status
		if status == 0 {
			status = http.StatusOK // the handler wrote nothing
		}
		elapsed := time.Since(start)
		route := routeLabel(info.route)
		a.metrics.observe(route, r.Method, status, elapsed.Seconds())
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		attrs := []slog.Attr{
			slog.String("request_id", info.id), slog.String("method", r.Method), slog.String("route", route),
			slog.String("path", r.URL.Path), slog.Int("status", status), slog.Duration("duration", elapsed),
			slog.Int64("bytes", rec.bytes),
		}
		if info.key != nil {
			attrs = append(attrs, slog.String("merchant_id", info.key.MerchantID), slog.String("api_key", info.key.ID))
		}
		// Never the Authorization header, the query's secrets or bodies: only what identifies the request.
		a.log.LogAttrs(r.Context(), level, "http request", attrs...)
	}()

	defer func() {
		v := recover()
		if v == nil {
			return
		}
		if v == http.ErrAbortHandler {
			panic(v)
		}
		a.log.LogAttrs(r.Context(), slog.LevelError, "panic", slog.String("request_id", info.id), slog.String("route", routeLabel(info.route)),
			slog.String("panic", fmt.Sprint(v)), slog.String("stack", string(debug.Stack())))
		if rec.status == 0 {
			a.writeError(rec, r, fmt.Errorf("panic: %v", v))
		} else {
			panic(http.ErrAbortHandler) // the response has begun; only cutting the connection tells the client
		}
	}()

	r.Body = http.MaxBytesReader(rec, r.Body, maxBody)
	if info.route == "" {
		a.unmatched(rec, r)
		return
	}
	if a.foreignV1(info.route) {
		a.authenticate(a.mux).ServeHTTP(rec, r)
		return
	}
	a.mux.ServeHTTP(rec, r)
}

// unmatched lets the mux answer a request no route matched (404, 405 with Allow, or a redirect
// to the clean path) but turns its plain-text errors into envelopes.
func (a *api) unmatched(w http.ResponseWriter, r *http.Request) {
	h, _ := a.mux.Handler(r)
	h.ServeHTTP(&envelopeWriter{ResponseWriter: w, a: a, r: r}, r)
}

type envelopeWriter struct {
	http.ResponseWriter
	a        *api
	r        *http.Request
	replaced bool
}

func (e *envelopeWriter) WriteHeader(status int) {
	switch status {
	case http.StatusNotFound:
		e.replaced = true
		e.a.writeError(e.ResponseWriter, e.r, &payment.Error{Kind: payment.NotFound, Code: "route_not_found",
			Message: fmt.Sprintf("no such route: %s %s", e.r.Method, e.r.URL.Path)})
	case http.StatusMethodNotAllowed:
		e.replaced = true
		h := e.ResponseWriter.Header()
		h.Del("X-Content-Type-Options")
		h.Set("Content-Type", "application/json")
		env := errorEnvelope{errorBody{Type: "invalid_request_error", Code: "method_not_allowed",
			Message: fmt.Sprintf("%s is not allowed on %s; allowed: %s", e.r.Method, e.r.URL.Path, h.Get("Allow"))}}
		e.a.writeJSON(e.ResponseWriter, e.r, status, env)
	default:
		e.ResponseWriter.WriteHeader(status)
	}
}

func (e *envelopeWriter) Write(b []byte) (int, error) {
	if e.replaced {
		return len(b), nil
	}
	return e.ResponseWriter.Write(b)
}

// statusRecorder remembers the status and size of a response.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusRecorder) WriteHeader(status int) {
	if s.status == 0 {
		s.status = status
	}
	s.ResponseWriter.WriteHeader(status)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// requestID returns the client's request id when it is a sane token, or a fresh one.
func requestID(in string) string {
	if len(in) > 0 && len(in) <= 128 {
		ok := true
		for i := 0; i < len(in); i++ {
			c := in[i]
			if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '-' || c == '_' || c == '.' || c == ':') {
				ok = false
				break
			}
		}
		if ok {
			return in
		}
	}
	return payment.NewID("req")
}

// authenticate requires a valid, unrevoked API key and records it in the request's info.
// Keys are found by the SHA-256 of the presented secret, so no secret is ever compared byte by
// byte and the lookup's timing says nothing about the secret.
func (a *api) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		header := r.Header.Get("Authorization")
		if header == "" {
			a.writeError(w, r, &payment.Error{Kind: payment.Unauthorized, Code: "api_key_missing",
				Message: "no API key given: send it as Authorization: Bearer sk_test_… or sk_live_…"})
			return
		}
		secret, ok := apikey.FromAuthorization(header)
		if !ok {
			a.writeError(w, r, &payment.Error{Kind: payment.Unauthorized, Code: "api_key_invalid",
				Message: "the Authorization header is not a Bearer secret key"})
			return
		}
		key, err := a.store.APIKeyByHash(r.Context(), apikey.Hash(secret))
		if err != nil {
			if payment.IsNotFound(err) {
				a.writeError(w, r, &payment.Error{Kind: payment.Unauthorized, Code: "api_key_invalid", Message: "invalid API key"})
				return
			}
			a.writeError(w, r, fmt.Errorf("authenticate: %w", err))
			return
		}
		if key.RevokedAt != nil && !key.RevokedAt.After(a.now()) {
			a.writeError(w, r, &payment.Error{Kind: payment.Unauthorized, Code: "api_key_revoked", Message: "this API key has been revoked"})
			return
		}
		infoFrom(r.Context()).key = key
		next.ServeHTTP(w, r)
	})
}
