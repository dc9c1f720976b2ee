package wechatpay

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"
)

const (
	refundProcessing = "PROCESSING"
	refundSuccess    = "SUCCESS"
	refundAbnormal   = "ABNORMAL" // the money could not reach the payer (e.g. a cancelled card)
	refundClosed     = "CLOSED"   // the refund was given up; the money stays with the merchant
	// maxRefundsPerOrder is WeChat's limit on partial refunds of one payment.
	maxRefundsPerOrder  = 50
	userReceivedAccount = "支付用户零钱"
)

const refundsSchema = `CREATE TABLE IF NOT EXISTS wx_refunds (
	mchid          TEXT NOT NULL,
	out_refund_no  TEXT NOT NULL,
	refund_id      TEXT NOT NULL UNIQUE,
	out_trade_no   TEXT NOT NULL,
	transaction_id TEXT NOT NULL,
	amount         INTEGER NOT NULL,
	total          INTEGER NOT NULL,
	currency       TEXT NOT NULL,
	reason         TEXT NOT NULL,
	notify_url     TEXT NOT NULL,
	funds_account  TEXT NOT NULL,
	request_hash   TEXT NOT NULL,
	status         TEXT NOT NULL,
	created_at     INTEGER NOT NULL,
	due_at         INTEGER NOT NULL,
	success_at     INTEGER,
	event_id       TEXT,
	notified       INTEGER NOT NULL DEFAULT 0,
	outcome        TEXT NOT NULL DEFAULT 'SUCCESS',
	PRIMARY KEY (mchid, out_refund_no)
)`

// refundOutcomeColumn is outcome for tables an earlier version created: the status the refund will settle in.
var refundOutcomeColumn = column{"wx_refunds", "outcome", "TEXT NOT NULL DEFAULT 'SUCCESS'"}

// refundSummary is the notification summary of each final refund status.
var refundSummary = map[string]string{refundSuccess: "退款成功", refundAbnormal: "退款异常", refundClosed: "退款关闭"}

const (
	refundsOrderIndex   = `CREATE INDEX IF NOT EXISTS wx_refunds_order ON wx_refunds (mchid, out_trade_no)`
	refundsSuccessIndex = `CREATE INDEX IF NOT EXISTS wx_refunds_success ON wx_refunds (success_at) WHERE success_at IS NOT NULL`
)

type refund struct {
	MchID, OutRefundNo, RefundID, OutTradeNo, TransactionID string
	Amount, Total                                           int64
	Currency, Reason, NotifyURL, FundsAccount, RequestHash  string
	Status, EventID                                         string
	Outcome                                                 string // the status it settles in
	CreatedAt, DueAt, SuccessAt                             time.Time
	Notified                                                bool
}

const refundCols = `mchid, out_refund_no, refund_id, out_trade_no, transaction_id, amount, total, currency, reason, notify_url,
	funds_account, request_hash, status, created_at, due_at, success_at, event_id, notified, outcome`

var errNoRefund = errors.New("wechatpay sandbox: no such refund")

func scanRefund(row scanner) (*refund, error) {
	var rf refund
	var created, due int64
	var success sql.NullInt64
	var event sql.NullString
	err := row.Scan(&rf.MchID, &rf.OutRefundNo, &rf.RefundID, &rf.OutTradeNo, &rf.TransactionID, &rf.Amount, &rf.Total,
		&rf.Currency, &rf.Reason, &rf.NotifyURL, &rf.FundsAccount, &rf.RequestHash, &rf.Status, &created, &due, &success,
		&event, &rf.Notified, &rf.Outcome)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoRefund
	}
	if err != nil {
		return nil, fmt.Errorf("wechatpay sandbox: read refund: %w", err)
	}
	rf.CreatedAt, rf.DueAt, rf.EventID = time.Unix(0, created), time.Unix(0, due), event.String
	if success.Valid {
		rf.SuccessAt = time.Unix(0, success.Int64)
	}
	return &rf, nil
}

