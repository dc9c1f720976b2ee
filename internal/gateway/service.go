// Package gateway holds Hutong's use cases: creating, following, cancelling and refunding
// payments, and applying what the wallets say. It declares the interfaces it consumes (Store,
// Provider) and never holds a database transaction across a call to a wallet: it records the
// intent, calls out, then records the result.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hutong-pay/hutong/internal/payment"
)

// Config wires a Service.
type Config struct {
	Store     Store
	Providers []Provider
	// PublicURL is where buyers and wallets reach this gateway, e.g. https://pay.example.com;
	// checkout pages and wallet notify URLs are built from it.
	PublicURL string
	// PaymentTTL is how long a payment stays payable when the merchant gives no expires_at.
	PaymentTTL time.Duration
	// MinPaymentTTL is the shortest expires_at a merchant may ask for, from now; default a minute.
	// Tests of expiry shorten it.
	MinPaymentTTL time.Duration
	// Jobs plans the background jobs each state change enqueues; nil enqueues none.
	Jobs JobPlanner
	// Customers resolves a payment's customer to the buyer's wallet identities; nil keeps
	// customer ids as labels.
	Customers Customers
	Now       func() time.Time
	Logger    *slog.Logger
}

// Service runs the use cases. It is safe for concurrent use.
type Service struct {
	store     Store
	providers map[payment.Provider]Provider
	publicURL string
	ttl       time.Duration
	minTTL    time.Duration
	planner   JobPlanner
	customers Customers
	now       func() time.Time
	log       *slog.Logger
}

