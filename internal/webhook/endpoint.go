package webhook

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/hutong-pay/hutong/internal/payment"
)

// Endpoint is a merchant's webhook receiver.
type Endpoint struct {
	ID         string // "we_…"
	MerchantID string
	// Livemode is the mode of the key that created it: live endpoints need https and are
	// never delivered to private addresses.
	Livemode bool
	URL      string
	Events   []payment.EventType // empty: every event type
	Secret   string              // "whsec_…"
	// PreviousSecret also signs until PreviousSecretExpiresAt, so that receivers keep
	// verifying while they switch to Secret after a rotation.
	PreviousSecret          string
	PreviousSecretExpiresAt time.Time
	Disabled                bool
	DisabledReason          string
	CreatedAt               time.Time
}

// Subscribes reports whether the endpoint wants events of type t.
func (e *Endpoint) Subscribes(t payment.EventType) bool {
	if len(e.Events) == 0 {
		return true
	}
	for _, s := range e.Events {
		if s == t {
			return true
		}
	}
	return false
}

// SigningKeys returns the HMAC keys that sign a message sent at now: the current secret's, then
// the previous secret's while it has not expired.
func (e *Endpoint) SigningKeys(now time.Time) ([][]byte, error) {
	cur, err := ParseSecret(e.Secret)
	if err != nil {
		return nil, fmt.Errorf("webhook: endpoint %s: current secret: %w", e.ID, err)
	}
	keys := [][]byte{cur}
	if e.PreviousSecret != "" && now.Before(e.PreviousSecretExpiresAt) {
		prev, err := ParseSecret(e.PreviousSecret)
		if err != nil {
			return nil, fmt.Errorf("webhook: endpoint %s: previous secret: %w", e.ID, err)
		}
		keys = append(keys, prev)
	}
	return keys, nil
}

// Attempt is one try at delivering an event to an endpoint. Error never holds secrets, request
// or response bodies, or the URL (whose query may carry a merchant's token).
type Attempt struct {
	ID            string // "wha_…"
	EventID       string
	EndpointID    string
	MerchantID    string
	Number        int // 1 for the first delivery of a job, counting up through its retries
	StatusCode    int // 0 when no response arrived
	Error         string
	Duration      time.Duration
	At            time.Time
	NextAttemptAt time.Time // zero when no retry follows
}

// Succeeded reports whether the receiver acknowledged with a 2xx.
func (a *Attempt) Succeeded() bool { return a.StatusCode >= 200 && a.StatusCode <= 299 }

const maxURLLength = 2048

// ValidateURL checks a merchant's endpoint URL; errors are InvalidParam("url"). Any mode needs
// an absolute http(s) URL with a well-formed host and no credentials or fragment. Live mode
// needs https and refuses hosts that are plainly not public (localhost, private IP literals);
// names that resolve to private addresses are refused later, when dialling.
func ValidateURL(raw string, livemode bool) error {
	if raw == "" {
		return payment.InvalidParam("url", "url is required")
	}
	if len(raw) > maxURLLength {
		return payment.InvalidParam("url", "url must be at most %d characters", maxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return payment.InvalidParam("url", "url is not a valid URL")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return payment.InvalidParam("url", "url must be an http or https URL")
	}
	if u.Opaque != "" || u.Host == "" {
		return payment.InvalidParam("url", "url must be absolute, with a host")
	}
	if u.User != nil {
		return payment.InvalidParam("url", "url must not contain credentials")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return payment.InvalidParam("url", "url must not contain a fragment")
	}
	if p := u.Port(); p != "" && !validPort(p) {
		return payment.InvalidParam("url", "url has an invalid port")
	}
	host := u.Hostname()
	addr, isIP := parseHostIP(host)
	if !isIP && !validHostname(host) {
		return payment.InvalidParam("url", "url host is not a valid host name or IP address")
	}
	if !livemode {
		return nil
	}
	if u.Scheme != "https" {
		return payment.InvalidParam("url", "url must use https in live mode")
	}
	if isIP && blockedAddr(addr) {
		return payment.InvalidParam("url", "url must point to a public address in live mode")
	}
	if h := strings.ToLower(strings.TrimSuffix(host, ".")); h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return payment.InvalidParam("url", "url must point to a public address in live mode")
	}
	return nil
}

// parseHostIP parses an IP literal host (IPv6 without brackets, as url.Hostname returns it).
// Zones ("fe80::1%eth0") are refused as not an IP: they only make sense on the local link.
func parseHostIP(host string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a, true
}

func validPort(p string) bool {
	if len(p) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n >= 1 && n <= 65535
}

// validHostname accepts DNS names: labels of letters, digits, '-' and '_' (1–63 characters, not
// starting or ending with '-'), 253 characters at most, an optional final dot. The last label
// must not be all digits: that rules out the numeric IPv4 spellings ("127.1", "2130706433",
// "0x7f.0.0.1") that some resolvers would turn into addresses.
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	last := labels[len(labels)-1]
	allDigits := true
	for i := 0; i < len(last); i++ {
		if last[i] < '0' || last[i] > '9' {
			allDigits = false
			break
		}
	}
	return !allDigits
}

// ValidateEvents checks and normalises an endpoint's event list: known types only, duplicates
// dropped, order kept. Nil or empty means every type. Errors are InvalidParam("events").
func ValidateEvents(in []string) ([]payment.EventType, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]payment.EventType, 0, len(in))
	seen := map[payment.EventType]bool{}
	for _, s := range in {
		t := payment.EventType(s)
		if !t.Valid() {
			return nil, payment.InvalidParam("events", "events has an unknown event type %q; known types: %s", truncate(s, 64), knownTypes())
		}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out, nil
}

func knownTypes() string {
	s := make([]string, len(payment.EventTypes))
	for i, t := range payment.EventTypes {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
