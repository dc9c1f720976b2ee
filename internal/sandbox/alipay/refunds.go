package alipay

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

type refund struct {
	TradeNo      string
	OutRequestNo string
	AmountFen    int64
	Reason       string
	CreatedAt    int64
}

func loadRefund(ctx context.Context, q querier, tradeNo, outRequestNo string) (*refund, error) {
	var r refund
	err := q.QueryRowContext(ctx, `SELECT trade_no, out_request_no, amount_fen, reason, created_at FROM ali_refunds
		WHERE trade_no = ? AND out_request_no = ?`, tradeNo, outRequestNo).
		Scan(&r.TradeNo, &r.OutRequestNo, &r.AmountFen, &r.Reason, &r.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errRefundNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("alipay sandbox: load refund: %w", err)
	}
	return &r, nil
}

var errRefundNotFound = errors.New("alipay sandbox: refund not found")

type refundResponse struct {
	result
	TradeNo      string `json:"trade_no"`
	OutTradeNo   string `json:"out_trade_no"`
	BuyerLogonID string `json:"buyer_logon_id,omitempty"`
	BuyerUserID  string `json:"buyer_user_id,omitempty"`
	BuyerOpenID  string `json:"buyer_open_id,omitempty"`
	FundChange   string `json:"fund_change"`
	RefundFee    string `json:"refund_fee"`
	GmtRefundPay string `json:"gmt_refund_pay"`
	SendBackFee  string `json:"send_back_fee"`
}

// tradeRefund refunds part or all of a paid trade. out_request_no makes it idempotent: a repeat
// answers success again with fund_change "N"; a repeat with another amount is refused. Without
// out_request_no the request number is the out_trade_no, as Alipay defaults it.
func (s *Sandbox) tradeRefund(ctx context.Context, req *gatewayRequest) (any, *apiError) {
	r := &bizReader{b: req.biz}
	amountText := r.required("refund_amount")
	outRequestNo := r.str("out_request_no")
	r.checkOutNo("out_request_no", outRequestNo)
	reason := r.str("refund_reason")
	r.checkText("refund_reason", reason, 256)
	if r.err != nil {
		return nil, r.err
	}
	amount, err := parseYuan(amountText)
	if err != nil {
		return nil, errRefundAmountBad()
	}

	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, s.internal(err, nil)
	}
	defer tx.Rollback()
	t, apiErr, err := s.merchantTrade(ctx, tx, req)
	if apiErr != nil || err != nil {
		return nil, s.internal(err, apiErr)
	}
	if outRequestNo == "" {
		outRequestNo = t.OutTradeNo
	}
	rsp := refundResponse{result: success, TradeNo: t.TradeNo, OutTradeNo: t.OutTradeNo, BuyerOpenID: t.BuyerOpenID}
	if t.BuyerID != "" {
		u, err := userByID(ctx, tx, t.BuyerID)
		if err != nil {
			return nil, s.internal(err, nil)
		}
		rsp.BuyerUserID, rsp.BuyerLogonID = u.id, u.logonID
	}

	prev, err := loadRefund(ctx, tx, t.TradeNo, outRequestNo)
	switch {
	case err == nil:
		if prev.AmountFen != amount {
			return nil, errRefundDiscordant()
		}
		rsp.FundChange, rsp.RefundFee = "N", formatYuan(t.RefundedFen)
		rsp.GmtRefundPay, rsp.SendBackFee = timeText(fromMillis(prev.CreatedAt)), formatYuan(prev.AmountFen)
		return rsp, nil
	case !errors.Is(err, errRefundNotFound):
		return nil, s.internal(err, nil)
	}

	switch {
	case t.PaidAt == 0:
		_ = tx.Commit() // keep an expiry applied on the way
		return nil, errTradeStatusError()
	case t.RefundedFen+amount > t.TotalFen: // also a fully refunded, closed trade
		return nil, errRefundTooMuch()
	}
	now := s.now()
	_, err = tx.ExecContext(ctx, `INSERT INTO ali_refunds (trade_no, out_request_no, amount_fen, reason, created_at)
		VALUES (?, ?, ?, ?, ?)`, t.TradeNo, outRequestNo, amount, reason, now.UnixMilli())
	if err != nil {
		return nil, s.internal(fmt.Errorf("alipay sandbox: insert refund: %w", err), nil)
	}
	t.RefundedFen += amount
	if t.RefundedFen == t.TotalFen {
		t.Status, t.ClosedAt = statusClosed, now.UnixMilli()
	}
	if err := saveTrade(ctx, tx, t); err != nil {
		return nil, s.internal(err, nil)
	}
	if err := tx.Commit(); err != nil {
		return nil, s.internal(err, nil)
	}
	s.log.Info("alipay sandbox: trade refunded", "out_trade_no", t.OutTradeNo, "out_request_no", outRequestNo)
	if t.NotifyURL != "" {
		s.notifyTrade(ctx, t.NotifyURL, t, &refund{TradeNo: t.TradeNo, OutRequestNo: outRequestNo, AmountFen: amount, Reason: reason, CreatedAt: now.UnixMilli()})
	}
	rsp.FundChange, rsp.RefundFee = "Y", formatYuan(t.RefundedFen)
	rsp.GmtRefundPay, rsp.SendBackFee = timeText(now), formatYuan(amount)
	return rsp, nil
}

type refundQueryResponse struct {
	result
	TradeNo      string `json:"trade_no,omitempty"`
	OutTradeNo   string `json:"out_trade_no,omitempty"`
	OutRequestNo string `json:"out_request_no,omitempty"`
	TotalAmount  string `json:"total_amount,omitempty"`
	RefundAmount string `json:"refund_amount,omitempty"`
	RefundStatus string `json:"refund_status,omitempty"`
	GmtRefundPay string `json:"gmt_refund_pay,omitempty"`
	SendBackFee  string `json:"send_back_fee,omitempty"`
	RefundReason string `json:"refund_reason,omitempty"`
}

// tradeRefundQuery reports one refund. A request number never refunded answers success without
// refund_status, which is how Alipay says "not found or failed".
func (s *Sandbox) tradeRefundQuery(ctx context.Context, req *gatewayRequest) (any, *apiError) {
	r := &bizReader{b: req.biz}
	outRequestNo := r.required("out_request_no")
	r.checkOutNo("out_request_no", outRequestNo)
	if r.err != nil {
		return nil, r.err
	}
	t, apiErr, err := s.merchantTrade(ctx, s.db, req)
	if apiErr != nil || err != nil {
		return nil, s.internal(err, apiErr)
	}
	rf, err := loadRefund(ctx, s.db, t.TradeNo, outRequestNo)
	if errors.Is(err, errRefundNotFound) {
		return refundQueryResponse{result: success, TradeNo: t.TradeNo, OutTradeNo: t.OutTradeNo, OutRequestNo: outRequestNo}, nil
	}
	if err != nil {
		return nil, s.internal(err, nil)
	}
	return refundQueryResponse{
		result: success, TradeNo: t.TradeNo, OutTradeNo: t.OutTradeNo, OutRequestNo: rf.OutRequestNo,
		TotalAmount: formatYuan(t.TotalFen), RefundAmount: formatYuan(rf.AmountFen), RefundStatus: "REFUND_SUCCESS",
		GmtRefundPay: timeText(fromMillis(rf.CreatedAt)), SendBackFee: formatYuan(rf.AmountFen), RefundReason: rf.Reason,
	}, nil
}
