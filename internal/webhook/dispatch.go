package webhook

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hutong-pay/hutong/internal/payment"
)

// Timeout is how long a receiver has to answer a delivery (the spec recommends 15–30 s).
const Timeout = 15 * time.Second

// RetrySchedule is the delay after the 1st, 2nd, … failed attempt: the Standard Webhooks example
// schedule, about 3 days in all. Each delay gets ±10 % jitter (see Backoff).
var RetrySchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour,
	10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour,
}

// MaxAttempts is how many times one delivery is tried: once, then once per scheduled retry.
const MaxAttempts = 10

// maxRetryAfter caps how long a receiver's Retry-After may push the next attempt out.
const maxRetryAfter = 24 * time.Hour

// Backoff returns the delay before the attempt after failed attempt number failed (1-based),
// and false when the schedule is exhausted. The ±10 % jitter is derived from key (the event and
// endpoint ids) and failed, not drawn at random: it still spreads retries of different
// deliveries apart, and every caller computing the same retry gets the same time.
func Backoff(failed int, key string) (time.Duration, bool) {
	if failed < 1 || failed > len(RetrySchedule) {
		return 0, false
	}
	base := RetrySchedule[failed-1]
	h := fnv.New64a()
	h.Write([]byte(key))
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(failed))
	h.Write(n[:])
	perTenThousand := int64(h.Sum64()%2001) - 1000 // −1000 … +1000, i.e. ±10 %
	return base + time.Duration(int64(base)*perTenThousand/10000), true
}

// Result says what follows a delivery attempt.
type Result string

const (
	Delivered Result = "delivered" // 2xx: done
	Retry     Result = "retry"     // failed; try again at Outcome.RetryAt
	Exhausted Result = "exhausted" // failed, and that was the last scheduled attempt
	Gone      Result = "gone"      // 410 Gone: the endpoint has been disabled; stop
	Skipped   Result = "skipped"   // nothing sent: endpoint deleted or disabled, or not subscribed
)

// Outcome is the result of Deliver.
type Outcome struct {
	Result  Result
	RetryAt time.Time // set when Result is Retry
	Attempt *Attempt  // the recorded attempt; nil when Skipped
	Reason  string    // why it was skipped
}

// DispatcherConfig configures a Dispatcher.
type DispatcherConfig struct {
	Store Store
	// Livemode means the node runs live wallets: every endpoint, whatever mode created it, is
	// delivered to as a live one (public addresses only).
	Livemode bool
	Timeout  time.Duration // per attempt; default Timeout
	Now      func() time.Time
	Logger   *slog.Logger
}

// Dispatcher makes single delivery attempts: it builds and signs the body, POSTs it, records the
// attempt, and says what should happen next. Scheduling retries is its caller's job.
type Dispatcher struct {
	store    Store
	livemode bool
	timeout  time.Duration
	now      func() time.Time
	log      *slog.Logger
	live     *http.Client // public addresses only
	test     *http.Client
}