func getRefund(ctx context.Context, q querier, mchid, outRefundNo string) (*refund, error) {
	return scanRefund(q.QueryRowContext(ctx, `SELECT `+refundCols+` FROM wx_refunds WHERE mchid = ? AND out_refund_no = ?`, mchid, outRefundNo))
}

type refundRequest struct {
	SubMchID      *string       `json:"sub_mchid,omitempty"`
	TransactionID *string       `json:"transaction_id,omitempty"`
	OutTradeNo    *string       `json:"out_trade_no,omitempty"`
	OutRefundNo   *string       `json:"out_refund_no"`
	Reason        *string       `json:"reason,omitempty"`
	NotifyURL     *string       `json:"notify_url,omitempty"`
	FundsAccount  *string       `json:"funds_account,omitempty"`
	Amount        *refundReqAmt `json:"amount"`
	GoodsDetail   []goodsDetail `json:"goods_detail,omitempty"`
}

type refundReqAmt struct {
	Refund   *int64          `json:"refund"`
	Total    *int64          `json:"total"`
	Currency *string         `json:"currency"`
	From     []fundsFromItem `json:"from,omitempty"`
}

type fundsFromItem struct {
	Account *string `json:"account"`
	Amount  *int64  `json:"amount"`
}

type goodsDetail struct {
	MerchantGoodsID  *string `json:"merchant_goods_id"`
	WechatpayGoodsID *string `json:"wechatpay_goods_id,omitempty"`
	GoodsName        *string `json:"goods_name,omitempty"`
	UnitPrice        *int64  `json:"unit_price"`
	RefundAmount     *int64  `json:"refund_amount"`
	RefundQuantity   *int64  `json:"refund_quantity"`
}

func validateRefund(req refundRequest) *apiError {
	if req.OutRefundNo == nil {
		return paramError("body", "out_refund_no", "缺少必填参数")
	}
	if !validOutNo(*req.OutRefundNo, "_-|*@", 1, 64) {
		return paramError("body", "out_refund_no", "只能是数字、大小写字母和_-|*@，长度1到64")
	}
	if req.TransactionID == nil && req.OutTradeNo == nil {
		return paramError("body", "transaction_id", "transaction_id和out_trade_no必须二选一")
	}
	for _, e := range []*apiError{
		optionalString("transaction_id", req.TransactionID, 32),
		optionalString("out_trade_no", req.OutTradeNo, 32),
		optionalString("reason", req.Reason, 80),
		validNotifyURL("notify_url", req.NotifyURL, false),
	} {
		if e != nil {
			return e
		}
	}
	if req.FundsAccount != nil && *req.FundsAccount != "AVAILABLE" {
		return paramError("body", "funds_account", "仅支持AVAILABLE")
	}
	if req.Amount == nil {
		return paramError("body", "amount", "缺少必填参数")
	}
	a := req.Amount
	switch {
	case a.Refund == nil:
		return paramError("body", "amount.refund", "缺少必填参数")
	case *a.Refund <= 0 || *a.Refund > maxTotal:
		return paramError("body", "amount.refund", "退款金额必须是大于0的整数（单位分），实际为%d", *a.Refund)
	case a.Total == nil:
		return paramError("body", "amount.total", "缺少必填参数")
	case *a.Total <= 0 || *a.Total > maxTotal:
		return paramError("body", "amount.total", "原订单金额必须是大于0的整数（单位分），实际为%d", *a.Total)
	case a.Currency == nil:
		return paramError("body", "amount.currency", "缺少必填参数")
	case *a.Currency != "CNY":
		return paramError("body", "amount.currency", "仅支持CNY")
	}
	return nil
}

// refundHash identifies a refund request's content for a repeated out_refund_no: order and amounts.
func refundHash(o *order, req refundRequest) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\n%d\n%d", o.OutTradeNo, *req.Amount.Refund, *req.Amount.Total))
	return hex.EncodeToString(sum[:])
}

