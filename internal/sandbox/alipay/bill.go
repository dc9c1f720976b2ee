package alipay

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// Bills: alipay.data.dataservice.bill.downloadurl.query answers a short-lived link on the sandbox
// itself; the link serves Alipay's zip of GBK-encoded CSVs (a detail file and a summary file),
// built at download time from every trade paid and every refund made in the period, today included.

// billLinkTTL is how long a download link works, as Alipay's ~30 s.
const billLinkTTL = 30 * time.Second

// billPeriod is a day (yyyy-MM-dd) or a month (yyyy-MM) in Beijing time.
type billPeriod struct {
	text       string // yyyyMMdd or yyyyMM, as in file names
	start, end time.Time
}

func parseBillDate(s string) (billPeriod, error) {
	if t, err := time.ParseInLocation("2006-01-02", s, shanghai); err == nil && len(s) == 10 {
		return billPeriod{text: t.Format("20060102"), start: t, end: t.AddDate(0, 0, 1)}, nil
	}
	if t, err := time.ParseInLocation("2006-01", s, shanghai); err == nil && len(s) == 7 {
		return billPeriod{text: t.Format("200601"), start: t, end: t.AddDate(0, 1, 0)}, nil
	}
	return billPeriod{}, fmt.Errorf("alipay sandbox: bad bill_date %q", s)
}

// parseBillDates reads the bizDates of a download link.
func parseBillDates(s string) (billPeriod, error) {
	switch len(s) {
	case 8:
		if t, err := time.ParseInLocation("20060102", s, shanghai); err == nil {
			return billPeriod{text: s, start: t, end: t.AddDate(0, 0, 1)}, nil
		}
	case 6:
		if t, err := time.ParseInLocation("200601", s, shanghai); err == nil {
			return billPeriod{text: s, start: t, end: t.AddDate(0, 1, 0)}, nil
		}
	}
	return billPeriod{}, fmt.Errorf("alipay sandbox: bad bizDates %q", s)
}

type billURLResponse struct {
	result
	BillDownloadURL string `json:"bill_download_url"`
}

var earliestBill = time.Date(2016, 1, 1, 0, 0, 0, 0, shanghai)

func (s *Sandbox) billDownloadURLQuery(ctx context.Context, req *gatewayRequest) (any, *apiError) {
	r := &bizReader{b: req.biz}
	billType := r.required("bill_type")
	billDate := r.required("bill_date")
	if r.err != nil {
		return nil, r.err
	}
	if billType != "trade" && billType != "signcustomer" {
		return nil, errInvalidParameter("参数bill_type无效，应为trade或signcustomer")
	}
	p, err := parseBillDate(billDate)
	if err != nil {
		return nil, errInvalidParameter("参数bill_date格式错误，应为yyyy-MM-dd或yyyy-MM")
	}
	if p.start.After(s.now()) || p.start.Before(earliestBill) {
		return nil, errBillNotExist()
	}
	expires := strconv.FormatInt(s.now().Add(billLinkTTL).Unix(), 10)
	q := url.Values{}
	q.Set("bizType", billType)
	q.Set("userId", s.app.sellerID)
	q.Set("fileType", "csv.zip")
	q.Set("bizDates", p.text)
	q.Set("downloadFileName", s.app.sellerID+"0156_"+p.text+".csv.zip")
	q.Set("expires", expires)
	q.Set("sig", s.billSignature(billType, p.text, expires))
	return billURLResponse{result: success, BillDownloadURL: s.baseURL + "/sandbox/alipay/bills/download?" + q.Encode()}, nil
}

func (s *Sandbox) billSignature(billType, dates, expires string) string {
	m := hmac.New(sha256.New, s.app.billSecret)
	m.Write([]byte(billType + "|" + dates + "|" + expires))
	return hex.EncodeToString(m.Sum(nil))
}