// NewDispatcher returns a Dispatcher.
func NewDispatcher(cfg DispatcherConfig) *Dispatcher {
	d := &Dispatcher{store: cfg.Store, livemode: cfg.Livemode, timeout: cfg.Timeout, now: cfg.Now, log: cfg.Logger}
	if d.timeout <= 0 {
		d.timeout = Timeout
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	d.live = newClient(true, d.timeout)
	d.test = newClient(false, d.timeout)
	return d
}

// Deliver makes attempt number attempt (1-based) at delivering event eventID to endpoint
// endpointID. An error means the attempt could not be made or recorded (store failure, context
// cancelled) and nothing is known about the receiver; the caller should retry.
func (d *Dispatcher) Deliver(ctx context.Context, eventID, endpointID string, attempt int) (Outcome, error) {
	ep, err := d.store.Endpoint(ctx, "", endpointID)
	if payment.IsNotFound(err) {
		return Outcome{Result: Skipped, Reason: "endpoint deleted"}, nil
	}
	if err != nil {
		return Outcome{}, fmt.Errorf("webhook: deliver %s to %s: load endpoint: %w", eventID, endpointID, err)
	}
	if ep.Disabled {
		return Outcome{Result: Skipped, Reason: "endpoint disabled"}, nil
	}
	ev, err := d.store.Event(ctx, ep.MerchantID, eventID)
	if payment.IsNotFound(err) {
		// Never another merchant's event: the lookup is scoped to the endpoint's owner.
		return Outcome{Result: Skipped, Reason: "event not found for the endpoint's merchant"}, nil
	}
	if err != nil {
		return Outcome{}, fmt.Errorf("webhook: deliver %s to %s: load event: %w", eventID, endpointID, err)
	}
	if ep.Livemode != ev.Livemode {
		// Test-mode endpoints never get live events, nor the other way round.
		return Outcome{Result: Skipped, Reason: "endpoint and event are of different modes"}, nil
	}
	if !ep.Subscribes(ev.Type) {
		return Outcome{Result: Skipped, Reason: "endpoint not subscribed to " + string(ev.Type)}, nil
	}
	return d.Send(ctx, ep, ev, attempt)
}

// Send makes one attempt at delivering ev to ep and records it; see Deliver.
func (d *Dispatcher) Send(ctx context.Context, ep *Endpoint, ev *payment.Event, attempt int) (Outcome, error) {
	now := d.now()
	keys, err := ep.SigningKeys(now)
	if err != nil {
		return Outcome{}, err
	}
	body, err := Payload(ev)
	if err != nil {
		return Outcome{}, err
	}
	a := &Attempt{
		ID: payment.NewID("wha"), EventID: ev.ID, EndpointID: ep.ID, MerchantID: ep.MerchantID,
		Number: attempt, At: now,
	}
	client := d.test
	if d.livemode || ep.Livemode {
		client = d.live
	}
	var retryAfter time.Duration
	start := time.Now()
	resp, err := d.post(ctx, client, ep.URL, Sign(keys, ev.ID, now, body), body)
	a.Duration = time.Since(start)
	if err != nil {
		if ctx.Err() != nil {
			// Our own shutdown or deadline, not the receiver's failure: no attempt to record.
			return Outcome{}, fmt.Errorf("webhook: deliver %s to %s: %w", ev.ID, ep.ID, ctx.Err())
		}
		a.Error = describeErr(err, d.timeout)
	} else {
		a.StatusCode = resp.StatusCode
		// Drain a little so the connection can be reused; the body itself is not kept.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		if !a.Succeeded() {
			a.Error = fmt.Sprintf("receiver answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
			if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
				a.Error += " (redirects are not followed; register the final URL)"
			}
			retryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), now)
		}
	}

	out := Outcome{Attempt: a}
	switch {
	case a.Succeeded():
		out.Result = Delivered
	case a.StatusCode == http.StatusGone:
		out.Result = Gone
	default:
		delay, ok := Backoff(attempt, ev.ID+"/"+ep.ID)
		if !ok {
			out.Result = Exhausted
			break
		}
		out.Result = Retry
		out.RetryAt = now.Add(max(delay, retryAfter))
		a.NextAttemptAt = out.RetryAt
	}
	if err := d.store.RecordAttempt(ctx, a); err != nil {
		return Outcome{}, fmt.Errorf("webhook: deliver %s to %s: record attempt: %w", ev.ID, ep.ID, err)
	}
	if out.Result == Gone {
		if err := d.store.DisableEndpoint(ctx, ep.ID, "the endpoint answered 410 Gone", now); err != nil {
			return Outcome{}, fmt.Errorf("webhook: disable %s after 410: %w", ep.ID, err)
		}
	}
	level := slog.LevelInfo
	if !a.Succeeded() {
		level = slog.LevelWarn
	}
	d.log.LogAttrs(ctx, level, "webhook attempt", slog.String("event_id", ev.ID), slog.String("endpoint_id", ep.ID),
		slog.String("merchant_id", ep.MerchantID), slog.Int("attempt", attempt), slog.Int("status", a.StatusCode),
		slog.String("result", string(out.Result)), slog.Duration("duration", a.Duration), slog.String("error", a.Error))
	return out, nil
}

func (d *Dispatcher) post(ctx context.Context, client *http.Client, target string, h http.Header, body []byte) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header = h
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Hutong-Webhooks/1.0")
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	// The timeout also bounds reading the body; it is released when the caller closes it.
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// describeErr turns a transport error into text for the merchant: without the URL (its query
// may carry a token), short, and plain about timeouts and refused addresses.
func describeErr(err error, timeout time.Duration) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Sprintf("no response within %s", timeout)
		}
		err = ue.Err
	}
	if errors.Is(err, ErrBlockedAddress) {
		return "refused: " + truncate(err.Error(), 200) + " (live webhooks go only to public addresses)"
	}
	return truncate(err.Error(), 300)
}

// Payload returns the body delivered for ev, in the Standard Webhooks shape:
// {"id","type","timestamp","data"}, data being the object as the event recorded it.
func Payload(ev *payment.Event) ([]byte, error) {
	b, err := json.Marshal(struct {
		ID        string            `json:"id"`
		Type      payment.EventType `json:"type"`
		Timestamp time.Time         `json:"timestamp"`
		Data      json.RawMessage   `json:"data"`
	}{ev.ID, ev.Type, ev.CreatedAt.UTC(), ev.Data})
	if err != nil {
		return nil, fmt.Errorf("webhook: encode event %s: %w", ev.ID, err)
	}
	return b, nil
}

// ParseRetryAfter reads a Retry-After header (delay seconds or an HTTP date) as a delay from
// now, 0 when absent, invalid or past, and at most 24 h.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}
