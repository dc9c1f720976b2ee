// Package identity is Hutong's identity bridge: a buyer's mini-program login code, exchanged at
// the wallet (WeChat jscode2session, Alipay alipay.system.oauth.token), becomes a customer of the
// merchant holding that wallet identity (WeChat openid/unionid, Alipay user_id/open_id); a second
// wallet's code links to the same customer. A mini-program payment for a customer then pays as
// that customer's identity at the chosen wallet (CustomerPayer, which the gateway consumes).
//
// It also serves WeChat web authorization for the hosted checkout (WebAuth): a buyer inside
// WeChat whose payment has no openid is sent through /connect/oauth2/authorize and back, and the
// openid obtained places the JSAPI order.
//
// What the wallets hand back besides the identity (WeChat's session_key, Alipay's access and
// refresh tokens, web authorization tokens) is dropped as soon as the answer is read: it never
// leaves the process and is never stored, so there is nothing to leak or to encrypt.
package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hutong-pay/hutong/internal/payment"
)

// Identity is a buyer as one wallet app knows them. Which fields are set depends on the wallet:
// WeChat gives an openid (per app) and, when the app is bound to an open platform account, a
// unionid; Alipay gives a user_id (2088…) and/or an open_id (per app).
type Identity struct {
	Provider     payment.Provider `json:"provider"`
	AppID        string           `json:"app_id"`
	OpenID       string           `json:"openid,omitempty"`  // WeChat
	UnionID      string           `json:"unionid,omitempty"` // WeChat
	UserID       string           `json:"user_id,omitempty"` // Alipay
	OpenIDAlipay string           `json:"open_id,omitempty"` // Alipay
	CreatedAt    time.Time        `json:"created_at"`
}

// Subject is what the wallet identifies the buyer by within the app: the openid at WeChat, the
// user_id at Alipay (its open_id for apps that Alipay gives only open ids). One identity per
// (merchant, mode, provider, app, subject) exists: it belongs to one customer.
func (i Identity) Subject() string {
	switch i.Provider {
	case payment.WeChatPay:
		return i.OpenID
	case payment.Alipay:
		if i.UserID != "" {
			return i.UserID
		}
		return i.OpenIDAlipay
	}
	return ""
}

// Customer is a merchant's buyer, known by one identity per wallet app. Its JSON form is the API's.
type Customer struct {
	ID         string     `json:"id"`
	Object     string     `json:"object"` // always "customer"
	MerchantID string     `json:"-"`
	Livemode   bool       `json:"livemode"`
	Identities []Identity `json:"identities"` // oldest first
	CreatedAt  time.Time  `json:"created_at"`
}

// identityAt returns c's identity at provider's app appID.
func (c *Customer) identityAt(provider payment.Provider, appID string) (Identity, bool) {
	for _, i := range c.Identities {
		if i.Provider == provider && i.AppID == appID {
			return i, true
		}
	}
	return Identity{}, false
}

// Store keeps customers and their identities. Both Hutong stores implement it.
type Store interface {
	// CreateCustomer stores c with its identities in one transaction. An identity that already
	// belongs to a customer is refused with a Conflict error (code "duplicate").
	CreateCustomer(ctx context.Context, c *Customer) error
	// Customer returns a merchant's customer with its identities, or a NotFound error.
	Customer(ctx context.Context, merchantID, id string) (*Customer, error)
	// CustomerByIdentity returns the customer holding the identity whose Subject is subject at
	// provider's app appID, or a NotFound error.
	CustomerByIdentity(ctx context.Context, merchantID string, livemode bool, provider payment.Provider, appID, subject string) (*Customer, error)
	// AddIdentity links idn to customer id (of merchantID, in idn's mode) and returns the customer
	// as it then stands. It is refused with a Conflict error (code "duplicate") when the identity
	// belongs to a customer already, or when the customer already has an identity at that
	// provider's app; with a NotFound error when there is no such customer in that mode.
	AddIdentity(ctx context.Context, merchantID string, livemode bool, customerID string, idn Identity) (*Customer, error)
}

// Exchanger turns a wallet's one-time login code into the buyer's identity there.
type Exchanger interface {
	Provider() payment.Provider
	AppID() string
	Exchange(ctx context.Context, code string) (Identity, error)
}

