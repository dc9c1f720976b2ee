// Package payment is Hutong's domain: payments, refunds, their statuses and allowed transitions,
// money, events and error codes. It imports nothing of the project.
package payment

import (
	"fmt"
	"time"
)

// Provider names a wallet.
type Provider string

const (
	WeChatPay Provider = "wechatpay"
	Alipay    Provider = "alipay"
)

// Providers lists the wallets Hutong speaks.
var Providers = []Provider{WeChatPay, Alipay}

// Valid reports whether p is a wallet Hutong speaks.
func (p Provider) Valid() bool { return p == WeChatPay || p == Alipay }

// Channel is where and how the buyer pays.
type Channel string

const (
	ChannelQR          Channel = "qr"          // WeChat Native / Alipay precreate
	ChannelMiniProgram Channel = "miniprogram" // WeChat JSAPI with openid / Alipay trade.create with buyer id
	ChannelH5          Channel = "h5"          // WeChat H5 / Alipay wap
	ChannelWeb         Channel = "web"         // Alipay page pay
	ChannelApp         Channel = "app"
)

// Channels lists every channel.
var Channels = []Channel{ChannelQR, ChannelMiniProgram, ChannelH5, ChannelWeb, ChannelApp}

// Valid reports whether c is a known channel.
func (c Channel) Valid() bool {
	for _, k := range Channels {
		if c == k {
			return true
		}
	}
	return false
}

// Supports reports whether provider p offers channel c. WeChat Pay has no desktop web cashier:
// desktop buyers scan a Native QR code instead.
func Supports(p Provider, c Channel) bool {
	switch p {
	case WeChatPay:
		return c.Valid() && c != ChannelWeb
	case Alipay:
		return c.Valid()
	}
	return false
}

// Status is a payment's state. It only moves forward: pending → succeeded | failed | canceled.
type Status string

const (
	StatusPending   Status = "pending"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusCanceled  Status = "canceled"
)

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	return s == StatusPending || s == StatusSucceeded || s == StatusFailed || s == StatusCanceled
}

// Final reports whether no transition leaves s.
func (s Status) Final() bool { return s != StatusPending }

// CancelReasonExpired is the cancel_reason of a payment closed at its expires_at.
const CancelReasonExpired = "expired"

// ProviderRef holds a payment's identifiers at the wallet.
type ProviderRef struct {
	OutTradeNo    string `json:"out_trade_no,omitempty"`
	TransactionID string `json:"transaction_id,omitempty"` // WeChat Pay
	TradeNo       string `json:"trade_no,omitempty"`       // Alipay
}

// NextAction tells the merchant's client what to do for the buyer to pay.
type NextAction struct {
	Type        string            `json:"type"` // qr_code | redirect | wechat_jsapi | alipay_trade | app
	QRCode      string            `json:"qr_code,omitempty"`
	URL         string            `json:"url,omitempty"`
	Params      map[string]string `json:"params,omitempty"`
	TradeNo     string            `json:"trade_no,omitempty"`
	OrderString string            `json:"order_string,omitempty"`
}

// Next action types.
const (
	ActionQRCode      = "qr_code"
	ActionRedirect    = "redirect"
	ActionWeChatJSAPI = "wechat_jsapi"
	ActionAlipayTrade = "alipay_trade"
	ActionApp         = "app"
)

// Payer identifies the buyer at the wallet, where the channel needs it.
type Payer struct {
	OpenID       string `json:"openid,omitempty"`         // WeChat openid under the merchant's appid
	BuyerID      string `json:"buyer_id,omitempty"`       // Alipay user id (2088…)
	AlipayOpenID string `json:"alipay_open_id,omitempty"` // Alipay open id
	ClientIP     string `json:"client_ip,omitempty"`
}