// createRefund answers POST /v3/refund/domestic/refunds. The refund starts PROCESSING and settles
// after refundDelay, when its REFUND.* notification goes out: SUCCESS, unless the merchant settings
// asked for the next refund to end ABNORMAL or CLOSED.
func (s *Sandbox) createRefund(ctx context.Context, c *apiCall) (reply, error) {
	var req refundRequest
	if e := decodeJSON(c.body, &req); e != nil {
		return reply{}, e
	}
	if e := validateRefund(req); e != nil {
		return reply{}, e
	}
	if req.SubMchID != nil {
		return reply{}, invalidRequest("直连商户不能传sub_mchid")
	}
	s.settleDueRefunds(ctx)
	now := s.now()
	var rf *refund
	created := false
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var o *order
		var err error
		if req.TransactionID != nil {
			o, err = getOrderByTransactionID(ctx, tx, c.mchid, *req.TransactionID)
		} else {
			o, err = getOrder(ctx, tx, c.mchid, *req.OutTradeNo)
		}
		if errors.Is(err, errNoOrder) {
			return errTradeMissing
		}
		if err != nil {
			return err
		}
		if req.TransactionID != nil && req.OutTradeNo != nil && *req.OutTradeNo != o.OutTradeNo {
			return invalidRequest("transaction_id与out_trade_no不是同一笔订单")
		}
		hash := refundHash(o, req)
		existing, err := getRefund(ctx, tx, c.mchid, *req.OutRefundNo)
		switch {
		case err == nil:
			if existing.RequestHash != hash {
				return invalidRequest("商户退款单号%s已用于其他退款，订单或退款金额与之前请求不一致", existing.OutRefundNo)
			}
			rf = existing // the same request again: the refund as it stands
			return nil
		case !errors.Is(err, errNoRefund):
			return err
		}
		if st := o.tradeState(now); st != stateSuccess && st != stateRefund {
			return invalidRequest("订单状态为%s，未支付的订单不能退款", st)
		}
		if *req.Amount.Total != o.Total {
			return invalidRequest("订单金额total与原订单金额不一致")
		}
		var refunded, count int64
		// A closed refund gave its money back to the merchant: it can be refunded again.
		err = tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(CASE WHEN status = ? THEN 0 ELSE amount END), 0), COUNT(*)
			FROM wx_refunds WHERE mchid = ? AND out_trade_no = ?`, refundClosed, c.mchid, o.OutTradeNo).Scan(&refunded, &count)
		if err != nil {
			return fmt.Errorf("wechatpay sandbox: sum refunds: %w", err)
		}
		if count >= maxRefundsPerOrder {
			return invalidRequest("该订单退款次数已达上限%d次", maxRefundsPerOrder)
		}
		if *req.Amount.Refund > o.Total-refunded {
			return invalidRequest("申请退款金额超过订单可退金额（剩余可退%d分）", o.Total-refunded)
		}
		outcome, err := takeRefundOutcome(ctx, tx)
		if err != nil {
			return err
		}
		rf = &refund{
			Outcome: outcome, MchID: c.mchid, OutRefundNo: *req.OutRefundNo, RefundID: newRefundID(), OutTradeNo: o.OutTradeNo,
			TransactionID: o.TransactionID, Amount: *req.Amount.Refund, Total: o.Total, Currency: o.Currency,
			NotifyURL: o.NotifyURL, FundsAccount: "AVAILABLE", RequestHash: hash, Status: refundProcessing,
			CreatedAt: now, DueAt: now.Add(time.Duration(s.refundDelay.Load())),
		}
		if req.Reason != nil {
			rf.Reason = *req.Reason
		}
		if req.NotifyURL != nil {
			rf.NotifyURL = *req.NotifyURL
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO wx_refunds (mchid, out_refund_no, refund_id, out_trade_no, transaction_id, amount,
			total, currency, reason, notify_url, funds_account, request_hash, status, created_at, due_at, outcome)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			rf.MchID, rf.OutRefundNo, rf.RefundID, rf.OutTradeNo, rf.TransactionID, rf.Amount, rf.Total, rf.Currency, rf.Reason,
			rf.NotifyURL, rf.FundsAccount, rf.RequestHash, rf.Status, rf.CreatedAt.UnixNano(), rf.DueAt.UnixNano(), rf.Outcome)
		if err != nil {
			return fmt.Errorf("wechatpay sandbox: insert refund: %w", err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE wx_orders SET state = ? WHERE mchid = ? AND out_trade_no = ?`, stateRefund, c.mchid, o.OutTradeNo)
		if err != nil {
			return fmt.Errorf("wechatpay sandbox: mark order refunded: %w", err)
		}
		created = true
		return nil
	})
	if err != nil {
		return reply{}, err
	}
	if created {
		s.log.Info("wechatpay sandbox: refund accepted", "out_refund_no", rf.OutRefundNo, "out_trade_no", rf.OutTradeNo)
		s.scheduleSettle(rf.DueAt)
	}
	return jsonReply(http.StatusOK, rf.json())
}