// Config wires a Service.
type Config struct {
	Store Store
	// Exchangers are the configured wallets' login clients (NewWeChat, NewAlipay); a wallet
	// without one refuses logins.
	Exchangers []Exchanger
	Now        func() time.Time
	Logger     *slog.Logger
}

// Service runs the customer use cases. It is safe for concurrent use.
type Service struct {
	store      Store
	exchangers map[payment.Provider]Exchanger
	now        func() time.Time
	log        *slog.Logger
}

// New returns a Service.
func New(cfg Config) *Service {
	s := &Service{store: cfg.Store, exchangers: map[payment.Provider]Exchanger{}, now: cfg.Now, log: cfg.Logger}
	for _, e := range cfg.Exchangers {
		s.exchangers[e.Provider()] = e
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// clock is the time in UTC at microsecond precision, which both databases keep exactly.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// LoginParams is a request to exchange a login code.
type LoginParams struct {
	Provider payment.Provider
	Code     string
	// CustomerID, when set, links the identity to this customer instead of finding or making one;
	// an unknown customer is a 400 naming "customer".
	CustomerID string
}

// maxCode bounds a login code. Real ones are 32 to 40 characters.
const maxCode = 256

// Login exchanges a mini-program login code at the wallet and returns the customer holding the
// identity it names: the existing one, or a new one. With in.CustomerID the identity is linked
// to that customer instead; an identity that belongs to another customer is refused (409).
func (s *Service) Login(ctx context.Context, merchantID string, livemode bool, in LoginParams) (*Customer, error) {
	if in.Provider == "" {
		return nil, payment.InvalidParam("provider", "provider is required: wechatpay or alipay")
	}
	if !in.Provider.Valid() {
		return nil, payment.InvalidParam("provider", "provider must be one of wechatpay, alipay")
	}
	ex, ok := s.exchangers[in.Provider]
	if !ok {
		return nil, payment.InvalidParam("provider", "%s login is not configured on this gateway", in.Provider)
	}
	if err := checkCode(in.Code); err != nil {
		return nil, err
	}
	var target *Customer
	if in.CustomerID != "" {
		// Checked before the code is spent: a mistyped customer must not burn the buyer's code.
		c, err := s.Customer(ctx, merchantID, livemode, in.CustomerID)
		if err != nil {
			return nil, noSuchCustomer(err, in.CustomerID)
		}
		target = c
	}
	idn, err := ex.Exchange(ctx, in.Code)
	if err != nil {
		s.log.WarnContext(ctx, "identity: login code exchange failed", "provider", in.Provider, "kind", payment.KindOf(err), "err", err)
		return nil, err
	}
	idn.CreatedAt = s.clock()
	c, err := s.attach(ctx, merchantID, livemode, target, idn)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "identity: customer logged in", "customer_id", c.ID, "provider", in.Provider)
	return c, nil
}

// attach finds the customer holding idn, or makes one, or (with target) links idn to target.
// The store's unique constraints settle races between concurrent logins: the loser reads again.
func (s *Service) attach(ctx context.Context, merchantID string, livemode bool, target *Customer, idn Identity) (*Customer, error) {
	for attempt := 0; ; attempt++ {
		owner, err := s.store.CustomerByIdentity(ctx, merchantID, livemode, idn.Provider, idn.AppID, idn.Subject())
		switch {
		case err == nil && target != nil && owner.ID != target.ID:
			return nil, &payment.Error{Kind: payment.Conflict, Code: "identity_taken", Param: "code",
				Message: fmt.Sprintf("this %s identity belongs to another customer, %s", idn.Provider, owner.ID)}
		case err == nil:
			return owner, nil
		case !payment.IsNotFound(err):
			return nil, fmt.Errorf("identity: find customer by identity: %w", err)
		}
		if attempt > 0 {
			// The constraint said the identity exists, then it did not: it cannot be settled here.
			return nil, fmt.Errorf("identity: %s identity neither found nor insertable", idn.Provider)
		}
		if target == nil {
			c := &Customer{ID: payment.NewID("cus"), Object: "customer", MerchantID: merchantID, Livemode: livemode,
				Identities: []Identity{idn}, CreatedAt: idn.CreatedAt}
			err = s.store.CreateCustomer(ctx, c)
			if err == nil {
				return c, nil
			}
		} else {
			if have, ok := target.identityAt(idn.Provider, idn.AppID); ok && have.Subject() != idn.Subject() {
				return nil, identityExists(target.ID, idn.Provider)
			}
			var c *Customer
			c, err = s.store.AddIdentity(ctx, merchantID, livemode, target.ID, idn)
			if err == nil {
				return c, nil
			}
		}
		if payment.KindOf(err) != payment.Conflict {
			return nil, fmt.Errorf("identity: store customer: %w", err)
		}
		if target != nil {
			// Either someone took the identity meanwhile (read again to say who) or the
			// customer got another identity at this app meanwhile.
			fresh, ferr := s.store.Customer(ctx, merchantID, target.ID)
			if ferr != nil {
				return nil, fmt.Errorf("identity: reload customer: %w", ferr)
			}
			if have, ok := fresh.identityAt(idn.Provider, idn.AppID); ok && have.Subject() != idn.Subject() {
				return nil, identityExists(target.ID, idn.Provider)
			}
			target = fresh
		}
	}
}

func identityExists(customerID string, p payment.Provider) error {
	return &payment.Error{Kind: payment.Conflict, Code: "identity_exists", Param: "customer",
		Message: fmt.Sprintf("customer %s already has a different %s identity", customerID, p)}
}

// checkCode refuses what cannot be a login code before the wallet is asked.
func checkCode(code string) error {
	if code == "" {
		return payment.InvalidParam("code", "code is required: the mini program's login code (wx.login / my.getAuthCode)")
	}
	if len(code) > maxCode || strings.ContainsFunc(code, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return &payment.Error{Kind: payment.Invalid, Code: "invalid_code", Param: "code", Message: "the login code is not valid"}
	}
	return nil
}

// validCustomerID reports whether id has the shape of a customer id ("cus_" and 24 of
// [0-9A-Za-z]), so that anything else is answered without asking the database.
func validCustomerID(id string) bool {
	rest, ok := strings.CutPrefix(id, "cus_")
	if !ok || len(rest) != 24 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		b := rest[i]
		if !('0' <= b && b <= '9' || 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z') {
			return false
		}
	}
	return true
}

