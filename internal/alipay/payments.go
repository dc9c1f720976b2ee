package alipay

import (
	"context"
	"errors"
	"strings"

	sdk "github.com/smartwalle/alipay/v3"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

// Alipay product codes per channel.
const (
	productQR   = "FACE_TO_FACE_PAYMENT"
	productMini = "JSAPI_PAY"
	productWap  = "QUICK_WAP_WAY"
	productPage = "FAST_INSTANT_TRADE_PAY"
	productApp  = "QUICK_MSECURITY_PAY"
)

// trade builds the biz_content common to every channel.
func (c *Connector) trade(req gateway.PaymentRequest, productCode string) sdk.Trade {
	t := sdk.Trade{
		NotifyURL:   req.NotifyURL,
		Subject:     req.Description,
		OutTradeNo:  req.OutTradeNo,
		TotalAmount: FormatYuan(req.Amount),
		ProductCode: productCode,
	}
	if !req.ExpiresAt.IsZero() {
		t.TimeExpire = req.ExpiresAt.In(shanghai).Format(alipayTime)
	}
	return t
}

func checkPaymentRequest(req gateway.PaymentRequest) error {
	if req.OutTradeNo == "" {
		return payment.InvalidParam("out_trade_no", "alipay: out_trade_no is required")
	}
	if err := payment.CheckAmount("amount", req.Amount); err != nil {
		return err
	}
	if req.Currency != "" && req.Currency != "CNY" {
		return payment.InvalidParam("currency", "alipay: currency %q is not supported; use CNY", req.Currency)
	}
	if strings.TrimSpace(req.Description) == "" {
		return payment.InvalidParam("description", "alipay: a subject is required")
	}
	return nil
}

// CreatePayment places the order at Alipay for req.Channel: qr → alipay.trade.precreate,
// miniprogram → alipay.trade.create, h5 → a wap.pay URL, web → a page.pay URL, app → an app.pay
// order string. The last three are signed locally; no call leaves the process.
func (c *Connector) CreatePayment(ctx context.Context, req gateway.PaymentRequest) (gateway.PaymentResult, error) {
	if err := checkPaymentRequest(req); err != nil {
		return gateway.PaymentResult{}, err
	}
	switch req.Channel {
	case payment.ChannelQR:
		return c.precreate(ctx, req)
	case payment.ChannelMiniProgram:
		return c.create(ctx, req)
	case payment.ChannelH5:
		p := sdk.TradeWapPay{Trade: c.trade(req, productWap), QuitURL: req.ReturnURL}
		p.ReturnURL = req.ReturnURL
		// TradeWapPay declares its own time_expire, which hides Trade's in the JSON.
		p.TimeExpire, p.Trade.TimeExpire = p.Trade.TimeExpire, ""
		u, err := c.client.TradeWapPay(p)
		if err != nil {
			return gateway.PaymentResult{}, signFailure("wap pay", err)
		}
		return gateway.PaymentResult{NextAction: &payment.NextAction{Type: payment.ActionRedirect, URL: u.String()}}, nil
	case payment.ChannelWeb:
		p := sdk.TradePagePay{Trade: c.trade(req, productPage)}
		p.ReturnURL = req.ReturnURL
		u, err := c.client.TradePagePay(p)
		if err != nil {
			return gateway.PaymentResult{}, signFailure("page pay", err)
		}
		return gateway.PaymentResult{NextAction: &payment.NextAction{Type: payment.ActionRedirect, URL: u.String()}}, nil
	case payment.ChannelApp:
		s, err := c.client.TradeAppPay(sdk.TradeAppPay{Trade: c.trade(req, productApp)})
		if err != nil {
			return gateway.PaymentResult{}, signFailure("app pay", err)
		}
		return gateway.PaymentResult{NextAction: &payment.NextAction{Type: payment.ActionApp, OrderString: s}}, nil
	}
	return gateway.PaymentResult{}, payment.InvalidParam("channel", "alipay does not offer channel %q", req.Channel)
}

// signFailure is a local failure to build a signed request; nothing reached Alipay.
func signFailure(op string, err error) error {
	return &payment.Error{Kind: payment.Internal, Code: "signing_failed", Message: "alipay " + op + ": could not sign the request", Err: err}
}

func (c *Connector) precreate(ctx context.Context, req gateway.PaymentRequest) (gateway.PaymentResult, error) {
	const op = "precreate"
	var rsp *sdk.TradePreCreateRsp
	err := c.call(ctx, func(ctx context.Context) (err error) {
		rsp, err = c.client.TradePreCreate(ctx, sdk.TradePreCreate{Trade: c.trade(req, productQR)})
		return err
	})
	if perr := classify(op, err, answerOf(rsp, func(r *sdk.TradePreCreateRsp) sdk.Error { return r.Error })); perr != nil {
		c.logFailure(op, req.OutTradeNo, perr)
		return gateway.PaymentResult{}, perr
	}
	if rsp.QRCode == "" {
		return gateway.PaymentResult{}, badAnswer(op, "no qr_code")
	}
	if rsp.OutTradeNo != "" && rsp.OutTradeNo != req.OutTradeNo {
		return gateway.PaymentResult{}, badAnswer(op, "answer is for another out_trade_no")
	}
	return gateway.PaymentResult{NextAction: &payment.NextAction{Type: payment.ActionQRCode, QRCode: rsp.QRCode}}, nil
}

func (c *Connector) create(ctx context.Context, req gateway.PaymentRequest) (gateway.PaymentResult, error) {
	const op = "create"
	if req.Payer.BuyerID == "" && req.Payer.AlipayOpenID == "" {
		return gateway.PaymentResult{}, payment.InvalidParam("payer", "an alipay miniprogram payment needs payer.buyer_id or payer.alipay_open_id")
	}
	p := sdk.TradeCreate{Trade: c.trade(req, productMini), BuyerId: req.Payer.BuyerID}
	if req.Payer.BuyerID == "" {
		p.BuyerOpenId = req.Payer.AlipayOpenID
	}
	var rsp *sdk.TradeCreateRsp
	err := c.call(ctx, func(ctx context.Context) (err error) {
		rsp, err = c.client.TradeCreate(ctx, p)
		return err
	})
	if perr := classify(op, err, answerOf(rsp, func(r *sdk.TradeCreateRsp) sdk.Error { return r.Error })); perr != nil {
		c.logFailure(op, req.OutTradeNo, perr)
		return gateway.PaymentResult{}, perr
	}
	if rsp.TradeNo == "" {
		return gateway.PaymentResult{}, badAnswer(op, "no trade_no")
	}
	if rsp.OutTradeNo != "" && rsp.OutTradeNo != req.OutTradeNo {
		return gateway.PaymentResult{}, badAnswer(op, "answer is for another out_trade_no")
	}
	return gateway.PaymentResult{
		NextAction: &payment.NextAction{Type: payment.ActionAlipayTrade, TradeNo: rsp.TradeNo},
		TradeNo:    rsp.TradeNo,
	}, nil
}

// QueryPayment asks alipay.trade.query for the order's truth.
//
// A trade that Alipay does not know (ACQ.TRADE_NOT_EXIST) is not_found, not closed: a precreated
// QR trade only exists once the buyer scans it. TRADE_CLOSED is closed only for a trade that was
// never paid: Alipay also says TRADE_CLOSED after a full refund, and a refunded payment is paid.
func (c *Connector) QueryPayment(ctx context.Context, outTradeNo string) (gateway.WalletPayment, error) {
	const op = "query"
	wp := gateway.WalletPayment{OutTradeNo: outTradeNo, Account: c.appID, Currency: "CNY"}
	if outTradeNo == "" {
		return wp, payment.InvalidParam("out_trade_no", "alipay: out_trade_no is required")
	}
	rsp, perr := c.query(ctx, outTradeNo)
	if perr != nil {
		if perr.ProviderCode == subTradeNotExist {
			wp.State = gateway.WalletNotFound
			return wp, nil
		}
		c.logFailure(op, outTradeNo, perr)
		return wp, perr
	}
	if rsp.OutTradeNo != "" && rsp.OutTradeNo != outTradeNo {
		return wp, badAnswer(op, "answer is for another out_trade_no")
	}
	amount, err := ParseYuan(rsp.TotalAmount)
	if err != nil {
		return wp, badAnswer(op, "total_amount: %v", err)
	}
	wp.Amount, wp.TradeNo = amount, rsp.TradeNo
	wp.Payer = payment.Payer{BuyerID: rsp.BuyerUserId}
	switch rsp.TradeStatus {
	case sdk.TradeStatusWaitBuyerPay:
		wp.State = gateway.WalletPending
	case sdk.TradeStatusSuccess, sdk.TradeStatusFinished:
		wp.State = gateway.WalletPaid
		wp.PaidAt = parseTime(rsp.SendPayDate)
	case sdk.TradeStatusClosed:
		wp.State = gateway.WalletClosed
		if wasPaid(rsp) {
			wp.State = gateway.WalletPaid
			wp.PaidAt = parseTime(rsp.SendPayDate)
		}
	default:
		return wp, badAnswer(op, "unknown trade_status %q", rsp.TradeStatus)
	}
	return wp, nil
}

// wasPaid reports whether a TRADE_CLOSED trade had been paid (and then fully refunded): money
// went through, so Alipay reports when it was paid and what the buyer paid with.
func wasPaid(rsp *sdk.TradeQueryRsp) bool {
	if rsp.SendPayDate != "" || len(rsp.FundBillList) > 0 {
		return true
	}
	if v, err := ParseYuan(rsp.BuyerPayAmount); err == nil && v > 0 {
		return true
	}
	if v, err := ParseYuan(rsp.ReceiptAmount); err == nil && v > 0 {
		return true
	}
	return false
}

func (c *Connector) query(ctx context.Context, outTradeNo string) (*sdk.TradeQueryRsp, *payment.Error) {
	var rsp *sdk.TradeQueryRsp
	err := c.call(ctx, func(ctx context.Context) (err error) {
		rsp, err = c.client.TradeQuery(ctx, sdk.TradeQuery{OutTradeNo: outTradeNo})
		return err
	})
	if perr := classify("query", err, answerOf(rsp, func(r *sdk.TradeQueryRsp) sdk.Error { return r.Error })); perr != nil {
		return nil, perr
	}
	return rsp, nil
}

// ClosePayment closes an unpaid order with alipay.trade.close.
//
// ACQ.TRADE_NOT_EXIST is gateway.CodeNotAtWallet: the trade was not created at Alipay yet (a QR
// code nobody scanned), and it can still be until its time_expire. When Alipay says the trade is not open
// (TRADE_HAS_SUCCESS, REASON_TRADE_STATUS_INVALID, TRADE_HAS_CLOSE) the trade is queried to tell a
// paid one (error "already_paid") from one that is closed already (success).
func (c *Connector) ClosePayment(ctx context.Context, outTradeNo string) error {
	const op = "close"
	if outTradeNo == "" {
		return payment.InvalidParam("out_trade_no", "alipay: out_trade_no is required")
	}
	var rsp *sdk.TradeCloseRsp
	err := c.call(ctx, func(ctx context.Context) (err error) {
		rsp, err = c.client.TradeClose(ctx, sdk.TradeClose{OutTradeNo: outTradeNo})
		return err
	})
	perr := classify(op, err, answerOf(rsp, func(r *sdk.TradeCloseRsp) sdk.Error { return r.Error }))
	if perr == nil {
		return nil
	}
	switch perr.ProviderCode {
	case subTradeNotExist:
		return notAtWallet(outTradeNo, perr)
	case subTradeHasSuccess, subTradeStatusInvalid, subTradeHasClose:
		wp, qerr := c.QueryPayment(ctx, outTradeNo)
		switch {
		case qerr != nil && perr.ProviderCode == subTradeHasSuccess:
			return alreadyPaid(outTradeNo, perr) // unambiguous even unverified
		case qerr != nil:
			return qerr
		case wp.State == gateway.WalletPaid:
			return alreadyPaid(outTradeNo, perr)
		case wp.State == gateway.WalletClosed:
			return nil
		case wp.State == gateway.WalletNotFound:
			return notAtWallet(outTradeNo, perr)
		}
		return badAnswer(op, "close refused with %s but the trade is %s", perr.ProviderCode, wp.State)
	}
	c.logFailure(op, outTradeNo, perr)
	return perr
}

// notAtWallet reports a trade Alipay does not know: a QR code nobody scanned yet, which stays
// scannable until its time_expire; the gateway decides what that means for a cancel.
func notAtWallet(outTradeNo string, cause *payment.Error) error {
	return &payment.Error{Kind: payment.ProviderError, Code: gateway.CodeNotAtWallet, ProviderCode: cause.ProviderCode,
		Message: "alipay does not know trade " + outTradeNo + " (not scanned yet)", Err: cause}
}

func alreadyPaid(outTradeNo string, cause *payment.Error) error {
	return &payment.Error{Kind: payment.ProviderError, Code: CodeAlreadyPaid, ProviderCode: cause.ProviderCode,
		Message: "alipay trade " + outTradeNo + " was paid and cannot be closed", Err: cause}
}

// answerOf returns the business answer embedded in a response, zero for a missing response.
func answerOf[R any](rsp *R, get func(*R) sdk.Error) sdk.Error {
	if rsp == nil {
		return sdk.Error{}
	}
	return get(rsp)
}

func (c *Connector) logFailure(op, outTradeNo string, perr *payment.Error) {
	if errors.Is(perr, context.Canceled) {
		return // the caller went away; nothing to report
	}
	outcome := "refused"
	if perr.ProviderCode == "" {
		outcome = "unknown"
	}
	c.log.Warn("alipay call failed", "op", op, "out_trade_no", outTradeNo, "outcome", outcome,
		"provider_code", perr.ProviderCode, "timeout", isTimeout(perr), "err", perr)
}