// handleBillDownload serves the zip a download link names, while the link is valid.
func (s *Sandbox) handleBillDownload(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	billType, dates, expires := q.Get("bizType"), q.Get("bizDates"), q.Get("expires")
	want := s.billSignature(billType, dates, expires)
	if !hmac.Equal([]byte(want), []byte(q.Get("sig"))) {
		http.Error(w, "invalid bill link", http.StatusForbidden)
		return
	}
	exp, err := strconv.ParseInt(expires, 10, 64)
	if err != nil || s.now().Unix() > exp {
		http.Error(w, "bill link expired", http.StatusForbidden)
		return
	}
	p, err := parseBillDates(dates)
	if err != nil {
		http.Error(w, "invalid bill link", http.StatusBadRequest)
		return
	}
	zipped, err := s.buildBill(r.Context(), billType, p)
	if err != nil {
		s.log.Error("alipay sandbox: build bill", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", `attachment; filename="`+s.app.sellerID+"0156_"+p.text+`.csv.zip"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(zipped)))
	_, _ = w.Write(zipped)
}

// billEntry is one money movement: a payment (refund == nil) or a refund.
type billEntry struct {
	t      trade
	logon  string
	refund *refund
	at     time.Time
}

func (s *Sandbox) billEntries(ctx context.Context, p billPeriod) ([]billEntry, error) {
	var out []billEntry
	rows, err := s.db.QueryContext(ctx, `SELECT `+prefixed("t.", tradeColumns)+`, COALESCE(u.logon_id, '')
		FROM ali_trades t LEFT JOIN ali_users u ON u.user_id = t.buyer_id
		WHERE t.app_id = ? AND t.paid_at >= ? AND t.paid_at < ? ORDER BY t.paid_at, t.trade_no`,
		s.app.id, p.start.UnixMilli(), p.end.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("alipay sandbox: bill trades: %w", err)
	}
	for rows.Next() {
		var e billEntry
		if err := scanTradeAnd(rows, &e.t, &e.logon); err != nil {
			rows.Close()
			return nil, fmt.Errorf("alipay sandbox: bill trades: %w", err)
		}
		e.at = fromMillis(e.t.PaidAt)
		out = append(out, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("alipay sandbox: bill trades: %w", err)
	}
	rows, err = s.db.QueryContext(ctx, `SELECT `+prefixed("t.", tradeColumns)+`, COALESCE(u.logon_id, ''),
		r.out_request_no, r.amount_fen, r.reason, r.created_at
		FROM ali_refunds r JOIN ali_trades t ON t.trade_no = r.trade_no LEFT JOIN ali_users u ON u.user_id = t.buyer_id
		WHERE t.app_id = ? AND r.created_at >= ? AND r.created_at < ? ORDER BY r.created_at, r.trade_no, r.out_request_no`,
		s.app.id, p.start.UnixMilli(), p.end.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("alipay sandbox: bill refunds: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e billEntry
		rf := &refund{}
		if err := scanTradeAnd(rows, &e.t, &e.logon, &rf.OutRequestNo, &rf.AmountFen, &rf.Reason, &rf.CreatedAt); err != nil {
			return nil, fmt.Errorf("alipay sandbox: bill refunds: %w", err)
		}
		rf.TradeNo = e.t.TradeNo
		e.refund, e.at = rf, fromMillis(rf.CreatedAt)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("alipay sandbox: bill refunds: %w", err)
	}
	return out, nil
}

func prefixed(prefix, columns string) string {
	parts := strings.Split(columns, ",")
	for i, p := range parts {
		parts[i] = prefix + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

func scanTradeAnd(rows interface{ Scan(...any) error }, t *trade, extra ...any) error {
	dest := []any{&t.TradeNo, &t.AppID, &t.OutTradeNo, &t.Kind, &t.Status, &t.Scanned, &t.Subject, &t.Body,
		&t.TotalFen, &t.RefundedFen, &t.ProductCode, &t.NotifyURL, &t.ReturnURL, &t.QuitURL, &t.PassbackParams,
		&t.BuyerID, &t.BuyerOpenID, &t.QRToken, &t.CreatedAt, &t.ExpiresAt, &t.PaidAt, &t.ClosedAt}
	return rows.Scan(append(dest, extra...)...)
}

// buildBill renders the period's bill files and zips them, names and contents in GBK as Alipay's are.
func (s *Sandbox) buildBill(ctx context.Context, billType string, p billPeriod) ([]byte, error) {
	entries, err := s.billEntries(ctx, p)
	if err != nil {
		return nil, err
	}
	var detailName, summaryName string
	var detail, summary []byte
	if billType == "signcustomer" {
		opening, err := s.balanceBefore(ctx, p.start)
		if err != nil {
			return nil, err
		}
		detailName, summaryName = "账务明细.csv", "账务明细(汇总).csv"
		detail, summary = s.accountDetail(p, entries, opening), s.accountSummary(p, entries)
	} else {
		detailName, summaryName = "业务明细.csv", "业务明细(汇总).csv"
		detail, summary = s.tradeDetail(p, entries), s.tradeSummary(p, entries)
	}
	prefix := s.app.sellerID + "0156_" + p.text + "_"
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range []struct {
		name string
		body []byte
	}{{prefix + detailName, detail}, {prefix + summaryName, summary}} {
		gbkName, err := toGBK([]byte(f.name))
		if err != nil {
			return nil, err
		}
		gbkBody, err := toGBK(f.body)
		if err != nil {
			return nil, err
		}
		// NonUTF8 keeps the zip from flagging the GBK name as UTF-8, as Alipay's zips do.
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: string(gbkName), Method: zip.Deflate, NonUTF8: true, Modified: s.now()})
		if err != nil {
			return nil, fmt.Errorf("alipay sandbox: zip bill: %w", err)
		}
		if _, err := fw.Write(gbkBody); err != nil {
			return nil, fmt.Errorf("alipay sandbox: zip bill: %w", err)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("alipay sandbox: zip bill: %w", err)
	}
	return buf.Bytes(), nil
}

// toGBK encodes UTF-8 text as GBK; characters GBK lacks (emoji) become "?" rather than failing the bill.
func toGBK(b []byte) ([]byte, error) {
	out, err := encoding.ReplaceUnsupported(simplifiedchinese.GBK.NewEncoder()).Bytes(b)
	if err != nil {
		return nil, fmt.Errorf("alipay sandbox: encode bill as GBK: %w", err)
	}
	return out, nil
}

// billWriter writes Alipay's CSV flavour: "#" comment lines and comma-separated rows, CRLF.
type billWriter struct {
	buf bytes.Buffer
	csv *csv.Writer
}

func newBillWriter() *billWriter {
	w := &billWriter{}
	w.csv = csv.NewWriter(&w.buf)
	w.csv.UseCRLF = true
	return w
}

func (w *billWriter) comment(line string) {
	w.csv.Flush()
	w.buf.WriteString(line + "\r\n")
}

func (w *billWriter) row(cells ...string) { _ = w.csv.Write(cells) }

func (w *billWriter) bytes() []byte {
	w.csv.Flush()
	return w.buf.Bytes()
}

func bracketTime(t time.Time) string {
	return "[" + t.In(shanghai).Format("2006年01月02日 15:04:05") + "]"
}

func (s *Sandbox) billHeader(w *billWriter, title, listName string, p billPeriod) {
	w.comment("#" + title)
	w.comment("#账号：[" + s.app.sellerID + "0156]")
	w.comment("#起始日期：" + bracketTime(p.start) + "   终止日期：" + bracketTime(p.end))
	w.comment("#-----------------------------------------" + listName + "----------------------------------------")
}

func (s *Sandbox) billFooter(w *billWriter, listName string, lines ...string) {
	w.comment("#-----------------------------------------" + listName + "结束------------------------------------")
	for _, l := range lines {
		w.comment(l)
	}
	w.comment("#导出时间：" + bracketTime(s.now()))
}

var tradeDetailColumns = []string{"支付宝交易号", "商户订单号", "业务类型", "商品名称", "创建时间", "完成时间", "门店编号",
	"门店名称", "操作员", "终端号", "对方账户", "订单金额（元）", "商家实收（元）", "支付宝红包（元）", "集分宝（元）",
	"支付宝优惠（元）", "商家优惠（元）", "券核销金额（元）", "券名称", "商家红包消费金额（元）", "卡消费金额（元）",
	"退款批次号/请求号", "服务费（元）", "分润（元）", "备注"}

// tradeDetail is the 业务明细 file: one row per payment (交易) and per refund (退款, negative net).
// Identifier cells end in a tab, as Alipay writes them to keep spreadsheets from mangling them.
func (s *Sandbox) tradeDetail(p billPeriod, entries []billEntry) []byte {
	w := newBillWriter()
	s.billHeader(w, "支付宝业务明细查询", "业务明细列表", p)
	w.row(tradeDetailColumns...)
	var payN, refundN int
	var payFen, refundFen int64
	for _, e := range entries {
		kind, net, requestNo, finished := "交易", e.t.TotalFen, "", e.at
		if e.refund != nil {
			kind, net, requestNo = "退款", -e.refund.AmountFen, e.refund.OutRequestNo+"\t"
			refundN++
			refundFen += e.refund.AmountFen
		} else {
			payN++
			payFen += e.t.TotalFen
		}
		w.row(e.t.TradeNo+"\t", e.t.OutTradeNo+"\t", kind, e.t.Subject, timeText(fromMillis(e.t.CreatedAt)),
			timeText(finished), "", "", "", "", e.logon, formatYuan(e.t.TotalFen), formatYuan(net),
			"0.00", "0.00", "0.00", "0.00", "0.00", "", "0.00", "0.00", requestNo, "0.00", "0.00", "")
	}
	s.billFooter(w, "业务明细列表",
		fmt.Sprintf("#交易合计：%d笔，商家实收共%s元，商家优惠共0.00元，服务费共0.00元", payN, formatYuan(payFen)),
		fmt.Sprintf("#退款合计：%d笔，商家实收共%s元，商家优惠共0.00元，服务费共0.00元", refundN, formatYuan(-refundFen)))
	return w.bytes()
}

// tradeSummary is the 业务明细(汇总) file: the period's totals.
func (s *Sandbox) tradeSummary(p billPeriod, entries []billEntry) []byte {
	w := newBillWriter()
	s.billHeader(w, "支付宝业务汇总查询", "业务汇总列表", p)
	w.row("门店编号", "门店名称", "交易订单总笔数", "退款订单总笔数", "订单金额（元）", "商家实收（元）", "支付宝优惠（元）",
		"商家优惠（元）", "卡消费金额（元）", "服务费（元）", "分润（元）", "实收净额（元）")
	var payN, refundN int
	var orderFen, netFen int64
	for _, e := range entries {
		if e.refund != nil {
			refundN++
			netFen -= e.refund.AmountFen
		} else {
			payN++
			orderFen += e.t.TotalFen
			netFen += e.t.TotalFen
		}
	}
	w.row("合计", "", strconv.Itoa(payN), strconv.Itoa(refundN), formatYuan(orderFen), formatYuan(netFen),
		"0.00", "0.00", "0.00", "0.00", "0.00", formatYuan(netFen))
	s.billFooter(w, "业务汇总列表")
	return w.bytes()
}

// balanceBefore is the merchant's account balance at t: everything paid minus everything refunded.
func (s *Sandbox) balanceBefore(ctx context.Context, t time.Time) (int64, error) {
	var paid, refunded int64
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(SUM(total_fen), 0) FROM ali_trades WHERE app_id = ? AND paid_at > 0 AND paid_at < ?`,
		s.app.id, t.UnixMilli()).Scan(&paid)
	if err == nil {
		err = s.db.QueryRowContext(ctx, `SELECT COALESCE(SUM(r.amount_fen), 0) FROM ali_refunds r JOIN ali_trades t ON t.trade_no = r.trade_no
			WHERE t.app_id = ? AND r.created_at < ?`, s.app.id, t.UnixMilli()).Scan(&refunded)
	}
	if err != nil {
		return 0, fmt.Errorf("alipay sandbox: bill balance: %w", err)
	}
	return paid - refunded, nil
}

// accountDetail is the 账务明细 file (bill_type signcustomer): every movement of the merchant's
// balance with the running balance. Entries come payments first, then refunds, so they are
// re-sorted by time here.
func (s *Sandbox) accountDetail(p billPeriod, entries []billEntry, balance int64) []byte {
	sorted := slices.Clone(entries)
	slices.SortStableFunc(sorted, func(a, b billEntry) int { return a.at.Compare(b.at) })
	w := newBillWriter()
	s.billHeader(w, "支付宝账务明细查询", "账务明细列表", p)
	w.row("账务流水号", "业务流水号", "商户订单号", "商品名称", "发生时间", "对方账号", "收入金额（+元）", "支出金额（-元）",
		"账户余额（元）", "交易渠道", "业务类型", "备注")
	var inN, outN int
	var inFen, outFen int64
	for i, e := range sorted {
		income, expense, kind, remark := "", "", "在线支付", ""
		if e.refund != nil {
			balance -= e.refund.AmountFen
			expense, kind, remark = formatYuan(-e.refund.AmountFen), "交易退款", e.refund.Reason
			outN++
			outFen += e.refund.AmountFen
		} else {
			balance += e.t.TotalFen
			income = "+" + formatYuan(e.t.TotalFen)
			inN++
			inFen += e.t.TotalFen
		}
		serial := e.at.In(shanghai).Format("20060102") + fmt.Sprintf("%011d", i+1)
		w.row(serial+"\t", e.t.TradeNo+"\t", e.t.OutTradeNo+"\t", e.t.Subject, timeText(e.at), e.logon,
			income, expense, formatYuan(balance), "支付宝", kind, remark)
	}
	s.billFooter(w, "账务明细列表",
		fmt.Sprintf("#支出合计：%d笔，共%s元", outN, formatYuan(-outFen)),
		fmt.Sprintf("#收入合计：%d笔，共%s元", inN, formatYuan(inFen)))
	return w.bytes()
}

func (s *Sandbox) accountSummary(p billPeriod, entries []billEntry) []byte {
	w := newBillWriter()
	s.billHeader(w, "支付宝账务汇总查询", "账务汇总列表", p)
	w.row("业务类型", "收入笔数", "收入金额（+元）", "支出笔数", "支出金额（-元）", "合计（元）")
	var inN, outN int
	var inFen, outFen int64
	for _, e := range entries {
		if e.refund != nil {
			outN++
			outFen += e.refund.AmountFen
		} else {
			inN++
			inFen += e.t.TotalFen
		}
	}
	w.row("在线支付", strconv.Itoa(inN), formatYuan(inFen), "0", "0.00", formatYuan(inFen))
	w.row("交易退款", "0", "0.00", strconv.Itoa(outN), formatYuan(-outFen), formatYuan(-outFen))
	w.row("合计", strconv.Itoa(inN), formatYuan(inFen), strconv.Itoa(outN), formatYuan(-outFen), formatYuan(inFen-outFen))
	s.billFooter(w, "账务汇总列表")
	return w.bytes()
}
