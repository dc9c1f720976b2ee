package wechatpay

import (
	"context"
	"fmt"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/services/refunddomestic"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

// refundStates maps WeChat Pay's refund status to the gateway's view. ABNORMAL (the buyer's card
// refused the money) leaves the money with the merchant until handled by hand, so it is closed.
var refundStates = map[string]gateway.WalletRefundState{
	string(refunddomestic.STATUS_SUCCESS):    gateway.RefundSuccess,
	string(refunddomestic.STATUS_PROCESSING): gateway.RefundProcessing,
	string(refunddomestic.STATUS_CLOSED):     gateway.RefundClosed,
	string(refunddomestic.STATUS_ABNORMAL):   gateway.RefundClosed,
}

// Refund asks WeChat Pay to return req.Amount of the order's req.Total.
func (c *Connector) Refund(ctx context.Context, req gateway.RefundRequest) (gateway.WalletRefund, error) {
	switch {
	case req.OutTradeNo == "":
		return gateway.WalletRefund{}, payment.InvalidParam("out_trade_no", "out_trade_no is required")
	case req.OutRefundNo == "":
		return gateway.WalletRefund{}, payment.InvalidParam("out_refund_no", "out_refund_no is required")
	case req.Amount <= 0 || req.Total <= 0 || req.Amount > req.Total:
		return gateway.WalletRefund{}, payment.InvalidParam("amount", "refund %d of a %d total is not possible", req.Amount, req.Total)
	}
	if err := payment.CheckCurrency("currency", req.Currency); err != nil {
		return gateway.WalletRefund{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	cr := refunddomestic.CreateRequest{
		OutTradeNo: core.String(req.OutTradeNo), OutRefundNo: core.String(req.OutRefundNo),
		Amount: &refunddomestic.AmountReq{Refund: core.Int64(req.Amount), Total: core.Int64(req.Total), Currency: core.String(req.Currency)},
	}
	if req.Reason != "" {
		cr.Reason = core.String(req.Reason)
	}
	if req.NotifyURL != "" {
		cr.NotifyUrl = core.String(req.NotifyURL)
	}
	resp, _, err := c.refunds.Create(ctx, cr)
	if err != nil {
		return gateway.WalletRefund{}, callError("create refund", err)
	}
	wr, err := walletRefund(resp)
	if err != nil {
		return gateway.WalletRefund{}, badAnswer("create refund", "%v", err)
	}
	if wr.OutRefundNo != req.OutRefundNo || wr.OutTradeNo != req.OutTradeNo {
		return gateway.WalletRefund{}, badAnswer("create refund", "asked for %s/%s, got %s/%s", req.OutTradeNo, req.OutRefundNo, wr.OutTradeNo, wr.OutRefundNo)
	}
	return wr, nil
}

// QueryRefund asks WeChat Pay for a refund's state; one it does not know is reported with State
// RefundNotFound, not as an error.
func (c *Connector) QueryRefund(ctx context.Context, outTradeNo, outRefundNo string) (gateway.WalletRefund, error) {
	if outRefundNo == "" {
		return gateway.WalletRefund{}, payment.InvalidParam("out_refund_no", "out_refund_no is required")
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	resp, _, err := c.refunds.QueryByOutRefundNo(ctx, refunddomestic.QueryByOutRefundNoRequest{OutRefundNo: core.String(outRefundNo)})
	if err != nil {
		if ae, ok := asAPIError("query refund", err); ok && ae.Code == codeRefundMissing {
			return gateway.WalletRefund{OutTradeNo: outTradeNo, OutRefundNo: outRefundNo, State: gateway.RefundNotFound}, nil
		}
		return gateway.WalletRefund{}, callError("query refund", err)
	}
	wr, err := walletRefund(resp)
	if err != nil {
		return gateway.WalletRefund{}, badAnswer("query refund", "%v", err)
	}
	if wr.OutRefundNo != outRefundNo || (outTradeNo != "" && wr.OutTradeNo != outTradeNo) {
		return gateway.WalletRefund{}, badAnswer("query refund", "asked for %s/%s, got %s/%s", outTradeNo, outRefundNo, wr.OutTradeNo, wr.OutRefundNo)
	}
	return wr, nil
}

func walletRefund(r *refunddomestic.Refund) (gateway.WalletRefund, error) {
	if r == nil {
		return gateway.WalletRefund{}, fmt.Errorf("empty refund")
	}
	wr := gateway.WalletRefund{OutTradeNo: deref(r.OutTradeNo), OutRefundNo: deref(r.OutRefundNo), RefundID: deref(r.RefundId)}
	if r.Status == nil {
		return wr, fmt.Errorf("no status")
	}
	state, ok := refundStates[string(*r.Status)]
	if !ok {
		return wr, fmt.Errorf("unknown refund status %q", *r.Status)
	}
	wr.State = state
	if r.Amount != nil && r.Amount.Refund != nil {
		wr.Amount = *r.Amount.Refund
		if c := deref(r.Amount.Currency); c != "" && c != "CNY" {
			return wr, fmt.Errorf("refund in %q, not CNY", c)
		}
	}
	if state == gateway.RefundSuccess {
		if wr.Amount <= 0 {
			return wr, fmt.Errorf("succeeded without a positive amount.refund")
		}
		if r.SuccessTime != nil {
			wr.SucceededAt = *r.SuccessTime
		}
	}
	return wr, nil
}

// refundNotice is the plaintext of a REFUND.* notification (WeChat Pay's refund-result resource).
type refundNotice struct {
	Mchid               string  `json:"mchid"`
	TransactionID       string  `json:"transaction_id"`
	OutTradeNo          string  `json:"out_trade_no"`
	RefundID            string  `json:"refund_id"`
	OutRefundNo         string  `json:"out_refund_no"`
	RefundStatus        string  `json:"refund_status"`
	SuccessTime         *string `json:"success_time,omitempty"`
	UserReceivedAccount string  `json:"user_received_account"`
	Amount              *struct {
		Total       *int64 `json:"total"`
		Refund      *int64 `json:"refund"`
		PayerTotal  *int64 `json:"payer_total"`
		PayerRefund *int64 `json:"payer_refund"`
	} `json:"amount"`
}

// noticeRefund checks and maps a refund notification for event type event.
func (c *Connector) noticeRefund(event string, n *refundNotice) (gateway.WalletRefund, error) {
	wr := gateway.WalletRefund{OutTradeNo: n.OutTradeNo, OutRefundNo: n.OutRefundNo, RefundID: n.RefundID}
	if n.Mchid != c.cfg.MchID {
		return wr, &accountError{field: "mchid", got: n.Mchid}
	}
	if n.OutRefundNo == "" {
		return wr, fmt.Errorf("no out_refund_no")
	}
	if n.Amount != nil && n.Amount.Refund != nil {
		wr.Amount = *n.Amount.Refund
	}
	// The event type and the resource's status must agree; a refund notification that contradicts
	// itself is not applied.
	switch {
	case event == eventRefundSuccess && n.RefundStatus == string(refunddomestic.STATUS_SUCCESS):
		wr.State = gateway.RefundSuccess
		if wr.Amount <= 0 {
			return wr, fmt.Errorf("succeeded without a positive amount.refund")
		}
		if n.SuccessTime != nil {
			if t, err := time.Parse(time.RFC3339, *n.SuccessTime); err == nil {
				wr.SucceededAt = t
			}
		}
	case event == eventRefundClosed && n.RefundStatus == string(refunddomestic.STATUS_CLOSED),
		event == eventRefundAbnormal && n.RefundStatus == string(refunddomestic.STATUS_ABNORMAL):
		wr.State = gateway.RefundClosed
	default:
		return wr, fmt.Errorf("event %s with refund_status %q", event, n.RefundStatus)
	}
	return wr, nil
}
