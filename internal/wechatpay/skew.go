package wechatpay

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Clock skew: WeChat Pay rejects requests, and the SDK rejects responses and notifications, whose
// timestamps are 300 s or more away from the receiver's clock. We measure the skew on every
// signed timestamp the wallet sends and warn well before it breaks payments.
const (
	skewWarn  = 60 * time.Second
	skewLimit = 300 * time.Second
	// warnEvery keeps a drifting clock from logging once per API call.
	warnEvery = time.Minute
)

// SkewMetricName is the Prometheus gauge the connector sets: the wallet's clock minus ours, in
// seconds (positive when our clock is behind), labelled provider="wechatpay".
const SkewMetricName = "hutong_wallet_clock_skew_seconds"

// skewHelp must be the same wherever the gauge is declared (the Alipay connector shares it).
const skewHelp = "Wallet clock minus this node's clock, in seconds, from the wallet's latest signed timestamp."

type skewMeter struct {
	now   func() time.Time
	log   *slog.Logger
	gauge prometheus.Gauge // nil without a registry

	mu       sync.Mutex
	last     time.Duration
	seen     bool
	lastWarn time.Time
}

func newSkewMeter(now func() time.Time, log *slog.Logger, reg prometheus.Registerer) (*skewMeter, error) {
	m := &skewMeter{now: now, log: log}
	if reg == nil {
		return m, nil
	}
	vec := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: SkewMetricName, Help: skewHelp}, []string{"provider"})
	if err := reg.Register(vec); err != nil {
		var are prometheus.AlreadyRegisteredError
		existing, ok := (*prometheus.GaugeVec)(nil), false
		if errors.As(err, &are) {
			existing, ok = are.ExistingCollector.(*prometheus.GaugeVec)
		}
		if !ok {
			return nil, fmt.Errorf("wechatpay: register %s: %w", SkewMetricName, err)
		}
		vec = existing
	}
	m.gauge = vec.WithLabelValues("wechatpay")
	return m, nil
}

// observeHeader records the skew from a Wechatpay-Timestamp header value; anything that is not a
// plausible Unix time is ignored.
func (m *skewMeter) observeHeader(v string) {
	if v == "" {
		return
	}
	ts, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ts <= 0 || ts > math.MaxInt64/int64(time.Second) {
		return
	}
	m.observe(time.Unix(ts, 0))
}

// observe records the skew between the wallet's time walletTS and ours.
func (m *skewMeter) observe(walletTS time.Time) {
	now := m.now()
	skew := walletTS.Sub(now)
	if m.gauge != nil {
		m.gauge.Set(skew.Seconds())
	}
	abs := skew.Abs()
	m.mu.Lock()
	m.last, m.seen = skew, true
	warn := abs > skewWarn && (m.lastWarn.IsZero() || now.Sub(m.lastWarn).Abs() >= warnEvery)
	if warn {
		m.lastWarn = now
	}
	m.mu.Unlock()
	if !warn {
		return
	}
	if abs >= skewLimit {
		m.log.Error("wechatpay clock skew beyond the wallet's limit: signed messages are being rejected; fix this node's clock (NTP)",
			"provider", "wechatpay", "skew_seconds", math.Round(skew.Seconds()), "limit_seconds", skewLimit.Seconds())
		return
	}
	m.log.Warn("wechatpay clock skew: payments fail at 300 s; fix this node's clock (NTP)",
		"provider", "wechatpay", "skew_seconds", math.Round(skew.Seconds()), "limit_seconds", skewLimit.Seconds())
}

// ClockSkew returns the latest measured skew (the wallet's clock minus ours) and whether any
// signed timestamp has been seen yet.
func (c *Connector) ClockSkew() (time.Duration, bool) {
	c.skew.mu.Lock()
	defer c.skew.mu.Unlock()
	return c.skew.last, c.skew.seen
}
