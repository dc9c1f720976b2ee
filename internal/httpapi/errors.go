package httpapi

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/hutong-pay/hutong/internal/payment"
)

// errorClass is how one kind of error is shown to clients.
type errorClass struct {
	status int
	typ    string // the envelope's "type"
}

// errorClasses is the one table mapping error kinds to HTTP statuses. A kind missing here is
// treated as internal.
var errorClasses = map[payment.Kind]errorClass{
	payment.Invalid:       {http.StatusBadRequest, "invalid_request_error"},
	payment.Unauthorized:  {http.StatusUnauthorized, "authentication_error"},
	payment.NotFound:      {http.StatusNotFound, "invalid_request_error"},
	payment.Conflict:      {http.StatusConflict, "conflict_error"},
	payment.Unprocessable: {http.StatusUnprocessableEntity, "idempotency_error"},
	payment.ProviderError: {http.StatusBadGateway, "provider_error"},
}

var internalClass = errorClass{http.StatusInternalServerError, "api_error"}

// Codes of the idempotency layer; their type is idempotency_error whatever the status, as Stripe does.
const (
	codeIdempotencyReused   = "idempotency_key_reused"
	codeIdempotencyInFlight = "idempotency_key_in_use"
)

// errorEnvelope is the body of every error response.
type errorEnvelope struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	Type         string `json:"type"`
	Code         string `json:"code"`
	Message      string `json:"message"`
	Param        string `json:"param,omitempty"`
	ProviderCode string `json:"provider_code,omitempty"`
}

// envelopeFor returns the status and body clients see for err. Anything that is not a
// *payment.Error of a known, non-internal kind is a bare "internal error".
func envelopeFor(err error) (int, errorEnvelope, bool) {
	var pe *payment.Error
	if errors.As(err, &pe) {
		if class, ok := errorClasses[pe.Kind]; ok {
			body := errorBody{Type: class.typ, Code: pe.Code, Message: pe.Message, Param: pe.Param, ProviderCode: pe.ProviderCode}
			if body.Code == "" {
				body.Code = string(pe.Kind)
			}
			if body.Code == codeIdempotencyReused || body.Code == codeIdempotencyInFlight {
				body.Type = "idempotency_error"
			}
			return class.status, errorEnvelope{body}, true
		}
	}
	return internalClass.status, errorEnvelope{errorBody{Type: internalClass.typ, Code: "internal_error", Message: "internal error"}}, false
}

// writeError answers with err's envelope. Internal errors are logged in full here, because the
// client only learns that something went wrong; wallet failures are logged with their cause.
func (a *api) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, env, known := envelopeFor(err)
	switch {
	case !known:
		a.log.LogAttrs(r.Context(), slog.LevelError, "internal error", slog.String("request_id", requestIDFrom(r.Context())),
			slog.String("route", routeFrom(r.Context())), slog.String("err", err.Error()))
	case status == http.StatusBadGateway:
		a.log.LogAttrs(r.Context(), slog.LevelWarn, "wallet error", slog.String("request_id", requestIDFrom(r.Context())),
			slog.String("route", routeFrom(r.Context())), slog.String("err", err.Error()))
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hutong"`)
	}
	a.writeJSON(w, r, status, env)
}