// Payment is one attempt to collect money from a buyer. Its JSON form is the API's.
type Payment struct {
	ID             string            `json:"id"`
	Object         string            `json:"object"` // always "payment"
	MerchantID     string            `json:"-"`
	Livemode       bool              `json:"livemode"`
	Status         Status            `json:"status"`
	Amount         int64             `json:"amount"`
	AmountRefunded int64             `json:"amount_refunded"` // non-failed refunds: pending and succeeded
	Currency       string            `json:"currency"`
	Description    string            `json:"description"`
	Reference      string            `json:"reference"`
	Provider       Provider          `json:"provider,omitempty"`
	Channel        Channel           `json:"channel,omitempty"`
	ProviderRef    ProviderRef       `json:"provider_ref"`
	NextAction     *NextAction       `json:"next_action"`
	CheckoutURL    string            `json:"checkout_url"`
	CustomerID     string            `json:"customer,omitempty"`
	Payer          *Payer            `json:"payer,omitempty"`
	ReturnURL      string            `json:"return_url,omitempty"`
	Metadata       map[string]string `json:"metadata"`
	CancelReason   string            `json:"cancel_reason,omitempty"`
	FailureCode    string            `json:"failure_code,omitempty"`
	FailureMessage string            `json:"failure_message,omitempty"`
	CreatedAt      time.Time         `json:"created_at"`
	UpdatedAt      time.Time         `json:"updated_at"`
	ExpiresAt      time.Time         `json:"expires_at"`
	PaidAt         *time.Time        `json:"paid_at,omitempty"`
}

// transition moves p to status to, refusing any move that is not forward.
func (p *Payment) transition(to Status, now time.Time) error {
	if p.Status != StatusPending || !to.Final() {
		return Errorf(Conflict, "payment_state", "payment %s is %s and cannot become %s", p.ID, p.Status, to)
	}
	p.Status = to
	p.UpdatedAt = now
	return nil
}

// Succeed records that the wallet collected the money. It reports false, with no error, when the
// payment had already succeeded: wallets repeat themselves and that must be harmless.
func (p *Payment) Succeed(ref ProviderRef, paidAt, now time.Time) (changed bool, err error) {
	if p.Status == StatusSucceeded {
		return false, nil
	}
	if err := p.transition(StatusSucceeded, now); err != nil {
		return false, err
	}
	if ref.TransactionID != "" {
		p.ProviderRef.TransactionID = ref.TransactionID
	}
	if ref.TradeNo != "" {
		p.ProviderRef.TradeNo = ref.TradeNo
	}
	paid := paidAt.UTC()
	p.PaidAt = &paid
	p.NextAction = nil
	return true, nil
}

// Fail records that the payment can no longer be paid for a reason other than cancellation.
func (p *Payment) Fail(code, message string, now time.Time) (changed bool, err error) {
	if p.Status == StatusFailed {
		return false, nil
	}
	if err := p.transition(StatusFailed, now); err != nil {
		return false, err
	}
	p.FailureCode, p.FailureMessage, p.NextAction = code, message, nil
	return true, nil
}

// Cancel records that the payment was closed unpaid, by the merchant or at expiry.
func (p *Payment) Cancel(reason string, now time.Time) (changed bool, err error) {
	if p.Status == StatusCanceled {
		return false, nil
	}
	if err := p.transition(StatusCanceled, now); err != nil {
		return false, err
	}
	p.CancelReason, p.NextAction = reason, nil
	return true, nil
}

// Refundable returns how much of p may still be refunded.
func (p *Payment) Refundable() int64 {
	if p.Status != StatusSucceeded {
		return 0
	}
	return p.Amount - p.AmountRefunded
}

// CheckRefund validates a refund of amount against p.
func (p *Payment) CheckRefund(amount int64) error {
	if p.Status != StatusSucceeded {
		return Errorf(Conflict, "payment_not_refundable", "payment %s is %s; only succeeded payments can be refunded", p.ID, p.Status)
	}
	if amount <= 0 {
		return InvalidParam("amount", "amount must be a positive integer number of minor units")
	}
	if amount > p.Refundable() {
		return &Error{Kind: Invalid, Code: "amount_too_large", Param: "amount",
			Message: fmt.Sprintf("refund of %d exceeds the %d %s still refundable on payment %s", amount, p.Refundable(), p.Currency, p.ID)}
	}
	return nil
}