func (s *Sandbox) queryRefund(ctx context.Context, c *apiCall) (reply, error) {
	s.settleDueRefunds(ctx)
	rf, err := getRefund(ctx, s.db, c.mchid, c.r.PathValue("out_refund_no"))
	if errors.Is(err, errNoRefund) {
		return reply{}, errRefundMissing
	}
	if err != nil {
		return reply{}, err
	}
	return jsonReply(http.StatusOK, rf.json())
}

// refundJSON is WeChat's Refund object.
type refundJSON struct {
	RefundID            string       `json:"refund_id"`
	OutRefundNo         string       `json:"out_refund_no"`
	TransactionID       string       `json:"transaction_id"`
	OutTradeNo          string       `json:"out_trade_no"`
	Channel             string       `json:"channel"`
	UserReceivedAccount string       `json:"user_received_account"`
	SuccessTime         string       `json:"success_time,omitempty"`
	CreateTime          string       `json:"create_time"`
	Status              string       `json:"status"`
	FundsAccount        string       `json:"funds_account"`
	Amount              refundAmount `json:"amount"`
	PromotionDetail     []struct{}   `json:"promotion_detail"`
}

type refundAmount struct {
	Total            int64      `json:"total"`
	Refund           int64      `json:"refund"`
	From             []struct{} `json:"from"`
	PayerTotal       int64      `json:"payer_total"`
	PayerRefund      int64      `json:"payer_refund"`
	SettlementRefund int64      `json:"settlement_refund"`
	SettlementTotal  int64      `json:"settlement_total"`
	DiscountRefund   int64      `json:"discount_refund"`
	Currency         string     `json:"currency"`
	RefundFee        int64      `json:"refund_fee"`
}

func (rf *refund) json() refundJSON {
	j := refundJSON{
		RefundID: rf.RefundID, OutRefundNo: rf.OutRefundNo, TransactionID: rf.TransactionID, OutTradeNo: rf.OutTradeNo,
		Channel: "ORIGINAL", UserReceivedAccount: userReceivedAccount, CreateTime: formatTime(rf.CreatedAt),
		Status: rf.Status, FundsAccount: rf.FundsAccount, PromotionDetail: []struct{}{},
		Amount: refundAmount{
			Total: rf.Total, Refund: rf.Amount, From: []struct{}{}, PayerTotal: rf.Total, PayerRefund: rf.Amount,
			SettlementRefund: rf.Amount, SettlementTotal: rf.Total, Currency: rf.Currency,
		},
	}
	if !rf.SuccessAt.IsZero() {
		j.SuccessTime = formatTime(rf.SuccessAt)
	}
	return j
}

// scheduleSettle makes refunds due at t succeed then, without waiting for someone to look at them.
func (s *Sandbox) scheduleSettle(at time.Time) {
	time.AfterFunc(max(at.Sub(s.now()), 0), func() { s.settleDueRefunds(context.Background()) })
}

