// Package notify delivers the sandbox wallets' notifications to merchants the way the wallets do:
// recorded durably first, sent at once, then retried on the wallet's own schedule until the merchant
// acknowledges, with the fault injector deciding drops, duplicates, delays, reordering and forged probes.
//
// It is written by hand because it is the wallet's behaviour being emulated (its schedule, its
// acknowledgement rule, its probes), not a job queue for our own work.
package notify

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/hutong-pay/hutong/internal/sandbox/faults"
)

// Wallet tells the sender how one wallet's notifications look on the wire.
type Wallet interface {
	// Schedule is the delay before each retry after the first attempt.
	Schedule() []time.Duration
	// Render builds the body and headers of one attempt. It is called at every attempt, so
	// signatures and timestamps are fresh; forged asks for a deliberately mis-signed probe.
	Render(payload []byte, forged bool) (header http.Header, body []byte, err error)
	// Acknowledged says whether the merchant's answer ends the retries.
	Acknowledged(status int, body []byte) bool
}

// Options configure a Sender.
type Options struct {
	DB        *sql.DB
	Faults    *faults.Injector
	TimeScale float64          // 1 is the real schedule; 0.001 makes 15s into 15ms; <= 0 means 1
	Client    *http.Client     // nil: a client with a 5 s timeout, as the wallets wait
	Now       func() time.Time // nil: time.Now
	Logger    *slog.Logger
}

// Sender delivers notifications. Create it with New, Register the wallets, then Start.
type Sender struct {
	db      *sql.DB
	faults  *faults.Injector
	scale   float64
	client  *http.Client
	now     func() time.Time
	log     *slog.Logger
	wallets map[string]Wallet

	wake     chan struct{}
	mu       sync.Mutex
	inFlight map[string]bool
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

const schema = `CREATE TABLE IF NOT EXISTS sandbox_notifications (
	id           TEXT PRIMARY KEY,
	wallet       TEXT NOT NULL,
	url          TEXT NOT NULL,
	payload      BLOB NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_at      INTEGER NOT NULL,
	held         INTEGER NOT NULL DEFAULT 0,
	delivered_at INTEGER,
	gave_up      INTEGER NOT NULL DEFAULT 0,
	created_at   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sandbox_notifications_due ON sandbox_notifications (next_at) WHERE delivered_at IS NULL AND gave_up = 0;`

// New creates the sender's table if needed.
func New(opts Options) (*Sender, error) {
	if opts.DB == nil {
		return nil, errors.New("notify: no database")
	}
	if _, err := opts.DB.Exec(schema); err != nil {
		return nil, fmt.Errorf("notify: create table: %w", err)
	}
	s := &Sender{
		db: opts.DB, faults: opts.Faults, scale: opts.TimeScale, client: opts.Client, now: opts.Now, log: opts.Logger,
		wallets: map[string]Wallet{}, wake: make(chan struct{}, 1), inFlight: map[string]bool{},
	}
	if s.faults == nil {
		s.faults = faults.New()
	}
	if s.scale <= 0 {
		s.scale = 1
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: 5 * time.Second}
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Register names a wallet's wire rules; call it before Start.
func (s *Sender) Register(name string, w Wallet) { s.wallets[name] = w }

// Enqueue durably records notification id for url, to be sent now and retried until acknowledged.
// Enqueueing an id again is a no-op: a wallet sends one notification per event.
func (s *Sender) Enqueue(ctx context.Context, wallet, id, url string, payload []byte) error {
	if _, ok := s.wallets[wallet]; !ok {
		return fmt.Errorf("notify: unknown wallet %q", wallet)
	}
	now := s.now().UnixNano()
	_, err := s.db.ExecContext(ctx, `INSERT INTO sandbox_notifications (id, wallet, url, payload, next_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`, id, wallet, url, payload, now, now)
	if err != nil {
		return fmt.Errorf("notify: enqueue %s: %w", id, err)
	}
	s.poke()
	return nil
}

// Attempts reports how many attempts notification id has had and whether it was acknowledged.
func (s *Sender) Attempts(ctx context.Context, id string) (n int, delivered bool, err error) {
	var at sql.NullInt64
	err = s.db.QueryRowContext(ctx, `SELECT attempts, delivered_at FROM sandbox_notifications WHERE id = ?`, id).Scan(&n, &at)
	if err != nil {
		return 0, false, fmt.Errorf("notify: attempts %s: %w", id, err)
	}
	return n, at.Valid, nil
}

func (s *Sender) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Start runs the delivery loop in the background; notifications pending from before a restart resume.
func (s *Sender) Start(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.loop(ctx)
	}()
}

// Close stops the loop and waits for attempts under way.
func (s *Sender) Close() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
}

const maxConcurrent = 16

type due struct {
	id, wallet, url string
	payload         []byte
	attempts        int
	held            bool
}