// New returns a Service.
func New(cfg Config) *Service {
	s := &Service{
		store: cfg.Store, providers: map[payment.Provider]Provider{}, publicURL: strings.TrimRight(cfg.PublicURL, "/"),
		ttl: cfg.PaymentTTL, minTTL: cfg.MinPaymentTTL, planner: cfg.Jobs, customers: cfg.Customers, now: cfg.Now, log: cfg.Logger,
	}
	if s.minTTL <= 0 {
		s.minTTL = minTTL
	}
	for _, p := range cfg.Providers {
		s.providers[p.Name()] = p
	}
	if s.ttl <= 0 {
		s.ttl = 2 * time.Hour
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// Store returns the service's store, for the layers that read it directly.
func (s *Service) Store() Store { return s.store }

// Provider returns the connector for p, or false when it is not configured.
func (s *Service) Provider(p payment.Provider) (Provider, bool) {
	prov, ok := s.providers[p]
	return prov, ok
}

// NotifyURL is where wallet p sends notifications of kind ("payments" or "refunds").
func (s *Service) NotifyURL(p payment.Provider, kind string) string {
	return s.publicURL + "/notify/" + string(p) + "/" + kind
}

// CheckoutURL is the hosted checkout page of payment id.
func (s *Service) CheckoutURL(id string) string { return s.publicURL + "/checkout/" + id }

// now returns the clock's time in UTC at microsecond precision, which both databases keep exactly.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// CreatePaymentParams is a merchant's request for a payment.
type CreatePaymentParams struct {
	// IdempotencyKey, when the merchant gave one, names the request (with its mode): a retry of a
	// request whose node died mid-way resumes that request instead of placing a second order.
	IdempotencyKey string
	Amount         int64
	Currency       string
	Description    string
	Reference      string
	Provider       payment.Provider
	Channel        payment.Channel
	CustomerID     string
	Payer          *payment.Payer
	ExpiresAt      *time.Time
	ReturnURL      string
	Metadata       map[string]string
	Livemode       bool
}

// Limits on merchant input, inside what both wallets accept.
const (
	maxDescription   = 127 // WeChat Pay description limit, in characters
	maxReference     = 64
	maxMetadataKeys  = 20
	maxMetadataKey   = 40
	maxMetadataValue = 500
	maxReturnURL     = 2048
	minTTL           = time.Minute
	maxTTL           = 7 * 24 * time.Hour
)

func (s *Service) validateCreate(in *CreatePaymentParams, now time.Time) error {
	if err := payment.CheckAmount("amount", in.Amount); err != nil {
		return err
	}
	if in.Currency == "" {
		in.Currency = "CNY"
	}
	if err := payment.CheckCurrency("currency", in.Currency); err != nil {
		return err
	}
	if strings.TrimSpace(in.Description) == "" {
		return payment.InvalidParam("description", "description is required: the buyer sees it at the wallet")
	}
	if err := checkText("description", in.Description, maxDescription); err != nil {
		return err
	}
	if err := checkText("reference", in.Reference, maxReference); err != nil {
		return err
	}
	if len(in.Metadata) > maxMetadataKeys {
		return payment.InvalidParam("metadata", "metadata may have at most %d keys", maxMetadataKeys)
	}
	for k, v := range in.Metadata {
		if k == "" || utf8.RuneCountInString(k) > maxMetadataKey {
			return payment.InvalidParam("metadata", "metadata keys must have 1 to %d characters", maxMetadataKey)
		}
		if err := checkText("metadata", v, maxMetadataValue); err != nil {
			return err
		}
	}
	if in.ReturnURL != "" {
		if err := checkURL("return_url", in.ReturnURL); err != nil {
			return err
		}
	}
	if in.ExpiresAt != nil {
		d := in.ExpiresAt.Sub(now)
		if d < s.minTTL || d > maxTTL {
			return payment.InvalidParam("expires_at", "expires_at must be between %s and %s from now", s.minTTL, maxTTL)
		}
	}
	switch {
	case in.Provider == "" && in.Channel == "":
		// The buyer chooses on the checkout page.
	case in.Provider == "":
		return payment.InvalidParam("provider", "provider is required when channel is given")
	case !in.Provider.Valid():
		return payment.InvalidParam("provider", "provider must be one of wechatpay, alipay")
	case in.Channel == "":
		return payment.InvalidParam("channel", "channel is required when provider is given")
	case !in.Channel.Valid():
		return payment.InvalidParam("channel", "channel must be one of qr, miniprogram, h5, web, app")
	case !payment.Supports(in.Provider, in.Channel):
		return payment.InvalidParam("channel", "%s does not offer the %s channel", in.Provider, in.Channel)
	}
	if in.Provider != "" {
		if _, ok := s.providers[in.Provider]; !ok {
			return payment.InvalidParam("provider", "provider %s is not configured on this gateway", in.Provider)
		}
	}
	if in.Channel == payment.ChannelMiniProgram && !hasWalletIdentity(in.Provider, in.Payer) {
		switch {
		case in.CustomerID == "":
			return payment.InvalidParam("payer", "a miniprogram payment needs the buyer: payer.openid (wechatpay), payer.buyer_id or payer.alipay_open_id (alipay), or a customer")
		case s.customers != nil:
			return payment.InvalidParam("customer", "customer %s has no %s identity: exchange a %s login code for it first (POST /v1/customers/login)", in.CustomerID, in.Provider, in.Provider)
		}
	}
	return nil
}

func checkText(param, v string, max int) error {
	if !utf8.ValidString(v) {
		return payment.InvalidParam(param, "%s must be valid UTF-8", param)
	}
	if n := utf8.RuneCountInString(v); n > max {
		return payment.InvalidParam(param, "%s must be at most %d characters, got %d", param, max, n)
	}
	if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 && r != '\t' }) {
		return payment.InvalidParam(param, "%s must not contain control characters", param)
	}
	return nil
}

func checkURL(param, raw string) error {
	if len(raw) > maxReturnURL {
		return payment.InvalidParam(param, "%s must be at most %d bytes", param, maxReturnURL)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return payment.InvalidParam(param, "%s must be an absolute http or https URL", param)
	}
	return nil
}

