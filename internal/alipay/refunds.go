package alipay

import (
	"context"
	"strings"

	sdk "github.com/smartwalle/alipay/v3"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

// Refund statuses of alipay.trade.fastpay.refund.query. Only REFUND_SUCCESS is sent for
// synchronous refunds; the other two belong to Alipay's asynchronous refund flavour.
const (
	refundStatusSuccess    = "REFUND_SUCCESS"
	refundStatusProcessing = "REFUND_PROCESSING"
	refundStatusFail       = "REFUND_FAIL"
)

// Refund asks alipay.trade.refund to return req.Amount, with out_request_no = req.OutRefundNo so
// that repeating the request can never refund twice.
//
// fund_change "Y" means this request moved the money. "N" is what Alipay answers to a repeat of a
// request that already succeeded (or one whose money is still on its way), so the refund is then
// confirmed by alipay.trade.fastpay.refund.query. When the outcome is unknown (network, timeout,
// system error) the refund is also queried once; if that does not settle it the error carries
// no ProviderCode and the refund stays pending, to be followed up with QueryRefund.
func (c *Connector) Refund(ctx context.Context, req gateway.RefundRequest) (gateway.WalletRefund, error) {
	const op = "refund"
	wr := gateway.WalletRefund{OutTradeNo: req.OutTradeNo, OutRefundNo: req.OutRefundNo, Amount: req.Amount}
	switch {
	case req.OutTradeNo == "":
		return wr, payment.InvalidParam("out_trade_no", "alipay: out_trade_no is required")
	case req.OutRefundNo == "":
		return wr, payment.InvalidParam("out_refund_no", "alipay: out_refund_no is required")
	case req.Currency != "" && req.Currency != "CNY":
		return wr, payment.InvalidParam("currency", "alipay: currency %q is not supported; use CNY", req.Currency)
	}
	if err := payment.CheckAmount("amount", req.Amount); err != nil {
		return wr, err
	}
	var rsp *sdk.TradeRefundRsp
	err := c.call(ctx, func(ctx context.Context) (err error) {
		rsp, err = c.client.TradeRefund(ctx, sdk.TradeRefund{
			OutTradeNo: req.OutTradeNo, RefundAmount: FormatYuan(req.Amount),
			RefundReason: req.Reason, OutRequestNo: req.OutRefundNo,
		})
		return err
	})
	perr := classify(op, err, answerOf(rsp, func(r *sdk.TradeRefundRsp) sdk.Error { return r.Error }))
	if perr != nil && perr.ProviderCode != "" {
		c.logFailure(op, req.OutTradeNo, perr)
		return wr, perr
	}
	if perr == nil && rsp.OutTradeNo != "" && rsp.OutTradeNo != req.OutTradeNo {
		perr = badAnswer(op, "answer is for another out_trade_no")
	}
	if perr == nil && strings.EqualFold(rsp.FundChange, "Y") {
		wr.State, wr.SucceededAt = gateway.RefundSuccess, c.now().UTC()
		return wr, nil
	}
	// fund_change "N", or no usable answer: ask for this refund's own record.
	q, qerr := c.QueryRefund(ctx, req.OutTradeNo, req.OutRefundNo)
	if qerr == nil && q.State == gateway.RefundSuccess {
		return q, nil
	}
	if perr != nil {
		c.logFailure(op, req.OutTradeNo, perr)
		return wr, perr
	}
	if qerr == nil && q.State == gateway.RefundClosed {
		return q, nil
	}
	// Alipay accepted the request but has not shown the money moving yet.
	wr.State = gateway.RefundProcessing
	return wr, nil
}

// QueryRefund asks alipay.trade.fastpay.refund.query about refund outRefundNo of outTradeNo.
// REFUND_SUCCESS is success. Without refund_status Alipay means "not received or failed". Alipay
// echoes out_request_no even for a request it never received, so that alone means not_found (the
// caller may safely repeat the same request); an answer that carries the refund's amount is
// reported processing, because Alipay's older contract read any refund data as success and the
// money must not be released while that is possible.
func (c *Connector) QueryRefund(ctx context.Context, outTradeNo, outRefundNo string) (gateway.WalletRefund, error) {
	const op = "refund query"
	wr := gateway.WalletRefund{OutTradeNo: outTradeNo, OutRefundNo: outRefundNo}
	if outTradeNo == "" || outRefundNo == "" {
		return wr, payment.InvalidParam("out_refund_no", "alipay: out_trade_no and out_refund_no are required")
	}
	var rsp *sdk.TradeFastPayRefundQueryRsp
	err := c.call(ctx, func(ctx context.Context) (err error) {
		rsp, err = c.client.TradeFastPayRefundQuery(ctx, sdk.TradeFastPayRefundQuery{OutTradeNo: outTradeNo, OutRequestNo: outRefundNo})
		return err
	})
	perr := classify(op, err, answerOf(rsp, func(r *sdk.TradeFastPayRefundQueryRsp) sdk.Error { return r.Error }))
	if perr != nil {
		if perr.ProviderCode == subTradeNotExist {
			wr.State = gateway.RefundNotFound
			return wr, nil
		}
		c.logFailure(op, outTradeNo, perr)
		return wr, perr
	}
	if (rsp.OutTradeNo != "" && rsp.OutTradeNo != outTradeNo) || (rsp.OutRequestNo != "" && rsp.OutRequestNo != outRefundNo) {
		return wr, badAnswer(op, "answer is for another refund")
	}
	if rsp.RefundAmount != "" {
		amount, err := ParseYuan(rsp.RefundAmount)
		if err != nil {
			return wr, badAnswer(op, "refund_amount: %v", err)
		}
		wr.Amount = amount
	}
	switch rsp.RefundStatus {
	case refundStatusSuccess:
		wr.State = gateway.RefundSuccess
		wr.SucceededAt = parseTime(rsp.GMTRefundPay)
		if wr.SucceededAt.IsZero() {
			wr.SucceededAt = c.now().UTC()
		}
	case refundStatusProcessing:
		wr.State = gateway.RefundProcessing
	case refundStatusFail:
		wr.State = gateway.RefundClosed
	case "":
		wr.State = gateway.RefundNotFound
		if rsp.RefundAmount != "" {
			wr.State = gateway.RefundProcessing
		}
	default:
		return wr, badAnswer(op, "unknown refund_status %q", rsp.RefundStatus)
	}
	return wr, nil
}
