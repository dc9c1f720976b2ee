package wechatpay

import (
	"context"
	"errors"
	"fmt"

	"github.com/wechatpay-apiv3/wechatpay-go/core"

	"github.com/hutong-pay/hutong/internal/payment"
)

// APIError is WeChat Pay's error answer without the raw headers and body the SDK keeps (they may
// carry signatures): safe to log.
type APIError struct {
	Op         string // what we were doing, e.g. "close order"
	StatusCode int
	Code       string // WeChat Pay's code, e.g. ORDERPAID
	Message    string
	RequestID  string // WeChat Pay's Request-ID, for their support
}

func (e *APIError) Error() string {
	return fmt.Sprintf("wechatpay: %s: http %d %s: %s (request-id %s)", e.Op, e.StatusCode, e.Code, e.Message, e.RequestID)
}

// clearRefusal reports whether the wallet's answer says for certain that nothing happened. A 5xx
// (SYSTEM_ERROR and the like) means "retry with the same parameters": the outcome is unknown.
func (e *APIError) clearRefusal() bool { return e.Code != "" && e.StatusCode < 500 }

// asAPIError extracts WeChat Pay's error answer from an SDK error.
func asAPIError(op string, err error) (*APIError, bool) {
	var ae *core.APIError
	if !errors.As(err, &ae) {
		return nil, false
	}
	out := &APIError{Op: op, StatusCode: ae.StatusCode, Code: ae.Code, Message: ae.Message}
	if ae.Header != nil {
		out.RequestID = ae.Header.Get("Request-Id")
	}
	return out, true
}

// sanitize replaces an SDK API error (whose text includes every response header) by our APIError.
func sanitize(err error) error {
	if ae, ok := asAPIError("", err); ok {
		return ae
	}
	return err
}

// callError turns an SDK call's error into the gateway's error: kind ProviderError, with
// ProviderCode only when WeChat Pay clearly refused (so the caller may treat it as final);
// without ProviderCode the outcome is unknown (timeouts, network, 5xx, unverifiable answers).
func callError(op string, err error) error {
	if ae, ok := asAPIError(op, err); ok {
		if ae.clearRefusal() {
			return &payment.Error{Kind: payment.ProviderError, Code: "provider_error", ProviderCode: ae.Code,
				Message: fmt.Sprintf("WeChat Pay answered %s: %s", ae.Code, ae.Message), Err: ae}
		}
		return unknownOutcome(op, ae)
	}
	return unknownOutcome(op, err)
}

func unknownOutcome(op string, err error) error {
	msg := "WeChat Pay gave no clear answer"
	if errors.Is(err, context.DeadlineExceeded) {
		msg = "WeChat Pay did not answer in time"
	}
	return &payment.Error{Kind: payment.ProviderError, Code: "provider_unavailable", Message: msg,
		Err: fmt.Errorf("wechatpay: %s: %w", op, err)}
}

// badAnswer is a 2xx answer we cannot use (missing or inconsistent fields): the outcome is unknown.
func badAnswer(op, format string, args ...any) error {
	return unknownOutcome(op, fmt.Errorf("unusable answer: "+format, args...))
}

// accountError marks wallet news for another merchant account or app than ours.
type accountError struct{ field, got string }

func (e *accountError) Error() string {
	return fmt.Sprintf("belongs to %s %q, not ours", e.field, e.got)
}
