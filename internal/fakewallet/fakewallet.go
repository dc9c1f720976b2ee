// Package fakewallet is an in-process gateway.Provider for tests and benchmarks of the layers
// above the connectors. It keeps orders and refunds in memory, answers deterministically, lets
// a test play the payer (Pay) and inject failures, and counts calls. It speaks no wire protocol:
// connectors are tested against the sandboxes instead.
package fakewallet

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

// Op names a Provider method, for failure injection and call counting.
type Op string

const (
	OpCreatePayment Op = "create_payment"
	OpQueryPayment  Op = "query_payment"
	OpClosePayment  Op = "close_payment"
	OpRefund        Op = "refund"
	OpQueryRefund   Op = "query_refund"
)

// Hook runs at the start of an operation; a non-nil error is returned by the operation instead of
// doing it. Hooks may block (to hold a request in flight) and should honour ctx.
type Hook func(ctx context.Context) error

// Wallet is a fake wallet. The zero value is not usable; call New.
type Wallet struct {
	name    payment.Provider
	account string
	now     func() time.Time

	mu      sync.Mutex
	orders  map[string]*order
	refunds map[string]*refund
	hooks   map[Op]Hook
	calls   map[Op]int
	pending bool // refunds answer "processing" instead of succeeding at once
}

type order struct {
	req     gateway.PaymentRequest
	state   gateway.WalletState
	txID    string
	paidAt  time.Time
	refunds int64
}

type refund struct {
	req   gateway.RefundRequest
	state gateway.WalletRefundState
	id    string
	at    time.Time
}

// Options configure a Wallet.
type Options struct {
	Name    payment.Provider // default "wechatpay"
	Account string           // the mchid/app_id reported by queries; default "fake-<name>"
	Now     func() time.Time // default time.Now
}

// New returns an empty wallet.
func New(opt Options) *Wallet {
	if opt.Name == "" {
		opt.Name = payment.WeChatPay
	}
	if opt.Account == "" {
		opt.Account = "fake-" + string(opt.Name)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Wallet{
		name: opt.Name, account: opt.Account, now: opt.Now,
		orders: map[string]*order{}, refunds: map[string]*refund{}, hooks: map[Op]Hook{}, calls: map[Op]int{},
	}
}

var _ gateway.Provider = (*Wallet)(nil)

// Refused returns the error a wallet gives when it answers and says no, carrying its own code.
func Refused(code, message string) *payment.Error {
	return &payment.Error{Kind: payment.ProviderError, Code: "provider_error", ProviderCode: code, Message: message}
}

// ErrUnavailable is what a call that got no answer (timeout, connection refused) returns.
var ErrUnavailable = fmt.Errorf("fakewallet: %w", context.DeadlineExceeded)

// Name implements gateway.Provider.
func (w *Wallet) Name() payment.Provider { return w.name }

// SetHook installs fn to run at the start of op; nil removes it.
func (w *Wallet) SetHook(op Op, fn Hook) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if fn == nil {
		delete(w.hooks, op)
		return
	}
	w.hooks[op] = fn
}

// SetError makes every call of op return err; nil restores normal behaviour.
func (w *Wallet) SetError(op Op, err error) {
	if err == nil {
		w.SetHook(op, nil)
		return
	}
	w.SetHook(op, func(context.Context) error { return err })
}

// SetRefundsPending makes refunds stay "processing" until SettleRefund is called.
func (w *Wallet) SetRefundsPending(pending bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = pending
}

// Calls returns how many times op was called, failed calls included.
func (w *Wallet) Calls(op Op) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.calls[op]
}