func (s *Sender) loop(ctx context.Context) {
	for {
		next, err := s.dispatchDue(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("sandbox notifications: dispatch", "err", err)
			next = time.Second
		}
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// dispatchDue starts every due notification not already in flight and returns how long to sleep.
func (s *Sender) dispatchDue(ctx context.Context) (time.Duration, error) {
	now := s.now().UnixNano()
	rows, err := s.db.QueryContext(ctx, `SELECT id, wallet, url, payload, attempts, held FROM sandbox_notifications
		WHERE delivered_at IS NULL AND gave_up = 0 AND next_at <= ? ORDER BY next_at LIMIT 256`, now)
	if err != nil {
		return 0, err
	}
	var batch []due
	for rows.Next() {
		var d due
		if err := rows.Scan(&d.id, &d.wallet, &d.url, &d.payload, &d.attempts, &d.held); err != nil {
			rows.Close()
			return 0, err
		}
		batch = append(batch, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, d := range batch {
		s.mu.Lock()
		busy := s.inFlight[d.id] || len(s.inFlight) >= maxConcurrent
		if !busy {
			s.inFlight[d.id] = true
		}
		s.mu.Unlock()
		if busy {
			continue
		}
		// The batch was read before attempts that ended meanwhile recorded their outcome: only
		// a row still as read is due, or a retry would go early and its count would be lost.
		if !s.stillDue(ctx, d, now) {
			s.mu.Lock()
			delete(s.inFlight, d.id)
			s.mu.Unlock()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.attempt(ctx, d)
			s.mu.Lock()
			delete(s.inFlight, d.id)
			s.mu.Unlock()
			s.poke()
		}()
	}
	var nextAt sql.NullInt64
	err = s.db.QueryRowContext(ctx, `SELECT MIN(next_at) FROM sandbox_notifications WHERE delivered_at IS NULL AND gave_up = 0`).Scan(&nextAt)
	if err != nil {
		return 0, err
	}
	if !nextAt.Valid {
		return time.Minute, nil
	}
	wait := time.Duration(nextAt.Int64 - s.now().UnixNano())
	return max(wait, 5*time.Millisecond), nil
}

// stillDue reports whether d is unchanged since it was read and due at now.
func (s *Sender) stillDue(ctx context.Context, d due, now int64) bool {
	var one int
	err := s.db.QueryRowContext(ctx, `SELECT 1 FROM sandbox_notifications WHERE id = ? AND attempts = ? AND held = ?
		AND next_at <= ? AND delivered_at IS NULL AND gave_up = 0`, d.id, d.attempts, d.held, now).Scan(&one)
	return err == nil
}

// attempt makes one delivery attempt of d and records its outcome.
func (s *Sender) attempt(ctx context.Context, d due) {
	w := s.wallets[d.wallet]
	if w == nil {
		s.log.Error("sandbox notifications: unregistered wallet", "wallet", d.wallet, "id", d.id)
		return
	}
	f := s.faults.Settings().Notifications
	if !d.held && s.faults.Roll(f.ReorderRate) {
		// Hold it back once, long enough for notifications behind it to overtake.
		hold := max(time.Duration(float64(15*time.Second)*s.scale), 50*time.Millisecond)
		s.exec(ctx, `UPDATE sandbox_notifications SET held = 1, next_at = ? WHERE id = ?`, s.now().Add(hold).UnixNano(), d.id)
		return
	}
	if f.DelayMS > 0 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(f.DelayMS) * time.Millisecond):
		}
	}
	if s.faults.Roll(f.ForgedRate) {
		s.send(ctx, w, d, true) // a probe: whatever the merchant answers changes nothing
	}
	acked := false
	if !s.faults.Roll(f.DropRate) {
		acked = s.send(ctx, w, d, false)
		if s.faults.Roll(f.DuplicateRate) {
			acked = s.send(ctx, w, d, false) || acked
		}
	}
	if ctx.Err() != nil {
		return // stopping: the attempt is made again after the restart
	}
	n := d.attempts + 1
	switch sched := w.Schedule(); {
	case acked:
		s.exec(ctx, `UPDATE sandbox_notifications SET attempts = ?, delivered_at = ? WHERE id = ?`, n, s.now().UnixNano(), d.id)
	case n > len(sched):
		s.log.Info("sandbox notifications: gave up", "wallet", d.wallet, "id", d.id, "attempts", n)
		s.exec(ctx, `UPDATE sandbox_notifications SET attempts = ?, gave_up = 1 WHERE id = ?`, n, d.id)
	default:
		next := s.now().Add(time.Duration(float64(sched[n-1]) * s.scale))
		s.exec(ctx, `UPDATE sandbox_notifications SET attempts = ?, next_at = ? WHERE id = ?`, n, next.UnixNano(), d.id)
	}
}

func (s *Sender) send(ctx context.Context, w Wallet, d due, forged bool) bool {
	header, body, err := w.Render(d.payload, forged)
	if err != nil {
		s.log.Error("sandbox notifications: render", "wallet", d.wallet, "id", d.id, "err", err)
		return false
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, bytes.NewReader(body))
	if err != nil {
		s.log.Warn("sandbox notifications: bad notify url", "wallet", d.wallet, "id", d.id, "err", err)
		return false
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.log.Info("sandbox notifications: attempt failed", "wallet", d.wallet, "id", d.id, "err", err)
		return false
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return !forged && w.Acknowledged(resp.StatusCode, answer)
}

func (s *Sender) exec(ctx context.Context, query string, args ...any) {
	// The outcome of an attempt must be recorded even while the loop is being stopped.
	if _, err := s.db.ExecContext(context.WithoutCancel(ctx), query, args...); err != nil {
		s.log.Error("sandbox notifications: record attempt", "err", err)
	}
}
