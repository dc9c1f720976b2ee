package wechatpay

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// billTokenTTL is how long a download_url works. WeChat's expire after 30 s; the sandbox is kinder.
const billTokenTTL = 10 * time.Minute

// billsSchema keeps each requested bill's bytes, so that the file downloaded is the one hashed.
const billsSchema = `CREATE TABLE IF NOT EXISTS wx_bills (
	token      TEXT PRIMARY KEY,
	content    BLOB NOT NULL,
	gzip       INTEGER NOT NULL,
	created_at INTEGER NOT NULL
)`

const (
	billHeader = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类," +
		"应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率," +
		"订单金额,申请退款金额,费率备注"
	billSummaryHeader = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
	feeRate           = "0.60%"
)

// tradeBill answers GET /v3/bill/tradebill: the hash of the day's bill and where to download it.
func (s *Sandbox) tradeBill(ctx context.Context, c *apiCall) (reply, error) {
	q := c.r.URL.Query()
	dateStr := q.Get("bill_date")
	if dateStr == "" {
		return reply{}, paramError("query", "bill_date", "缺少必填参数")
	}
	day, err := time.ParseInLocation(time.DateOnly, dateStr, cst)
	if err != nil {
		return reply{}, paramError("query", "bill_date", "格式应为YYYY-MM-DD")
	}
	now := s.now()
	if day.After(now) {
		return reply{}, newAPIError(http.StatusBadRequest, "NO_STATEMENT_EXIST", "账单日期晚于今天，账单不存在")
	}
	billType := q.Get("bill_type")
	switch billType {
	case "":
		billType = "ALL"
	case "ALL", "SUCCESS", "REFUND":
	default:
		return reply{}, paramError("query", "bill_type", "只能是ALL、SUCCESS或REFUND")
	}
	gz := false
	switch q.Get("tar_type") {
	case "":
	case "GZIP":
		gz = true
	default:
		return reply{}, paramError("query", "tar_type", "只能是GZIP")
	}
	s.settleDueRefunds(ctx)
	content, err := s.buildBill(ctx, day, billType)
	if err != nil {
		return reply{}, err
	}
	sum := sha1.Sum(content)
	stored := content
	if gz {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(content)
		if err := zw.Close(); err != nil {
			return reply{}, fmt.Errorf("wechatpay sandbox: gzip bill: %w", err)
		}
		stored = buf.Bytes()
	}
	token := randomString(alnum, 40)
	if _, err := s.db.ExecContext(ctx, `DELETE FROM wx_bills WHERE created_at < ?`, now.Add(-24*time.Hour).UnixNano()); err != nil {
		return reply{}, fmt.Errorf("wechatpay sandbox: prune bills: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO wx_bills (token, content, gzip, created_at) VALUES (?, ?, ?, ?)`,
		token, stored, gz, now.UnixNano()); err != nil {
		return reply{}, fmt.Errorf("wechatpay sandbox: store bill: %w", err)
	}
	return jsonReply(http.StatusOK, map[string]string{
		"hash_type":    "SHA1",
		"hash_value":   hex.EncodeToString(sum[:]),
		"download_url": s.base(c.r) + "/v3/billdownload/file?token=" + token,
	})
}

// downloadBill answers GET /v3/billdownload/file: a signed request, an unsigned file.
func (s *Sandbox) downloadBill(ctx context.Context, c *apiCall) (reply, error) {
	token := c.r.URL.Query().Get("token")
	if token == "" {
		return reply{}, paramError("query", "token", "缺少必填参数")
	}
	var content []byte
	var gz bool
	var created int64
	err := s.db.QueryRowContext(ctx, `SELECT content, gzip, created_at FROM wx_bills WHERE token = ?`, token).Scan(&content, &gz, &created)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && s.now().Sub(time.Unix(0, created)) > billTokenTTL) {
		return reply{}, invalidRequest("账单下载链接无效或已过期，请重新申请")
	}
	if err != nil {
		return reply{}, fmt.Errorf("wechatpay sandbox: read bill: %w", err)
	}
	ct := "text/plain; charset=utf-8"
	if gz {
		ct = "application/x-gzip"
	}
	return reply{status: http.StatusOK, body: content, contentType: ct, unsigned: true}, nil
}

type billRow struct {
	at                                       time.Time
	appid, mchid, tid, otn, openid, tradeTyp string
	state, desc, attach                      string
	settle, orderTotal, refund, fee          int64
	refundID, outRefundNo                    string
}