// begin counts a call and runs its hook outside the lock, so that a blocking hook does not
// block other calls.
func (w *Wallet) begin(ctx context.Context, op Op) error {
	w.mu.Lock()
	w.calls[op]++
	hook := w.hooks[op]
	w.mu.Unlock()
	if hook != nil {
		if err := hook(ctx); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// CreatePayment implements gateway.Provider. The next action depends only on the channel and
// the order number, so tests can predict it.
func (w *Wallet) CreatePayment(ctx context.Context, req gateway.PaymentRequest) (gateway.PaymentResult, error) {
	if err := w.begin(ctx, OpCreatePayment); err != nil {
		return gateway.PaymentResult{}, err
	}
	if req.OutTradeNo == "" || req.Amount <= 0 {
		return gateway.PaymentResult{}, Refused("PARAM_ERROR", "out_trade_no and a positive amount are required")
	}
	res, err := w.nextAction(req)
	if err != nil {
		return gateway.PaymentResult{}, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if o, ok := w.orders[req.OutTradeNo]; ok {
		if o.req.Amount != req.Amount {
			return gateway.PaymentResult{}, Refused("OUT_TRADE_NO_USED", "out_trade_no already used with another amount")
		}
		return res, nil // wallets accept a repeated identical order
	}
	w.orders[req.OutTradeNo] = &order{req: req, state: gateway.WalletPending}
	return res, nil
}

// NextAction returns what CreatePayment answers for req, for tests to compare with.
func (w *Wallet) NextAction(req gateway.PaymentRequest) *payment.NextAction {
	res, _ := w.nextAction(req)
	return res.NextAction
}

func (w *Wallet) nextAction(req gateway.PaymentRequest) (gateway.PaymentResult, error) {
	n := req.OutTradeNo
	wechat := w.name != payment.Alipay
	var res gateway.PaymentResult
	switch req.Channel {
	case payment.ChannelQR:
		url := "weixin://wxpay/bizpayurl?pr=" + n
		if !wechat {
			url = "https://qr.alipay.com/" + n
		}
		res.NextAction = &payment.NextAction{Type: payment.ActionQRCode, QRCode: url}
	case payment.ChannelH5:
		res.NextAction = &payment.NextAction{Type: payment.ActionRedirect, URL: "https://fakewallet.invalid/" + string(w.name) + "/h5/" + n}
	case payment.ChannelWeb:
		if wechat {
			return res, Refused("NO_AUTH", "wechat pay has no web cashier")
		}
		res.NextAction = &payment.NextAction{Type: payment.ActionRedirect, URL: "https://fakewallet.invalid/alipay/page/" + n}
	case payment.ChannelMiniProgram:
		if wechat {
			if req.Payer.OpenID == "" {
				return res, Refused("PARAM_ERROR", "openid is required for JSAPI")
			}
			res.NextAction = &payment.NextAction{Type: payment.ActionWeChatJSAPI, Params: map[string]string{
				"appId": "wxfake", "timeStamp": "1700000000", "nonceStr": head(n, 16),
				"package": "prepay_id=wx" + n, "signType": "RSA", "paySign": "fake-signature-" + n,
			}}
		} else {
			res.TradeNo = "2088" + n
			res.NextAction = &payment.NextAction{Type: payment.ActionAlipayTrade, TradeNo: res.TradeNo}
		}
	case payment.ChannelApp:
		if wechat {
			res.NextAction = &payment.NextAction{Type: payment.ActionApp, Params: map[string]string{
				"appid": "wxfake", "partnerid": "1900000000", "prepayid": "wx" + n, "package": "Sign=WXPay",
				"noncestr": head(n, 16), "timestamp": "1700000000", "sign": "fake-signature-" + n,
			}}
		} else {
			res.NextAction = &payment.NextAction{Type: payment.ActionApp, OrderString: "app_id=fake&out_trade_no=" + n}
		}
	default:
		return res, Refused("PARAM_ERROR", "unknown channel "+string(req.Channel))
	}
	return res, nil
}

// Pay plays the payer: the pending order outTradeNo becomes paid. It returns what the wallet
// would then say of the order (as a notification would), for gateway.Service.ApplyWalletPayment.
func (w *Wallet) Pay(outTradeNo string) (gateway.WalletPayment, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	o, ok := w.orders[outTradeNo]
	if !ok {
		return gateway.WalletPayment{}, fmt.Errorf("fakewallet: pay: no order %s", outTradeNo)
	}
	if o.state != gateway.WalletPending {
		return gateway.WalletPayment{}, fmt.Errorf("fakewallet: pay: order %s is %s", outTradeNo, o.state)
	}
	o.state = gateway.WalletPaid
	o.paidAt = w.now().UTC().Truncate(time.Second) // wallets report whole seconds
	o.txID = "42000" + outTradeNo
	return w.walletPayment(o), nil
}

func (w *Wallet) walletPayment(o *order) gateway.WalletPayment {
	wp := gateway.WalletPayment{
		OutTradeNo: o.req.OutTradeNo, State: o.state, Amount: o.req.Amount, Currency: o.req.Currency,
		Account: w.account, PaidAt: o.paidAt, Payer: o.req.Payer,
	}
	if o.state == gateway.WalletPaid {
		if w.name == payment.Alipay {
			wp.TradeNo = o.txID
		} else {
			wp.TransactionID = o.txID
		}
	}
	return wp
}

// QueryPayment implements gateway.Provider.
func (w *Wallet) QueryPayment(ctx context.Context, outTradeNo string) (gateway.WalletPayment, error) {
	if err := w.begin(ctx, OpQueryPayment); err != nil {
		return gateway.WalletPayment{}, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	o, ok := w.orders[outTradeNo]
	if !ok {
		return gateway.WalletPayment{OutTradeNo: outTradeNo, State: gateway.WalletNotFound}, nil
	}
	return w.walletPayment(o), nil
}

// ClosePayment implements gateway.Provider: a paid order answers code "already_paid".
func (w *Wallet) ClosePayment(ctx context.Context, outTradeNo string) error {
	if err := w.begin(ctx, OpClosePayment); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	o, ok := w.orders[outTradeNo]
	if !ok {
		return nil // closing an unknown order is harmless, as at Alipay before the QR is scanned
	}
	switch o.state {
	case gateway.WalletPaid:
		return &payment.Error{Kind: payment.ProviderError, Code: gateway.CodeAlreadyPaid, ProviderCode: "ORDERPAID", Message: "order already paid"}
	case gateway.WalletPending:
		o.state = gateway.WalletClosed
	}
	return nil
}

// Refund implements gateway.Provider. It refuses refunds of unpaid orders and refunds beyond
// what was paid, like the real wallets.
func (w *Wallet) Refund(ctx context.Context, req gateway.RefundRequest) (gateway.WalletRefund, error) {
	if err := w.begin(ctx, OpRefund); err != nil {
		return gateway.WalletRefund{}, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if r, ok := w.refunds[req.OutRefundNo]; ok {
		return w.walletRefund(r), nil // a retried refund request is answered, not repeated
	}
	o, ok := w.orders[req.OutTradeNo]
	if !ok || o.state != gateway.WalletPaid {
		return gateway.WalletRefund{}, Refused("TRADE_NOT_PAID", "the order is not paid")
	}
	if req.Amount <= 0 || o.refunds+req.Amount > o.req.Amount {
		return gateway.WalletRefund{}, Refused("NOT_ENOUGH", "refund exceeds the paid amount")
	}
	o.refunds += req.Amount
	r := &refund{req: req, state: gateway.RefundSuccess, id: "50300" + req.OutRefundNo, at: w.now().UTC().Truncate(time.Second)}
	if w.pending {
		r.state, r.at = gateway.RefundProcessing, time.Time{}
	}
	w.refunds[req.OutRefundNo] = r
	return w.walletRefund(r), nil
}

// SettleRefund ends a processing refund, successfully or not, and returns what the wallet then
// says of it, for gateway.Service.ApplyWalletRefund.
func (w *Wallet) SettleRefund(outRefundNo string, success bool) (gateway.WalletRefund, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	r, ok := w.refunds[outRefundNo]
	if !ok {
		return gateway.WalletRefund{}, fmt.Errorf("fakewallet: settle refund: no refund %s", outRefundNo)
	}
	if r.state != gateway.RefundProcessing {
		return gateway.WalletRefund{}, fmt.Errorf("fakewallet: settle refund: refund %s is %s", outRefundNo, r.state)
	}
	if success {
		r.state, r.at = gateway.RefundSuccess, w.now().UTC().Truncate(time.Second)
	} else {
		r.state = gateway.RefundClosed
		w.orders[r.req.OutTradeNo].refunds -= r.req.Amount
	}
	return w.walletRefund(r), nil
}

func (w *Wallet) walletRefund(r *refund) gateway.WalletRefund {
	return gateway.WalletRefund{
		OutTradeNo: r.req.OutTradeNo, OutRefundNo: r.req.OutRefundNo, RefundID: r.id,
		State: r.state, Amount: r.req.Amount, SucceededAt: r.at,
	}
}

// QueryRefund implements gateway.Provider.
func (w *Wallet) QueryRefund(ctx context.Context, outTradeNo, outRefundNo string) (gateway.WalletRefund, error) {
	if err := w.begin(ctx, OpQueryRefund); err != nil {
		return gateway.WalletRefund{}, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	r, ok := w.refunds[outRefundNo]
	if !ok || r.req.OutTradeNo != outTradeNo {
		return gateway.WalletRefund{OutTradeNo: outTradeNo, OutRefundNo: outRefundNo, State: gateway.RefundNotFound}, nil
	}
	return w.walletRefund(r), nil
}

// Order returns what the wallet knows of outTradeNo, and false when it knows nothing.
func (w *Wallet) Order(outTradeNo string) (gateway.WalletPayment, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	o, ok := w.orders[outTradeNo]
	if !ok {
		return gateway.WalletPayment{}, false
	}
	return w.walletPayment(o), true
}

func head(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
