package shop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// This file is everything the shop knows about Hutong: a few calls of its public merchant API
// over HTTP with the secret key, as any merchant in any language would make them. The shop
// deliberately imports nothing of Hutong's own packages.

// hutongClient calls Hutong's merchant API.
type hutongClient struct {
	base string // e.g. http://127.0.0.1:8080, without /v1
	key  string
	hc   *http.Client
}

// apiError is an error answer of the API: {"error":{"type","code","message","param"}}.
type apiError struct {
	Status  int
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Param   string `json:"param"`
}

func (e *apiError) Error() string {
	return fmt.Sprintf("hutong: %d %s: %s", e.Status, e.Code, e.Message)
}

// retryable tells failures worth another try with the same Idempotency-Key: Hutong replays the
// first answer if the first try did land, so retrying never creates a second payment.
func (e *apiError) retryable() bool {
	return e.Status >= 500 || (e.Status == http.StatusConflict && e.Type == "idempotency_error")
}

// hutongPayment is the part of Hutong's payment object the shop uses.
type hutongPayment struct {
	ID          string            `json:"id"`
	Status      string            `json:"status"` // pending, succeeded, failed, canceled
	Amount      int64             `json:"amount"`
	Currency    string            `json:"currency"`
	Reference   string            `json:"reference"`
	Provider    string            `json:"provider"`
	Channel     string            `json:"channel"`
	CheckoutURL string            `json:"checkout_url"`
	Metadata    map[string]string `json:"metadata"`
}

// createPaymentRequest is POST /v1/payments' body. Provider and channel are left out on purpose:
// the buyer chooses the wallet on Hutong's hosted checkout.
type createPaymentRequest struct {
	Amount      int64             `json:"amount"`
	Currency    string            `json:"currency"`
	Description string            `json:"description"`
	Reference   string            `json:"reference"`
	ReturnURL   string            `json:"return_url"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

type webhookEndpoint struct {
	ID     string `json:"id"`
	URL    string `json:"url"`
	Secret string `json:"secret"` // only in the answers to creation and rotation
}

// maxAnswer bounds what the shop reads of an API answer.
const maxAnswer = 1 << 20

// do sends one request and decodes a 2xx answer into out, or returns an *apiError.
func (c *hutongClient) do(ctx context.Context, method, path, idempotencyKey string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("hutong: encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("hutong: %s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", idempotencyKey)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("hutong: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("hutong: read answer to %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error apiError `json:"error"`
		}
		_ = json.Unmarshal(raw, &e) // a non-JSON answer (a proxy's page) still gets its status
		e.Error.Status = resp.StatusCode
		if e.Error.Code == "" {
			e.Error.Code = "http_" + http.StatusText(resp.StatusCode)
		}
		return &e.Error
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("hutong: decode answer to %s %s: %w", method, path, err)
		}
	}
	return nil
}

// createPayment creates a payment, retrying transient failures with the same Idempotency-Key.
func (c *hutongClient) createPayment(ctx context.Context, idempotencyKey string, in createPaymentRequest) (*hutongPayment, error) {
	var p hutongPayment
	var err error
	for attempt, wait := 0, 200*time.Millisecond; attempt < 3; attempt, wait = attempt+1, wait*2 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("hutong: create payment: %w (after %v)", ctx.Err(), err)
			case <-time.After(wait):
			}
		}
		err = c.do(ctx, http.MethodPost, "/v1/payments", idempotencyKey, in, &p)
		var ae *apiError
		if err == nil || (errors.As(err, &ae) && !ae.retryable()) || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return &p, nil
}

func (c *hutongClient) payment(ctx context.Context, id string) (*hutongPayment, error) {
	var p hutongPayment
	if err := c.do(ctx, http.MethodGet, "/v1/payments/"+url.PathEscape(id), "", nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// ensureWebhookEndpoint makes sure Hutong posts the shop's payment events to target and returns
// the endpoint with a signing secret the shop knows: a new endpoint, or (after a restart, when
// the old secret is gone with the process) the existing one for target with a rotated secret.
func (c *hutongClient) ensureWebhookEndpoint(ctx context.Context, target string, events []string) (*webhookEndpoint, error) {
	var list struct {
		Data []webhookEndpoint `json:"data"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/webhook_endpoints", "", nil, &list); err != nil {
		return nil, err
	}
	var ep webhookEndpoint
	for _, e := range list.Data {
		if strings.EqualFold(e.URL, target) {
			if err := c.do(ctx, http.MethodPost, "/v1/webhook_endpoints/"+url.PathEscape(e.ID)+"/rotate_secret", "", struct{}{}, &ep); err != nil {
				return nil, err
			}
			return &ep, nil
		}
	}
	if err := c.do(ctx, http.MethodPost, "/v1/webhook_endpoints", "", map[string]any{"url": target, "events": events}, &ep); err != nil {
		return nil, err
	}
	return &ep, nil
}
