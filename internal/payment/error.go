package payment

import (
	"errors"
	"fmt"
)

// Kind classifies an error; the HTTP layer maps each kind to one status.
type Kind string

const (
	Invalid       Kind = "invalid_request" // 400: the request is wrong
	Unauthorized  Kind = "authentication"  // 401
	NotFound      Kind = "not_found"       // 404
	Conflict      Kind = "conflict"        // 409: the object's state forbids it, or a key is in flight
	Unprocessable Kind = "unprocessable"   // 422: e.g. an idempotency key reused with another body
	ProviderError Kind = "provider_error"  // 502: the wallet refused or failed
	Internal      Kind = "internal"        // 500: anything else; never shown to clients in detail
)

// Error is Hutong's one error type. Code is a stable machine-readable word; Param names the
// offending request field; ProviderCode keeps the wallet's own code (e.g. ORDERPAID, ACQ.TRADE_HAS_SUCCESS).
type Error struct {
	Kind         Kind
	Code         string
	Message      string
	Param        string
	ProviderCode string
	Err          error // the cause, for logs; never shown to clients
}

func (e *Error) Error() string {
	s := string(e.Kind) + ": " + e.Message
	if e.ProviderCode != "" {
		s += " (" + e.ProviderCode + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an error of kind with code and a formatted message.
func Errorf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// InvalidParam returns a 400-kind error naming param.
func InvalidParam(param, format string, args ...any) *Error {
	return &Error{Kind: Invalid, Code: "parameter_invalid", Param: param, Message: fmt.Sprintf(format, args...)}
}

// ErrNotFound returns the error for a missing object of type what.
func ErrNotFound(what, id string) *Error {
	return &Error{Kind: NotFound, Code: "resource_missing", Message: fmt.Sprintf("no such %s: %s", what, id)}
}

// KindOf returns err's kind, Internal for anything that is not an *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// IsNotFound reports whether err is a not-found error.
func IsNotFound(err error) bool { return err != nil && KindOf(err) == NotFound }