// settleDueRefunds turns every PROCESSING refund whose time has come into its outcome (SUCCESS,
// ABNORMAL or CLOSED) and sends its REFUND.* notification. It is idempotent, so timers, queries and
// restarts may all call it.
func (s *Sandbox) settleDueRefunds(ctx context.Context) {
	now := s.now()
	var one int
	err := s.db.QueryRowContext(ctx, `SELECT 1 FROM wx_refunds WHERE status = ? AND due_at <= ? LIMIT 1`,
		refundProcessing, now.UnixNano()).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return // the common case: nothing due, no write lock taken
	}
	var settled []*refund
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+refundCols+` FROM wx_refunds WHERE status = ? AND due_at <= ?`,
			refundProcessing, now.UnixNano())
		if err != nil {
			return fmt.Errorf("wechatpay sandbox: due refunds: %w", err)
		}
		for rows.Next() {
			rf, err := scanRefund(rows)
			if err != nil {
				rows.Close()
				return err
			}
			settled = append(settled, rf)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("wechatpay sandbox: due refunds: %w", err)
		}
		for _, rf := range settled {
			if err := settleRefund(ctx, tx, rf); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.log.Warn("wechatpay sandbox: settle refunds", "err", err)
		return
	}
	for _, rf := range settled {
		if err := s.notifyRefund(ctx, rf); err != nil {
			s.log.Error("wechatpay sandbox: enqueue refund notification", "out_refund_no", rf.OutRefundNo, "err", err)
		}
	}
}

// settleRefund moves one due refund to its outcome. Only a successful refund has a success_time.
func settleRefund(ctx context.Context, tx *sql.Tx, rf *refund) error {
	rf.Status, rf.EventID = rf.Outcome, newEventID()
	if rf.Status != refundAbnormal && rf.Status != refundClosed {
		rf.Status = refundSuccess
	}
	var successAt sql.NullInt64
	if rf.Status == refundSuccess {
		rf.SuccessAt = rf.DueAt
		successAt = sql.NullInt64{Int64: rf.DueAt.UnixNano(), Valid: true}
	}
	_, err := tx.ExecContext(ctx, `UPDATE wx_refunds SET status = ?, success_at = ?, event_id = ? WHERE mchid = ? AND out_refund_no = ?`,
		rf.Status, successAt, rf.EventID, rf.MchID, rf.OutRefundNo)
	if err != nil {
		return fmt.Errorf("wechatpay sandbox: settle refund: %w", err)
	}
	if rf.Status != refundClosed {
		return nil
	}
	// With every refund of it closed, the order is simply paid again. [unverified: WeChat's own trade_state here]
	_, err = tx.ExecContext(ctx, `UPDATE wx_orders SET state = ? WHERE mchid = ? AND out_trade_no = ? AND state = ?
		AND NOT EXISTS (SELECT 1 FROM wx_refunds WHERE mchid = ? AND out_trade_no = ? AND status <> ?)`,
		stateSuccess, rf.MchID, rf.OutTradeNo, stateRefund, rf.MchID, rf.OutTradeNo, refundClosed)
	if err != nil {
		return fmt.Errorf("wechatpay sandbox: reopen refunded order: %w", err)
	}
	return nil
}

// refundOutcomes are the values of the merchant setting refund_outcome and the statuses they settle in.
var refundOutcomes = map[string]string{"success": refundSuccess, "abnormal": refundAbnormal, "closed": refundClosed}

// takeRefundOutcome reads the outcome the next refund should have and resets it to SUCCESS: the
// setting applies to one refund only.
func takeRefundOutcome(ctx context.Context, tx *sql.Tx) (string, error) {
	var outcome string
	if err := tx.QueryRowContext(ctx, `SELECT next_refund_outcome FROM wx_merchant WHERE id = 1`).Scan(&outcome); err != nil {
		return "", fmt.Errorf("wechatpay sandbox: read refund outcome: %w", err)
	}
	if outcome == refundSuccess {
		return outcome, nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE wx_merchant SET next_refund_outcome = ? WHERE id = 1`, refundSuccess); err != nil {
		return "", fmt.Errorf("wechatpay sandbox: reset refund outcome: %w", err)
	}
	return outcome, nil
}
