package gateway_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"

	"github.com/hutong-pay/hutong/internal/fakewallet"
	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
	"github.com/hutong-pay/hutong/internal/store/sqlite"
)

// planned is a job the recording planner hands out: its name says which decision made it.
type planned struct {
	What string `json:"what"`
	ID   string `json:"id"`
}

func (planned) Kind() string { return "gateway_test_planned" }

// recorder plans one job per decision, so that the queue shows which the use cases asked for.
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) note(what, id string) []gateway.Job {
	r.mu.Lock()
	r.calls = append(r.calls, what+" "+id)
	r.mu.Unlock()
	return []gateway.Job{{Args: planned{What: what, ID: id}}}
}

func (r *recorder) PaymentCreated(p *payment.Payment, _ time.Time) []gateway.Job {
	return r.note("payment_created", p.ID)
}
func (r *recorder) MethodChosen(p *payment.Payment, _ time.Time) []gateway.Job {
	return r.note("method_chosen", p.ID)
}
func (r *recorder) RefundCreated(rf *payment.Refund, _ time.Time) []gateway.Job {
	return r.note("refund_created", rf.ID)
}
func (r *recorder) EventsWritten(events []payment.Event) []gateway.Job {
	var jobs []gateway.Job
	for _, e := range events {
		jobs = append(jobs, r.note("event "+string(e.Type), e.ID)...)
	}
	return jobs
}

type env struct {
	store  *sqlite.Store
	svc    *gateway.Service
	wallet *fakewallet.Wallet
	merch  string
}

var ctx = context.Background()

