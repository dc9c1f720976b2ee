package shop

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Hutong signs its webhooks the Standard Webhooks way (standardwebhooks.com). Checking one takes
// a dozen lines, written out here so that a merchant sees all of it:
//
//	signed content  = webhook-id + "." + webhook-timestamp + "." + raw body
//	webhook-signature = "v1,<base64 HMAC-SHA256(secret, signed content)>" (several, space-separated,
//	                    while a rotated secret is still honoured)
//	secret          = "whsec_<base64 key>"; the HMAC key is the decoded bytes

// webhookTolerance is how far webhook-timestamp may be from our clock: it bounds replays.
const webhookTolerance = 5 * time.Minute

// parseWebhookSecret returns the HMAC key of a "whsec_…" secret.
func parseWebhookSecret(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return nil, errors.New("webhook secret must start with whsec_")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) == 0 {
		return nil, errors.New("webhook secret is not base64")
	}
	return key, nil
}

// verifyWebhook checks a webhook's signature and timestamp before anything in it is believed.
func verifyWebhook(key []byte, h http.Header, body []byte, now time.Time) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || strings.TrimLeft(ts, "0123456789") != "" {
		return errors.New("webhook-timestamp is not unix seconds")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > webhookTolerance || d < -webhookTolerance {
		return errors.New("webhook-timestamp too far from now")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := []byte(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	for _, s := range strings.Fields(sigs) {
		if version, sig, ok := strings.Cut(s, ","); ok && version == "v1" && hmac.Equal([]byte(sig), want) {
			return nil
		}
	}
	return errors.New("no valid signature")
}

// webhookEvent is the body Hutong posts: {"id","type","timestamp","data"}, data being the
// payment (for payment.* events) as it was after the change.
type webhookEvent struct {
	ID   string          `json:"id"`
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// maxWebhookBody bounds a webhook body; Hutong's are a few kilobytes.
const maxWebhookBody = 256 << 10

// serveWebhook receives Hutong's events. It answers 2xx only once the event is verified and
// applied (or is of no interest), so that Hutong retries anything else; applying is idempotent,
// so a delivery that arrives twice changes nothing the second time.
func (s *Shop) serveWebhook(w http.ResponseWriter, r *http.Request) {
	key := s.webhookKey()
	if key == nil {
		// Registration has not finished (or failed): let Hutong retry later.
		http.Error(w, "webhooks not set up yet", http.StatusServiceUnavailable)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	if err != nil {
		http.Error(w, "body unreadable or too large", http.StatusRequestEntityTooLarge)
		return
	}
	if err := verifyWebhook(key, r.Header, body, s.now()); err != nil {
		s.log.Warn("shop: webhook refused", "reason", err.Error())
		http.Error(w, "invalid signature", http.StatusBadRequest)
		return
	}
	ev, p, err := parseWebhookEvent(body)
	if err != nil {
		s.log.Warn("shop: webhook unreadable", "err", err)
		http.Error(w, "unreadable event", http.StatusBadRequest)
		return
	}
	if p == nil {
		w.WriteHeader(http.StatusNoContent) // not a payment event: nothing to do
		return
	}
	if changed, known := s.applyPayment(p, sourceWebhook); !known {
		// Not one of ours (another shop on the same account, or an order from before a restart).
		s.log.Info("shop: webhook for an unknown order", "event_id", ev.ID, "payment_id", p.ID, "reference", p.Reference)
	} else if changed {
		s.log.Info("shop: order updated by webhook", "event_id", ev.ID, "type", ev.Type, "order_id", p.Reference, "status", p.Status)
	}
	w.WriteHeader(http.StatusNoContent)
}

// parseWebhookEvent decodes a verified body; the payment is nil for events about anything else.
func parseWebhookEvent(body []byte) (*webhookEvent, *hutongPayment, error) {
	var ev webhookEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, nil, fmt.Errorf("decode event: %w", err)
	}
	if !strings.HasPrefix(ev.Type, "payment.") {
		return &ev, nil, nil
	}
	var p hutongPayment
	if err := json.Unmarshal(ev.Data, &p); err != nil {
		return nil, nil, fmt.Errorf("decode %s data: %w", ev.Type, err)
	}
	if p.ID == "" || p.Reference == "" || p.Status == "" {
		return nil, nil, fmt.Errorf("%s data lacks id, reference or status", ev.Type)
	}
	return &ev, &p, nil
}