// Customer returns a merchant's customer in mode livemode.
func (s *Service) Customer(ctx context.Context, merchantID string, livemode bool, id string) (*Customer, error) {
	if !validCustomerID(id) {
		return nil, payment.ErrNotFound("customer", id)
	}
	c, err := s.store.Customer(ctx, merchantID, id)
	if err != nil {
		return nil, err
	}
	if c.Livemode != livemode {
		// A test key never sees live customers, nor the reverse.
		return nil, payment.ErrNotFound("customer", id)
	}
	return c, nil
}

// CustomerPayer returns what the configured wallets know of customer id, as a payment's payer:
// its openid at the WeChat app and its user_id / open_id at the Alipay app the gateway pays
// with. It is how the gateway pays a customer's mini-program payment as that customer.
// An unknown customer is a 400 naming the parameter "customer".
func (s *Service) CustomerPayer(ctx context.Context, merchantID string, livemode bool, customerID string) (*payment.Payer, error) {
	c, err := s.Customer(ctx, merchantID, livemode, customerID)
	if err != nil {
		return nil, noSuchCustomer(err, customerID)
	}
	payer := &payment.Payer{}
	if ex, ok := s.exchangers[payment.WeChatPay]; ok {
		if i, ok := c.identityAt(payment.WeChatPay, ex.AppID()); ok {
			payer.OpenID = i.OpenID
		}
	}
	if ex, ok := s.exchangers[payment.Alipay]; ok {
		if i, ok := c.identityAt(payment.Alipay, ex.AppID()); ok {
			payer.BuyerID, payer.AlipayOpenID = i.UserID, i.OpenIDAlipay
		}
	}
	return payer, nil
}

// noSuchCustomer answers a customer named in a request body that cannot be read: unknown (in
// this mode, for this merchant) is the request's fault, a 400 naming the parameter, as Stripe
// answers references in bodies; anything else passes on.
func noSuchCustomer(err error, id string) error {
	if payment.IsNotFound(err) {
		return &payment.Error{Kind: payment.Invalid, Code: "resource_missing", Param: "customer",
			Message: fmt.Sprintf("no such customer: %s", id), Err: err}
	}
	return fmt.Errorf("identity: customer %s: %w", id, err)
}

// errNoIdentity is returned by an Exchanger whose wallet answered without an identity.
var errNoIdentity = errors.New("the wallet answered without the buyer's identity")