// CreatePayment records a payment and, when the merchant chose the wallet, places the order there.
func (s *Service) CreatePayment(ctx context.Context, merchantID string, in CreatePaymentParams) (*payment.Payment, error) {
	now := s.clock()
	if err := s.withCustomer(ctx, merchantID, &in); err != nil {
		return nil, err
	}
	if err := s.validateCreate(&in, now); err != nil {
		return nil, err
	}
	expires := now.Add(s.ttl)
	if in.ExpiresAt != nil {
		expires = in.ExpiresAt.UTC().Truncate(time.Microsecond)
	}
	metadata := in.Metadata
	if metadata == nil {
		metadata = map[string]string{}
	}
	p := &payment.Payment{
		ID: payment.NewID("pay"), Object: "payment", MerchantID: merchantID, Livemode: in.Livemode,
		Status: payment.StatusPending, Amount: in.Amount, Currency: in.Currency,
		Description: in.Description, Reference: in.Reference, Provider: in.Provider, Channel: in.Channel,
		ProviderRef: payment.ProviderRef{OutTradeNo: outTradeNo(merchantID, "payment", in.IdempotencyKey)},
		CustomerID:  in.CustomerID, Payer: in.Payer, ReturnURL: in.ReturnURL, Metadata: metadata,
		CreatedAt: now, UpdatedAt: now, ExpiresAt: expires,
	}
	p.CheckoutURL = s.CheckoutURL(p.ID)
	// The intent is durable before the wallet hears of it: a crash after this point leaves a
	// pending payment that the expiry job closes, never an order at the wallet we know nothing of.
	if err := s.store.CreatePayment(ctx, p, s.planPaymentCreated(p, now)); err != nil {
		if p, err = s.priorPayment(ctx, merchantID, p, err); err != nil {
			return nil, fmt.Errorf("create payment: %w", err)
		}
	}
	if p.Provider == "" || p.Status != payment.StatusPending || p.NextAction != nil {
		return p, nil
	}
	return s.placeOrder(ctx, p)
}

// outTradeNo is a new wallet order number, or the one derived from the merchant's idempotency key.
func outTradeNo(merchantID, kind, idempotencyKey string) string {
	if idempotencyKey == "" {
		return payment.NewOutTradeNo()
	}
	return payment.DerivedOutTradeNo(merchantID, kind, idempotencyKey)
}

// priorPayment deals with a wallet order number already taken (err) by an earlier run of the
// same request, whose node died before answering. It returns the payment the retry answers with:
// that earlier payment while it can still be carried on, or p placed under a fresh number when
// the earlier one is not this request's (a key reused after its 24 hours) or its order failed.
func (s *Service) priorPayment(ctx context.Context, merchantID string, p *payment.Payment, err error) (*payment.Payment, error) {
	if payment.KindOf(err) != payment.Conflict || p.Provider == "" {
		return nil, err
	}
	prior, perr := s.store.PaymentByOutTradeNo(ctx, p.Provider, p.ProviderRef.OutTradeNo)
	if perr == nil && sameRequest(prior.MerchantID, prior.Amount, prior.CreatedAt, merchantID, p.Amount, p.CreatedAt) &&
		prior.Status != payment.StatusFailed {
		return prior, nil
	}
	p.ProviderRef.OutTradeNo = payment.NewOutTradeNo()
	if err := s.store.CreatePayment(ctx, p, s.planPaymentCreated(p, p.CreatedAt)); err != nil {
		return nil, err
	}
	return p, nil
}

// sameRequest reports whether an object found under a derived wallet number was made by the same
// request: same merchant and amount, within the idempotency key's lifetime.
func sameRequest(merchant string, amount int64, created time.Time, wantMerchant string, wantAmount int64, now time.Time) bool {
	const keyLifetime = 24 * time.Hour
	return merchant == wantMerchant && amount == wantAmount && now.Sub(created) < keyLifetime
}

