package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/identity"
	"github.com/hutong-pay/hutong/internal/payment"
)

// CustomerStore is what the customers suite needs: the identity store, and merchants to own
// the customers.
type CustomerStore interface {
	identity.Store
	CreateMerchant(ctx context.Context, m *payment.Merchant) error
}

// RunCustomers runs the customers suite (identity.Store), each subtest on its own store from open.
func RunCustomers(t *testing.T, open func(t *testing.T) CustomerStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s CustomerStore)
	}{
		{"RoundTrip", testCustomerRoundTrip},
		{"NotFoundAndIsolation", testCustomerIsolation},
		{"ByIdentity", testCustomerByIdentity},
		{"IdentityBelongsToOneCustomer", testIdentityUnique},
		{"AddIdentity", testAddIdentity},
		{"ConcurrentCreate", testConcurrentCustomerCreate},
		{"ConcurrentLink", testConcurrentLink},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

func customerMerchant(t *testing.T, s CustomerStore) *payment.Merchant {
	t.Helper()
	m := &payment.Merchant{ID: payment.NewID("mch"), Name: "Hutong Tea House", CreatedAt: t0}
	if err := s.CreateMerchant(ctx, m); err != nil {
		t.Fatalf("create merchant: %v", err)
	}
	return m
}

const (
	wxApp  = "wx8888888888888888"
	aliApp = "2021000000000001"
)

func wxIdentity(at time.Time) identity.Identity {
	return identity.Identity{Provider: payment.WeChatPay, AppID: wxApp, OpenID: "o" + payment.RandomString(27),
		UnionID: "u" + payment.RandomString(27), CreatedAt: at}
}

func aliIdentity(at time.Time) identity.Identity {
	return identity.Identity{Provider: payment.Alipay, AppID: aliApp, UserID: "2088" + payment.RandomString(12),
		OpenIDAlipay: "0" + payment.RandomString(45), CreatedAt: at}
}

func newCustomer(merchantID string, livemode bool, ids ...identity.Identity) *identity.Customer {
	return &identity.Customer{ID: payment.NewID("cus"), Object: "customer", MerchantID: merchantID, Livemode: livemode,
		Identities: ids, CreatedAt: t0}
}

func createCustomer(t *testing.T, s CustomerStore, c *identity.Customer) *identity.Customer {
	t.Helper()
	if err := s.CreateCustomer(ctx, c); err != nil {
		t.Fatalf("create customer: %v", err)
	}
	return c
}

func testCustomerRoundTrip(t *testing.T, s CustomerStore) {
	m := customerMerchant(t, s)
	// Times in another zone and below the microsecond come back in UTC, to the microsecond.
	shanghai := time.FixedZone("CST", 8*3600)
	c := newCustomer(m.ID, true, wxIdentity(t0.Add(time.Second).In(shanghai).Add(789*time.Nanosecond)), aliIdentity(t0.Add(2*time.Second)))
	c.CreatedAt = t0.In(shanghai).Add(321 * time.Nanosecond)
	createCustomer(t, s, c)
	if c.CreatedAt != t0 || c.Identities[0].CreatedAt != t0.Add(time.Second) {
		t.Fatalf("CreateCustomer left times %v, %v; want them as stored (%v, %v)", c.CreatedAt, c.Identities[0].CreatedAt, t0, t0.Add(time.Second))
	}
	got, err := s.Customer(ctx, m.ID, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "customer", got, c)

	// A customer without identities has an empty list, not nil.
	bare := createCustomer(t, s, newCustomer(m.ID, false))
	got, err = s.Customer(ctx, m.ID, bare.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Identities == nil || len(got.Identities) != 0 || got.Livemode {
		t.Fatalf("bare customer: got %+v", got)
	}

	// Identities come back oldest first, whatever the insertion order.
	late, early := wxIdentity(t0.Add(time.Hour)), aliIdentity(t0.Add(time.Minute))
	two := createCustomer(t, s, newCustomer(m.ID, false, late, early))
	got, err = s.Customer(ctx, m.ID, two.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Identities) != 2 || got.Identities[0].Provider != payment.Alipay || got.Identities[1].Provider != payment.WeChatPay {
		t.Fatalf("identities not oldest first: %+v", got.Identities)
	}

	dup := *bare
	dup.Identities = nil
	wantKind(t, "duplicate customer id", s.CreateCustomer(ctx, &dup), payment.Conflict)
}

func testCustomerIsolation(t *testing.T, s CustomerStore) {
	m, other := customerMerchant(t, s), customerMerchant(t, s)
	c := createCustomer(t, s, newCustomer(m.ID, false, wxIdentity(t0)))
	got, err := s.Customer(ctx, other.ID, c.ID)
	wantNotFound(t, "another merchant's customer", got, err)
	got, err = s.Customer(ctx, m.ID, "cus_missing")
	wantNotFound(t, "missing customer", got, err)
	got, err = s.CustomerByIdentity(ctx, other.ID, false, payment.WeChatPay, wxApp, c.Identities[0].OpenID)
	wantNotFound(t, "another merchant's identity", got, err)

	// A customer of an unknown merchant is refused by the reference.
	err = s.CreateCustomer(ctx, newCustomer("mch_missing", false))
	if err == nil {
		t.Fatal("customer of an unknown merchant: stored")
	}
}

func testCustomerByIdentity(t *testing.T, s CustomerStore) {
	m := customerMerchant(t, s)
	wx, ali := wxIdentity(t0), aliIdentity(t0.Add(time.Second))
	c := createCustomer(t, s, newCustomer(m.ID, false, wx, ali))
	for _, tc := range []struct {
		name     string
		provider payment.Provider
		app, sub string
	}{
		{"wechat openid", payment.WeChatPay, wxApp, wx.OpenID},
		{"alipay user_id", payment.Alipay, aliApp, ali.UserID},
	} {
		got, err := s.CustomerByIdentity(ctx, m.ID, false, tc.provider, tc.app, tc.sub)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		wantEqual(t, tc.name, got, c)
	}
	for _, tc := range []struct {
		name     string
		live     bool
		provider payment.Provider
		app, sub string
	}{
		{"unionid is not the subject", false, payment.WeChatPay, wxApp, wx.UnionID},
		{"alipay open_id is not the subject when user_id is known", false, payment.Alipay, aliApp, ali.OpenIDAlipay},
		{"another app", false, payment.WeChatPay, "wx0000000000000000", wx.OpenID},
		{"another provider", false, payment.Alipay, wxApp, wx.OpenID},
		{"the other mode", true, payment.WeChatPay, wxApp, wx.OpenID},
	} {
		got, err := s.CustomerByIdentity(ctx, m.ID, tc.live, tc.provider, tc.app, tc.sub)
		wantNotFound(t, tc.name, got, err)
	}

	// An Alipay app that gives only open ids is found by the open id.
	openOnly := identity.Identity{Provider: payment.Alipay, AppID: aliApp, OpenIDAlipay: "0" + payment.RandomString(45), CreatedAt: t0}
	c2 := createCustomer(t, s, newCustomer(m.ID, false, openOnly))
	got, err := s.CustomerByIdentity(ctx, m.ID, false, payment.Alipay, aliApp, openOnly.OpenIDAlipay)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "open-id-only customer", got, c2)
}

func testIdentityUnique(t *testing.T, s CustomerStore) {
	m := customerMerchant(t, s)
	wx := wxIdentity(t0)
	first := createCustomer(t, s, newCustomer(m.ID, false, wx))

	// The same identity for a second customer is refused, and nothing of that customer is kept.
	second := newCustomer(m.ID, false, aliIdentity(t0), wx)
	wantKind(t, "identity of another customer", s.CreateCustomer(ctx, second), payment.Conflict)
	got, err := s.Customer(ctx, m.ID, second.ID)
	wantNotFound(t, "customer whose creation failed", got, err)
	got, err = s.CustomerByIdentity(ctx, m.ID, false, payment.Alipay, aliApp, second.Identities[0].UserID)
	wantNotFound(t, "identity of the customer whose creation failed", got, err)

	// Two identities at one app for one customer are refused too.
	wantKind(t, "two identities at one app", s.CreateCustomer(ctx, newCustomer(m.ID, false, wxIdentity(t0), wxIdentity(t0))), payment.Conflict)

	// The same buyer is a separate identity in the other mode, at another app, and for another merchant.
	live := createCustomer(t, s, newCustomer(m.ID, true, wx))
	otherApp := wx
	otherApp.AppID = "wx0000000000000000"
	createCustomer(t, s, newCustomer(m.ID, false, otherApp))
	createCustomer(t, s, newCustomer(customerMerchant(t, s).ID, false, wx))
	got, err = s.CustomerByIdentity(ctx, m.ID, false, payment.WeChatPay, wxApp, wx.OpenID)
	if err != nil || got.ID != first.ID {
		t.Fatalf("test-mode owner: got %v %v, want %s", got, err, first.ID)
	}
	got, err = s.CustomerByIdentity(ctx, m.ID, true, payment.WeChatPay, wxApp, wx.OpenID)
	if err != nil || got.ID != live.ID {
		t.Fatalf("live owner: got %v %v, want %s", got, err, live.ID)
	}
}

func testAddIdentity(t *testing.T, s CustomerStore) {
	m, other := customerMerchant(t, s), customerMerchant(t, s)
	wx := wxIdentity(t0)
	c := createCustomer(t, s, newCustomer(m.ID, false, wx))
	ali := aliIdentity(t0.Add(time.Minute).Add(999 * time.Nanosecond))
	got, err := s.AddIdentity(ctx, m.ID, false, c.ID, ali)
	if err != nil {
		t.Fatal(err)
	}
	ali.CreatedAt = t0.Add(time.Minute)
	want := *c
	want.Identities = []identity.Identity{wx, ali}
	wantEqual(t, "customer after linking", got, &want)
	read, err := s.Customer(ctx, m.ID, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "customer read after linking", read, &want)

	// Linking what it already has, or another identity at an app where it has one, is refused.
	wantKind2 := func(what string, got *identity.Customer, err error, kind payment.Kind) {
		t.Helper()
		wantKind(t, what, err, kind)
		if got != nil {
			t.Fatalf("%s: got a customer with the error: %+v", what, got)
		}
	}
	got, err = s.AddIdentity(ctx, m.ID, false, c.ID, ali)
	wantKind2("linking the same identity again", got, err, payment.Conflict)
	got, err = s.AddIdentity(ctx, m.ID, false, c.ID, aliIdentity(t0))
	wantKind2("a second identity at one app", got, err, payment.Conflict)

	// Another customer's identity is refused.
	c2 := createCustomer(t, s, newCustomer(m.ID, false))
	got, err = s.AddIdentity(ctx, m.ID, false, c2.ID, wx)
	wantKind2("another customer's identity", got, err, payment.Conflict)
	read, err = s.Customer(ctx, m.ID, c2.ID)
	if err != nil || len(read.Identities) != 0 {
		t.Fatalf("refused link changed the customer: %+v %v", read, err)
	}

	// Unknown customers, another merchant's and the other mode's are not found.
	got, err = s.AddIdentity(ctx, m.ID, false, "cus_missing", wxIdentity(t0))
	wantKind2("unknown customer", got, err, payment.NotFound)
	got, err = s.AddIdentity(ctx, other.ID, false, c2.ID, wxIdentity(t0))
	wantKind2("another merchant's customer", got, err, payment.NotFound)
	got, err = s.AddIdentity(ctx, m.ID, true, c2.ID, wxIdentity(t0))
	wantKind2("the other mode's customer", got, err, payment.NotFound)
}

// Two logins of one new buyer at once: one customer gets the identity, the other is refused.
func testConcurrentCustomerCreate(t *testing.T, s CustomerStore) {
	m := customerMerchant(t, s)
	wx := wxIdentity(t0)
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.CreateCustomer(ctx, newCustomer(m.ID, false, wx))
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case payment.KindOf(err) != payment.Conflict:
			t.Fatalf("concurrent create: %v, want success or conflict", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d customers got one identity, want 1", won)
	}
}

// Linking identities at one app to one customer at once: exactly one link holds.
func testConcurrentLink(t *testing.T, s CustomerStore) {
	m := customerMerchant(t, s)
	c := createCustomer(t, s, newCustomer(m.ID, false))
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.AddIdentity(ctx, m.ID, false, c.ID, wxIdentity(t0))
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case payment.KindOf(err) != payment.Conflict:
			t.Fatalf("concurrent link: %v, want success or conflict", err)
		}
	}
	got, err := s.Customer(ctx, m.ID, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if won != 1 || len(got.Identities) != 1 {
		t.Fatalf("%d links held and the customer has %d identities, want 1 and 1", won, len(got.Identities))
	}
}