func newEnv(t *testing.T, cfg gateway.Config) *env {
	t.Helper()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hutong.db"), sqlite.Options{Migrate: true, Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{store: st, wallet: fakewallet.New(fakewallet.Options{Name: payment.WeChatPay}), merch: payment.NewID("mer")}
	if err := st.CreateMerchant(ctx, &payment.Merchant{ID: e.merch, Name: "m", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	cfg.Store, cfg.Providers, cfg.PublicURL = st, []gateway.Provider{e.wallet}, "https://pay.example.test"
	e.svc = gateway.New(cfg)
	return e
}

// queued returns "what id" of every planned job in the store's queue, sorted.
func (e *env) queued(t *testing.T) []string {
	t.Helper()
	c, err := river.NewClient(riversqlite.New(e.store.DB()), &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.JobList(ctx, river.NewJobListParams().Kinds(planned{}.Kind()).First(1000))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, j := range res.Jobs {
		var p planned
		if err := json.Unmarshal(j.EncodedArgs, &p); err != nil {
			t.Fatal(err)
		}
		out = append(out, p.What+" "+p.ID)
	}
	sort.Strings(out)
	return out
}

func want(t *testing.T, what string, got []string, items ...string) {
	t.Helper()
	sort.Strings(items)
	if len(got) != len(items) {
		t.Fatalf("%s: %v, want %v", what, got, items)
	}
	for i := range got {
		if got[i] != items[i] {
			t.Fatalf("%s: %v, want %v", what, got, items)
		}
	}
}

// Each state change enqueues, in its own transaction, the jobs the planner names for it.
func TestStateChangesEnqueueTheirJobs(t *testing.T) {
	rec := &recorder{}
	e := newEnv(t, gateway.Config{Jobs: rec})

	placed, err := e.svc.CreatePayment(ctx, e.merch, gateway.CreatePaymentParams{Amount: 100, Description: "tea",
		Provider: payment.WeChatPay, Channel: payment.ChannelQR})
	if err != nil {
		t.Fatal(err)
	}
	chosen, err := e.svc.CreatePayment(ctx, e.merch, gateway.CreatePaymentParams{Amount: 200, Description: "tea"})
	if err != nil {
		t.Fatal(err)
	}
	want(t, "after creation", e.queued(t), "payment_created "+placed.ID, "payment_created "+chosen.ID)
	if _, err := e.svc.ChooseMethod(ctx, chosen.ID, payment.WeChatPay, payment.ChannelQR, nil); err != nil {
		t.Fatal(err)
	}

	wp, err := e.wallet.Pay(placed.ProviderRef.OutTradeNo)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // a repeated notification changes nothing and enqueues nothing
		if _, err := e.svc.ApplyWalletPayment(ctx, payment.WeChatPay, wp); err != nil {
			t.Fatal(err)
		}
	}
	events, err := e.store.ListEvents(ctx, e.merch, gateway.EventFilter{Limit: 10})
	if err != nil || len(events) != 1 {
		t.Fatalf("events: %+v (%v)", events, err)
	}
	succeeded := events[0].ID

	e.wallet.SetRefundsPending(true)
	r, err := e.svc.CreateRefund(ctx, e.merch, gateway.CreateRefundParams{PaymentID: placed.ID})
	if err != nil {
		t.Fatal(err)
	}
	if r.Amount != 100 || r.Status != payment.RefundPending {
		t.Fatalf("full refund %+v, want 100 pending", r)
	}
	wr, err := e.wallet.SettleRefund(r.ProviderRef.OutRefundNo, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ApplyWalletRefund(ctx, payment.WeChatPay, wr); err != nil {
		t.Fatal(err)
	}
	events, _ = e.store.ListEvents(ctx, e.merch, gateway.EventFilter{Type: payment.EventRefundSucceeded, Limit: 10})
	if len(events) != 1 {
		t.Fatalf("refund events: %+v", events)
	}
	if _, err := e.svc.CancelPayment(ctx, e.merch, chosen.ID, "requested_by_merchant"); err != nil {
		t.Fatal(err)
	}
	canceled, _ := e.store.ListEvents(ctx, e.merch, gateway.EventFilter{Type: payment.EventPaymentCanceled, Limit: 10})
	if len(canceled) != 1 {
		t.Fatalf("cancel events: %+v", canceled)
	}
	want(t, "every change", e.queued(t),
		"payment_created "+placed.ID, "payment_created "+chosen.ID, "method_chosen "+chosen.ID,
		"event payment.succeeded "+succeeded, "refund_created "+r.ID, "event refund.succeeded "+events[0].ID,
		"event payment.canceled "+canceled[0].ID)
}

// A change refused (here: a wallet that refuses the order after the payment was recorded) keeps
// only the jobs of what was committed: the failure's event and its delivery.
func TestRefusedOrderEnqueuesItsFailure(t *testing.T) {
	rec := &recorder{}
	e := newEnv(t, gateway.Config{Jobs: rec})
	e.wallet.SetError(fakewallet.OpCreatePayment, fakewallet.Refused("PARAM_ERROR", "bad"))
	if _, err := e.svc.CreatePayment(ctx, e.merch, gateway.CreatePaymentParams{Amount: 100, Description: "tea",
		Provider: payment.WeChatPay, Channel: payment.ChannelQR}); err == nil {
		t.Fatal("refused order reported no error")
	}
	events, _ := e.store.ListEvents(ctx, e.merch, gateway.EventFilter{Limit: 10})
	if len(events) != 1 || events[0].Type != payment.EventPaymentFailed {
		t.Fatalf("events: %+v", events)
	}
	var p struct{ ID string }
	_ = json.Unmarshal(events[0].Data, &p)
	want(t, "jobs", e.queued(t), "payment_created "+p.ID, "event payment.failed "+events[0].ID)
}

func TestWithoutPlannerNothingIsQueued(t *testing.T) {
	e := newEnv(t, gateway.Config{})
	p, err := e.svc.CreatePayment(ctx, e.merch, gateway.CreatePaymentParams{Amount: 100, Description: "tea",
		Provider: payment.WeChatPay, Channel: payment.ChannelQR})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CancelPayment(ctx, e.merch, p.ID, "requested_by_merchant"); err != nil {
		t.Fatal(err)
	}
	c, _ := river.NewClient(riversqlite.New(e.store.DB()), &river.Config{})
	res, err := c.JobList(ctx, river.NewJobListParams().First(10))
	if err != nil || len(res.Jobs) != 0 {
		t.Fatalf("jobs without a planner: %d (%v)", len(res.Jobs), err)
	}
}

func TestMinPaymentTTL(t *testing.T) {
	soon := time.Now().Add(5 * time.Second)
	in := gateway.CreatePaymentParams{Amount: 100, Description: "tea", ExpiresAt: &soon}
	e := newEnv(t, gateway.Config{})
	if _, err := e.svc.CreatePayment(ctx, e.merch, in); payment.KindOf(err) != payment.Invalid {
		t.Fatalf("expires_at in 5s by default: %v, want invalid (a minute at least)", err)
	}
	e = newEnv(t, gateway.Config{MinPaymentTTL: time.Second})
	p, err := e.svc.CreatePayment(ctx, e.merch, in)
	if err != nil || !p.ExpiresAt.Equal(soon.UTC().Truncate(time.Microsecond)) {
		t.Fatalf("expires_at in 5s with a 1s minimum: %+v, %v", p, err)
	}
}