// buildBill writes the day's trade bill in WeChat's CSV format: every payment that succeeded that day
// (bill types ALL, SUCCESS) and every refund that succeeded that day (ALL, REFUND), then the summary.
func (s *Sandbox) buildBill(ctx context.Context, day time.Time, billType string) ([]byte, error) {
	from, to := day.UnixNano(), day.AddDate(0, 0, 1).UnixNano()
	mchid := s.keys.doc.MchID
	var rows []billRow
	if billType != "REFUND" {
		rs, err := s.db.QueryContext(ctx, `SELECT success_at, appid, transaction_id, out_trade_no, payer_openid, trade_type,
			description, attach, total FROM wx_orders WHERE mchid = ? AND success_at >= ? AND success_at < ? ORDER BY success_at, out_trade_no`,
			mchid, from, to)
		if err != nil {
			return nil, fmt.Errorf("wechatpay sandbox: bill payments: %w", err)
		}
		for rs.Next() {
			var r billRow
			var at int64
			if err := rs.Scan(&at, &r.appid, &r.tid, &r.otn, &r.openid, &r.tradeTyp, &r.desc, &r.attach, &r.orderTotal); err != nil {
				rs.Close()
				return nil, fmt.Errorf("wechatpay sandbox: bill payments: %w", err)
			}
			r.at, r.mchid, r.state, r.settle, r.fee = time.Unix(0, at), mchid, "SUCCESS", r.orderTotal, fee(r.orderTotal)
			rows = append(rows, r)
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return nil, fmt.Errorf("wechatpay sandbox: bill payments: %w", err)
		}
	}
	if billType != "SUCCESS" {
		rs, err := s.db.QueryContext(ctx, `SELECT r.success_at, o.appid, r.transaction_id, r.out_trade_no, o.payer_openid, o.trade_type,
			o.description, o.attach, r.amount, r.refund_id, r.out_refund_no
			FROM wx_refunds r JOIN wx_orders o ON o.mchid = r.mchid AND o.out_trade_no = r.out_trade_no
			WHERE r.mchid = ? AND r.status = ? AND r.success_at >= ? AND r.success_at < ? ORDER BY r.success_at, r.out_refund_no`,
			mchid, refundSuccess, from, to)
		if err != nil {
			return nil, fmt.Errorf("wechatpay sandbox: bill refunds: %w", err)
		}
		for rs.Next() {
			var r billRow
			var at int64
			if err := rs.Scan(&at, &r.appid, &r.tid, &r.otn, &r.openid, &r.tradeTyp, &r.desc, &r.attach, &r.refund, &r.refundID, &r.outRefundNo); err != nil {
				rs.Close()
				return nil, fmt.Errorf("wechatpay sandbox: bill refunds: %w", err)
			}
			r.at, r.mchid, r.state, r.fee = time.Unix(0, at), mchid, "REFUND", -fee(r.refund)
			rows = append(rows, r)
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return nil, fmt.Errorf("wechatpay sandbox: bill refunds: %w", err)
		}
	}

	var b strings.Builder
	b.WriteString(billHeader + "\r\n")
	var settle, refunds, fees, orders int64
	for _, r := range rows {
		refundType, refundState, refundID, outRefundNo := "", "", "0", "0"
		if r.state == "REFUND" {
			refundType, refundState, refundID, outRefundNo = "ORIGINAL", "SUCCESS", r.refundID, r.outRefundNo
		}
		fields := []string{
			r.at.In(cst).Format(time.DateTime), r.appid, r.mchid, "0", "", r.tid, r.otn, r.openid, r.tradeTyp, r.state, "OTHERS", "CNY",
			yuan(r.settle), "0.00", refundID, outRefundNo, yuan(r.refund), "0.00", refundType, refundState,
			billText(r.desc), billText(r.attach), yuan(r.fee), feeRate, yuan(r.orderTotal), yuan(r.refund), "",
		}
		for i, f := range fields {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("`" + f)
		}
		b.WriteString("\r\n")
		settle, refunds, fees, orders = settle+r.settle, refunds+r.refund, fees+r.fee, orders+r.orderTotal
	}
	b.WriteString(billSummaryHeader + "\r\n")
	summary := []string{fmt.Sprint(len(rows)), yuan(settle), yuan(refunds), "0.00", yuan(fees), yuan(orders), yuan(refunds)}
	for i, f := range summary {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("`" + f)
	}
	b.WriteString("\r\n")
	return []byte(b.String()), nil
}

// fee is the 0.6% service fee in fen, rounded half up (integer arithmetic: no floats near money).
func fee(amount int64) int64 { return (amount*6 + 500) / 1000 }

// yuan formats fen as yuan with two decimals, as WeChat's bills do.
func yuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s%d.%02d", sign, fen/100, fen%100)
}

// billText keeps free text from breaking the CSV: WeChat's bills do not quote fields.
func billText(s string) string {
	return strings.NewReplacer(",", "，", "\r", " ", "\n", " ", "`", "'").Replace(s)
}
