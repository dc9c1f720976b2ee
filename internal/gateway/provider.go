package gateway

import (
	"context"
	"time"

	"github.com/hutong-pay/hutong/internal/payment"
)

// Provider is a wallet connector. Each call has its own timeout inside the connector; errors
// are *payment.Error of kind ProviderError carrying the wallet's own code where it gave one.
type Provider interface {
	Name() payment.Provider
	// CreatePayment places the order at the wallet and returns what the buyer must do next.
	CreatePayment(ctx context.Context, req PaymentRequest) (PaymentResult, error)
	// QueryPayment asks the wallet for the order's truth.
	QueryPayment(ctx context.Context, outTradeNo string) (WalletPayment, error)
	// ClosePayment closes an unpaid order so that it can no longer be paid. A wallet that says it
	// was paid meanwhile answers with an error of code CodeAlreadyPaid; one that does not know the
	// order (yet) with CodeNotAtWallet.
	ClosePayment(ctx context.Context, outTradeNo string) error
	Refund(ctx context.Context, req RefundRequest) (WalletRefund, error)
	QueryRefund(ctx context.Context, outTradeNo, outRefundNo string) (WalletRefund, error)
}

// Codes of provider errors the use cases act on.
const (
	CodeAlreadyPaid = "already_paid"
	// CodeNotAtWallet: the wallet does not know the order, so it cannot close it. An Alipay QR
	// trade exists only once a buyer scans the code, and can be scanned until its time_expire:
	// such an order is closed by its expiry and by nothing else.
	CodeNotAtWallet = "not_at_wallet"
)

// PaymentRequest is an order to place at a wallet.
type PaymentRequest struct {
	OutTradeNo  string
	Amount      int64
	Currency    string
	Description string
	Channel     payment.Channel
	Payer       payment.Payer
	NotifyURL   string
	ReturnURL   string
	ExpiresAt   time.Time
}

// PaymentResult is the wallet's answer to a placed order.
type PaymentResult struct {
	NextAction *payment.NextAction
	TradeNo    string // Alipay trade.create returns the trade number at once
}

// WalletState is a payment's state as the wallet tells it, before Hutong maps it.
type WalletState string

const (
	WalletPending  WalletState = "pending"   // waiting for the buyer
	WalletPaid     WalletState = "paid"      // money collected (also after refunds)
	WalletClosed   WalletState = "closed"    // closed unpaid
	WalletFailed   WalletState = "failed"    // payment error at the wallet
	WalletNotFound WalletState = "not_found" // the wallet does not know it (e.g. Alipay QR not scanned yet)
)

// WalletPayment is what a wallet says of an order, from a query or a verified notification.
type WalletPayment struct {
	OutTradeNo    string
	State         WalletState
	TransactionID string // WeChat Pay transaction_id
	TradeNo       string // Alipay trade_no
	Amount        int64  // total in minor units, to compare with ours
	Currency      string
	Account       string // mchid / app_id the order belongs to
	PaidAt        time.Time
	Payer         payment.Payer
}

// RefundRequest asks a wallet to return money.
type RefundRequest struct {
	OutTradeNo  string
	OutRefundNo string
	Amount      int64
	Total       int64
	Currency    string
	Reason      string
	NotifyURL   string
}

// WalletRefund is what a wallet says of a refund.
type WalletRefund struct {
	OutTradeNo  string
	OutRefundNo string
	RefundID    string
	State       WalletRefundState
	Amount      int64
	SucceededAt time.Time
}

// WalletRefundState is a refund's state at the wallet.
type WalletRefundState string

const (
	RefundProcessing WalletRefundState = "processing"
	RefundSuccess    WalletRefundState = "success"
	RefundClosed     WalletRefundState = "closed" // failed or abandoned: the money did not move
	RefundNotFound   WalletRefundState = "not_found"
)