// ChooseMethod places a payment created without a wallet at the wallet and channel the buyer chose
// on the checkout page. A payment already placed with the same choice is returned as it is.
func (s *Service) ChooseMethod(ctx context.Context, id string, provider payment.Provider, channel payment.Channel, payer *payment.Payer) (*payment.Payment, error) {
	if !payment.Supports(provider, channel) {
		return nil, payment.InvalidParam("channel", "%s does not offer the %s channel", provider, channel)
	}
	if _, ok := s.providers[provider]; !ok {
		return nil, payment.InvalidParam("provider", "provider %s is not configured on this gateway", provider)
	}
	now := s.clock()
	p, err := s.store.UpdatePayment(ctx, id, func(p *payment.Payment) (Effects, error) {
		if p.Status != payment.StatusPending {
			return Effects{}, payment.Errorf(payment.Conflict, "payment_state", "payment %s is %s", p.ID, p.Status)
		}
		if p.Provider == provider && p.Channel == channel && p.NextAction != nil {
			return Effects{}, nil
		}
		if !now.Before(p.ExpiresAt) {
			return Effects{}, payment.Errorf(payment.Conflict, "payment_expired", "payment %s has expired", p.ID)
		}
		if p.NextAction != nil {
			// Switching wallets would leave an open order at the first one that the buyer could
			// still pay; the checkout asks for a new payment instead.
			return Effects{}, payment.Errorf(payment.Conflict, "method_chosen", "payment %s is already being paid with %s %s", p.ID, p.Provider, p.Channel)
		}
		merged := mergePayer(p.Payer, payer)
		if channel == payment.ChannelMiniProgram && !hasWalletIdentity(provider, merged) {
			return Effects{}, payment.InvalidParam("payer", "a %s miniprogram payment needs the buyer's identity at the wallet", provider)
		}
		p.Provider, p.Channel, p.Payer, p.UpdatedAt = provider, channel, merged, now
		// From now on a buyer may pay: follow the order at the wallet in case its news is lost.
		return Effects{Jobs: s.planMethodChosen(p, now)}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("choose method: %w", err)
	}
	if p.NextAction != nil {
		return p, nil
	}
	return s.placeOrder(ctx, p)
}

// mergePayer fills what the buyer's choice adds into what the merchant already said of the payer.
func mergePayer(have, add *payment.Payer) *payment.Payer {
	if add == nil {
		return have
	}
	if have == nil {
		c := *add
		return &c
	}
	m := *have
	for _, f := range []struct {
		dst *string
		src string
	}{
		{&m.OpenID, add.OpenID}, {&m.BuyerID, add.BuyerID}, {&m.AlipayOpenID, add.AlipayOpenID}, {&m.ClientIP, add.ClientIP},
	} {
		if f.src != "" {
			*f.dst = f.src
		}
	}
	return &m
}

// hasWalletIdentity reports whether payer identifies the buyer at provider, as mini-program and
// in-app payments need.
func hasWalletIdentity(provider payment.Provider, payer *payment.Payer) bool {
	if payer == nil {
		return false
	}
	switch provider {
	case payment.WeChatPay:
		return payer.OpenID != ""
	case payment.Alipay:
		return payer.BuyerID != "" || payer.AlipayOpenID != ""
	}
	return false
}

// placeOrder calls the wallet for a recorded pending payment and records its answer.
func (s *Service) placeOrder(ctx context.Context, p *payment.Payment) (*payment.Payment, error) {
	prov := s.providers[p.Provider]
	payer := payment.Payer{}
	if p.Payer != nil {
		payer = *p.Payer
	}
	res, callErr := prov.CreatePayment(ctx, PaymentRequest{
		OutTradeNo: p.ProviderRef.OutTradeNo, Amount: p.Amount, Currency: p.Currency, Description: p.Description,
		Channel: p.Channel, Payer: payer, NotifyURL: s.NotifyURL(p.Provider, "payments"), ReturnURL: s.returnURL(p), ExpiresAt: p.ExpiresAt,
	})
	now := s.clock()
	updated, err := s.store.UpdatePayment(ctx, p.ID, func(p *payment.Payment) (Effects, error) {
		if callErr != nil {
			// No buyer has the means to pay an order whose placement failed, so failing it is
			// truthful even when the wallet did create it.
			code := "provider_error"
			var pe *payment.Error
			if errors.As(callErr, &pe) && pe.ProviderCode != "" {
				code = pe.ProviderCode
			}
			changed, err := p.Fail(code, "the wallet did not accept the order", now)
			if err != nil || !changed {
				return Effects{}, err
			}
			return s.paymentEvent(p, now)
		}
		if p.Status != payment.StatusPending {
			return Effects{}, nil // a notification raced ahead of us; it knows better
		}
		p.NextAction, p.UpdatedAt = res.NextAction, now
		if res.TradeNo != "" {
			p.ProviderRef.TradeNo = res.TradeNo
		}
		return Effects{}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("record order placement: %w", err)
	}
	if callErr != nil {
		s.log.Warn("wallet refused order", "payment_id", p.ID, "provider", p.Provider, "err", callErr)
		return updated, providerError(callErr, "the wallet did not accept payment %s", p.ID)
	}
	return updated, nil
}

// returnURL is where the wallet's cashier sends the buyer back: the checkout page, which then
// shows the result and returns to the merchant.
func (s *Service) returnURL(p *payment.Payment) string { return s.CheckoutURL(p.ID) + "/return" }

// providerError turns a connector's error into the one the merchant sees, keeping the wallet's code.
func providerError(err error, format string, args ...any) error {
	var pe *payment.Error
	if errors.As(err, &pe) && (pe.Kind == payment.ProviderError || pe.Kind == payment.Invalid) {
		return &payment.Error{Kind: payment.ProviderError, Code: "provider_error", ProviderCode: pe.ProviderCode,
			Message: fmt.Sprintf(format, args...) + ": " + pe.Message, Err: err}
	}
	return &payment.Error{Kind: payment.ProviderError, Code: "provider_unavailable", Message: fmt.Sprintf(format, args...), Err: err}
}

// paymentEvent returns the effects of p reaching its final status: the event and its delivery.
func (s *Service) paymentEvent(p *payment.Payment, now time.Time) (Effects, error) {
	e, err := payment.PaymentEvent(payment.NewID("evt"), p, now)
	if err != nil {
		return Effects{}, err
	}
	return s.effects(e), nil
}

// refundEvent returns the effects of r reaching its final status.
func (s *Service) refundEvent(r *payment.Refund, now time.Time) (Effects, error) {
	e, err := payment.RefundEvent(payment.NewID("evt"), r, now)
	if err != nil {
		return Effects{}, err
	}
	return s.effects(e), nil
}

// Payment returns a merchant's payment.
func (s *Service) Payment(ctx context.Context, merchantID, id string) (*payment.Payment, error) {
	return s.store.Payment(ctx, merchantID, id)
}

// ListPayments returns a page of a merchant's payments and whether more follow.
func (s *Service) ListPayments(ctx context.Context, merchantID string, f PaymentFilter) ([]*payment.Payment, bool, error) {
	if f.Status != "" && !f.Status.Valid() {
		return nil, false, payment.InvalidParam("status", "status must be one of pending, succeeded, failed, canceled")
	}
	limit := f.Limit
	f.Limit++
	ps, err := s.store.ListPayments(ctx, merchantID, f)
	if err != nil {
		return nil, false, err
	}
	if len(ps) > limit {
		return ps[:limit], true, nil
	}
	return ps, false, nil
}

// CancelPayment closes an unpaid payment, at the wallet first: what the wallet has been paid is
// never marked canceled.
func (s *Service) CancelPayment(ctx context.Context, merchantID, id, reason string) (*payment.Payment, error) {
	p, err := s.store.Payment(ctx, merchantID, id)
	if err != nil {
		return nil, err
	}
	if p.Status == payment.StatusCanceled {
		return p, nil
	}
	if p.Status != payment.StatusPending {
		return nil, payment.Errorf(payment.Conflict, "payment_state", "payment %s is %s and cannot be canceled", p.ID, p.Status)
	}
	return s.closeAndCancel(ctx, p, reason)
}

// closeAndCancel closes p at its wallet (when an order was placed) and cancels it, unless the
// wallet says it was paid, in which case the payment succeeds instead.
func (s *Service) closeAndCancel(ctx context.Context, p *payment.Payment, reason string) (*payment.Payment, error) {
	if p.Provider != "" && p.NextAction != nil {
		prov := s.providers[p.Provider]
		if prov == nil {
			return nil, payment.Errorf(payment.Internal, "provider_missing", "provider %s is not configured", p.Provider)
		}
		err := prov.ClosePayment(ctx, p.ProviderRef.OutTradeNo)
		var pe *payment.Error
		switch {
		case err == nil:
		case errors.As(err, &pe) && pe.Code == CodeNotAtWallet:
			// Past expiry a wallet that does not know the order never will (the order carried the
			// expiry as its time_expire); before it, a buyer may still open it.
			if s.clock().Before(p.ExpiresAt) {
				return nil, &payment.Error{Kind: payment.Conflict, Code: "payment_not_closable", Err: err,
					Message: fmt.Sprintf("the wallet cannot close payment %s before a buyer opens it; it stays payable until it expires at %s and is canceled then",
						p.ID, p.ExpiresAt.Format(time.RFC3339))}
			}
		case errors.As(err, &pe) && pe.Code == CodeAlreadyPaid:
			synced, serr := s.SyncPayment(ctx, p.ID)
			if serr != nil {
				return nil, serr
			}
			return synced, payment.Errorf(payment.Conflict, "payment_state", "payment %s was paid at the wallet and cannot be canceled", p.ID)
		default:
			return nil, providerError(err, "the wallet could not close payment %s", p.ID)
		}
	}
	now := s.clock()
	return s.store.UpdatePayment(ctx, p.ID, func(p *payment.Payment) (Effects, error) {
		if p.Status == payment.StatusSucceeded {
			return Effects{}, payment.Errorf(payment.Conflict, "payment_state", "payment %s was paid and cannot be canceled", p.ID)
		}
		changed, err := p.Cancel(reason, now)
		if err != nil || !changed {
			return Effects{}, err
		}
		return s.paymentEvent(p, now)
	})
}

// ExpirePayment cancels payment id with reason "expired" when it is pending past its expires_at,
// closing it at the wallet first. It is what the expiry job runs.
func (s *Service) ExpirePayment(ctx context.Context, id string) (*payment.Payment, error) {
	p, err := s.store.Payment(ctx, "", id)
	if err != nil {
		return nil, err
	}
	if p.Status != payment.StatusPending || s.clock().Before(p.ExpiresAt) {
		return p, nil
	}
	return s.closeAndCancel(ctx, p, payment.CancelReasonExpired)
}

// SyncPayment asks the wallet for payment id's truth and applies it. It is how lost notifications
// are recovered.
func (s *Service) SyncPayment(ctx context.Context, id string) (*payment.Payment, error) {
	p, err := s.store.Payment(ctx, "", id)
	if err != nil {
		return nil, err
	}
	if p.Status.Final() || p.Provider == "" || p.NextAction == nil {
		return p, nil
	}
	prov := s.providers[p.Provider]
	if prov == nil {
		return nil, payment.Errorf(payment.Internal, "provider_missing", "provider %s is not configured", p.Provider)
	}
	wp, err := prov.QueryPayment(ctx, p.ProviderRef.OutTradeNo)
	if err != nil {
		return nil, providerError(err, "the wallet could not be asked about payment %s", p.ID)
	}
	return s.ApplyWalletPayment(ctx, p.Provider, wp)
}

// ErrMismatch marks wallet news that does not match our record of the payment (amount, account,
// or a state we cannot move to); it changes nothing and is for operators to look at.
var ErrMismatch = errors.New("wallet news does not match the payment")

// ApplyWalletPayment applies what wallet provider says of an order (from a verified notification
// or a query) to the payment, exactly once: repeating it changes nothing.
func (s *Service) ApplyWalletPayment(ctx context.Context, provider payment.Provider, wp WalletPayment) (*payment.Payment, error) {
	p, err := s.store.PaymentByOutTradeNo(ctx, provider, wp.OutTradeNo)
	if err != nil {
		return nil, err
	}
	if wp.State == WalletPending || wp.State == WalletNotFound {
		return p, nil
	}
	if wp.State == WalletPaid && wp.Amount != p.Amount {
		return p, fmt.Errorf("%w: payment %s is %d but %s says %d was paid", ErrMismatch, p.ID, p.Amount, provider, wp.Amount)
	}
	now := s.clock()
	return s.store.UpdatePayment(ctx, p.ID, func(p *payment.Payment) (Effects, error) {
		var changed bool
		var err error
		switch wp.State {
		case WalletPaid:
			if p.Status == payment.StatusCanceled || p.Status == payment.StatusFailed {
				return Effects{}, fmt.Errorf("%w: payment %s is %s but %s says it was paid", ErrMismatch, p.ID, p.Status, provider)
			}
			paidAt := wp.PaidAt
			if paidAt.IsZero() {
				paidAt = now
			}
			changed, err = p.Succeed(payment.ProviderRef{TransactionID: wp.TransactionID, TradeNo: wp.TradeNo}, paidAt.Truncate(time.Microsecond), now)
		case WalletClosed:
			if p.Status != payment.StatusPending {
				return Effects{}, nil
			}
			reason := "closed_at_wallet"
			if !now.Before(p.ExpiresAt) {
				reason = payment.CancelReasonExpired
			}
			changed, err = p.Cancel(reason, now)
		case WalletFailed:
			if p.Status != payment.StatusPending {
				return Effects{}, nil
			}
			changed, err = p.Fail("payment_error", "the wallet reported a payment error", now)
		}
		if err != nil || !changed {
			return Effects{}, err
		}
		return s.paymentEvent(p, now)
	})
}
