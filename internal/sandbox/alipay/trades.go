package alipay

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Trade kinds: how the trade was opened.
const (
	kindPrecreate = "precreate" // QR code; exists for the merchant only once scanned
	kindCreate    = "create"    // mini program, buyer known up front
	kindPage      = "page"      // desktop cashier
	kindWap       = "wap"       // mobile browser cashier
	kindApp       = "app"       // app SDK order string
)

// Trade statuses, as Alipay names them.
const (
	statusWait    = "WAIT_BUYER_PAY"
	statusSuccess = "TRADE_SUCCESS"
	statusClosed  = "TRADE_CLOSED"
)

// Default lifetimes: a precreate QR code lives two hours, other trades fifteen days.
const (
	defaultQRTimeout    = 2 * time.Hour
	defaultTradeTimeout = 15 * 24 * time.Hour
)

type trade struct {
	TradeNo        string
	AppID          string
	OutTradeNo     string
	Kind           string
	Status         string
	Scanned        bool
	Subject        string
	Body           string
	TotalFen       int64
	RefundedFen    int64
	ProductCode    string
	NotifyURL      string
	ReturnURL      string
	QuitURL        string
	PassbackParams string
	BuyerID        string
	BuyerOpenID    string
	QRToken        string
	CreatedAt      int64 // unix milliseconds, as every time column
	ExpiresAt      int64
	PaidAt         int64
	ClosedAt       int64
}

// visible reports whether the merchant can see the trade: a precreated one appears only once scanned.
func (t *trade) visible() bool { return t.Kind != kindPrecreate || t.Scanned }

const tradeColumns = `trade_no, app_id, out_trade_no, kind, status, scanned, subject, body, total_fen, refunded_fen,
	product_code, notify_url, return_url, quit_url, passback_params, buyer_id, buyer_open_id, qr_token,
	created_at, expires_at, paid_at, closed_at`

func scanTrade(row interface{ Scan(...any) error }) (*trade, error) {
	var t trade
	err := row.Scan(&t.TradeNo, &t.AppID, &t.OutTradeNo, &t.Kind, &t.Status, &t.Scanned, &t.Subject, &t.Body,
		&t.TotalFen, &t.RefundedFen, &t.ProductCode, &t.NotifyURL, &t.ReturnURL, &t.QuitURL, &t.PassbackParams,
		&t.BuyerID, &t.BuyerOpenID, &t.QRToken, &t.CreatedAt, &t.ExpiresAt, &t.PaidAt, &t.ClosedAt)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

var errTradeNotFound = errors.New("alipay sandbox: trade not found")

// loadTrade finds a trade by trade_no when given (Alipay prefers it), else by out_trade_no.
func loadTrade(ctx context.Context, q querier, appID, outTradeNo, tradeNo string) (*trade, error) {
	var row *sql.Row
	switch {
	case tradeNo != "":
		row = q.QueryRowContext(ctx, `SELECT `+tradeColumns+` FROM ali_trades WHERE trade_no = ? AND app_id = ?`, tradeNo, appID)
	case outTradeNo != "":
		row = q.QueryRowContext(ctx, `SELECT `+tradeColumns+` FROM ali_trades WHERE out_trade_no = ? AND app_id = ?`, outTradeNo, appID)
	default:
		return nil, errTradeNotFound
	}
	t, err := scanTrade(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errTradeNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("alipay sandbox: load trade: %w", err)
	}
	return t, nil
}

func loadTradeByQR(ctx context.Context, q querier, token string) (*trade, error) {
	t, err := scanTrade(q.QueryRowContext(ctx, `SELECT `+tradeColumns+` FROM ali_trades WHERE qr_token = ? AND qr_token <> ''`, token))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errTradeNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("alipay sandbox: load trade: %w", err)
	}
	return t, nil
}

func insertTrade(ctx context.Context, q querier, t *trade) error {
	_, err := q.ExecContext(ctx, `INSERT INTO ali_trades (`+tradeColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.TradeNo, t.AppID, t.OutTradeNo, t.Kind, t.Status, t.Scanned, t.Subject, t.Body, t.TotalFen, t.RefundedFen,
		t.ProductCode, t.NotifyURL, t.ReturnURL, t.QuitURL, t.PassbackParams, t.BuyerID, t.BuyerOpenID, t.QRToken,
		t.CreatedAt, t.ExpiresAt, t.PaidAt, t.ClosedAt)
	if err != nil {
		return fmt.Errorf("alipay sandbox: insert trade: %w", err)
	}
	return nil
}

// saveTrade writes back the mutable columns of t.
func saveTrade(ctx context.Context, q querier, t *trade) error {
	_, err := q.ExecContext(ctx, `UPDATE ali_trades SET status = ?, scanned = ?, refunded_fen = ?, notify_url = ?,
		return_url = ?, quit_url = ?, buyer_id = ?, buyer_open_id = ?, qr_token = ?, paid_at = ?, closed_at = ?
		WHERE trade_no = ?`,
		t.Status, t.Scanned, t.RefundedFen, t.NotifyURL, t.ReturnURL, t.QuitURL, t.BuyerID, t.BuyerOpenID, t.QRToken,
		t.PaidAt, t.ClosedAt, t.TradeNo)
	if err != nil {
		return fmt.Errorf("alipay sandbox: save trade: %w", err)
	}
	return nil
}

// expireIfDue closes an unpaid trade whose time is up. Expiry is applied when the trade is next
// touched; the conditional update keeps it correct when two requests race.
func (s *Sandbox) expireIfDue(ctx context.Context, q querier, t *trade) error {
	if t.Status != statusWait || s.now().UnixMilli() < t.ExpiresAt {
		return nil
	}
	_, err := q.ExecContext(ctx, `UPDATE ali_trades SET status = ?, closed_at = ? WHERE trade_no = ? AND status = ?`,
		statusClosed, t.ExpiresAt, t.TradeNo, statusWait)
	if err != nil {
		return fmt.Errorf("alipay sandbox: expire trade: %w", err)
	}
	t.Status, t.ClosedAt = statusClosed, t.ExpiresAt
	return nil
}

// newTradeNo returns a 28-digit Alipay trade number: the Beijing date, a fixed channel part and
// random digits.
func (s *Sandbox) newTradeNo() string {
	return s.now().In(shanghai).Format("20060102") + "22001" + randomDigits(15)
}

// tradeRequest is what opening a trade asks for.
type tradeRequest struct {
	kind           string
	outTradeNo     string
	subject        string
	body           string
	totalFen       int64
	productCode    string
	notifyURL      string
	returnURL      string
	quitURL        string
	passbackParams string
	buyerID        string
	buyerOpenID    string
	expiresAt      time.Time
}

// readTradeRequest reads the biz fields every trade-opening method shares.
func (s *Sandbox) readTradeRequest(req *gatewayRequest, kind string) (tradeRequest, *apiError) {
	r := &bizReader{b: req.biz}
	tr := tradeRequest{kind: kind, notifyURL: req.params.Get("notify_url"), returnURL: req.params.Get("return_url")}
	tr.outTradeNo = r.required("out_trade_no")
	r.checkOutNo("out_trade_no", tr.outTradeNo)
	amount := r.required("total_amount")
	tr.subject = r.required("subject")
	r.checkText("subject", tr.subject, 256)
	tr.body = r.str("body")
	r.checkText("body", tr.body, 128)
	tr.productCode = r.str("product_code")
	tr.quitURL = r.str("quit_url")
	tr.passbackParams = r.str("passback_params")
	r.checkText("passback_params", tr.passbackParams, 512)
	tr.buyerID = r.str("buyer_id")
	tr.buyerOpenID = r.str("buyer_open_id")
	timeoutExpress, timeExpire := r.str("timeout_express"), r.str("time_expire")
	for _, field := range []string{"discountable_amount", "undiscountable_amount"} {
		if v := r.str(field); v != "" && r.err == nil {
			if _, err := parseYuan(v); err != nil {
				r.err = errInvalidBizParam("参数" + field + "金额格式错误")
			}
		}
	}
	if r.err != nil {
		return tr, r.err
	}
	fen, err := parseYuan(amount)
	if err != nil {
		return tr, errInvalidBizParam("订单金额total_amount格式错误或超出范围[0.01,100000000]")
	}
	tr.totalFen = fen
	def := defaultTradeTimeout
	if kind == kindPrecreate {
		def = defaultQRTimeout
	}
	exp, err := expiryTime(s.now(), timeoutExpress, timeExpire, def)
	if err != nil {
		return tr, errInvalidBizParam(err.Error())
	}
	tr.expiresAt = exp
	return tr, nil
}

// expiryTime resolves timeout_express (1m–15d, or 1c for the end of the Beijing day) and time_expire
// ("yyyy-MM-dd HH:mm:ss", or without seconds as wap pay documents it); time_expire wins.
func expiryTime(now time.Time, timeoutExpress, timeExpire string, def time.Duration) (time.Time, error) {
	if timeExpire != "" {
		for _, layout := range []string{alipayTime, "2006-01-02 15:04"} {
			if t, err := time.ParseInLocation(layout, timeExpire, shanghai); err == nil {
				return t, nil
			}
		}
		return time.Time{}, errors.New("time_expire格式错误，应为yyyy-MM-dd HH:mm:ss")
	}
	if timeoutExpress == "" {
		return now.Add(def), nil
	}
	if timeoutExpress == "1c" {
		d := now.In(shanghai)
		return time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, shanghai), nil
	}
	bad := errors.New("timeout_express格式错误，取值范围1m～15d")
	if len(timeoutExpress) < 2 || len(timeoutExpress) > 6 {
		return time.Time{}, bad
	}
	numText, unit := timeoutExpress[:len(timeoutExpress)-1], timeoutExpress[len(timeoutExpress)-1]
	if numText[0] == '0' || strings.TrimLeft(numText, "0123456789") != "" {
		return time.Time{}, bad
	}
	n, err := strconv.Atoi(numText)
	if err != nil {
		return time.Time{}, bad
	}
	var d time.Duration
	switch unit {
	case 'm':
		d = time.Duration(n) * time.Minute
	case 'h':
		d = time.Duration(n) * time.Hour
	case 'd':
		d = time.Duration(n) * 24 * time.Hour
	default:
		return time.Time{}, bad
	}
	if d < time.Minute || d > 15*24*time.Hour {
		return time.Time{}, bad
	}
	return now.Add(d), nil
}

// openTrade creates the trade for tr, or returns the existing one for the same out_trade_no when the
// request repeats it: Alipay lets a merchant re-issue an unpaid trade, refuses a paid or closed one,
// and refuses a repeat that changes the amount or the buyer.
func (s *Sandbox) openTrade(ctx context.Context, tr tradeRequest) (*trade, *apiError, error) {
	buyerID, openID := tr.buyerID, tr.buyerOpenID
	if tr.kind == kindCreate {
		switch {
		case buyerID == "" && openID == "":
			return nil, errInvalidBizParam("buyer_id和buyer_open_id不能同时为空"), nil
		case buyerID != "":
			if _, err := ensureUser(ctx, s.db, buyerID, s.now().UnixMilli()); err != nil {
				return nil, nil, err
			}
		default:
			u, err := userByOpenID(ctx, s.db, openID)
			if errors.Is(err, errUserNotFound) {
				return nil, errBuyerNotExist(), nil
			}
			if err != nil {
				return nil, nil, err
			}
			buyerID = u.id
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("alipay sandbox: open trade: %w", err)
	}
	defer tx.Rollback()
	now := s.now()
	existing, err := loadTrade(ctx, tx, s.app.id, tr.outTradeNo, "")
	switch {
	case errors.Is(err, errTradeNotFound):
	case err != nil:
		return nil, nil, err
	default:
		if err := s.expireIfDue(ctx, tx, existing); err != nil {
			return nil, nil, err
		}
		if existing.visible() || existing.Status == statusWait {
			switch {
			case existing.Status == statusSuccess:
				return nil, errTradeHasSuccess(), nil
			case existing.Status == statusClosed:
				return nil, errTradeHasClose(), nil
			case existing.TotalFen != tr.totalFen || (buyerID != "" && existing.BuyerID != "" && existing.BuyerID != buyerID):
				return nil, errContextDiffers(), nil
			}
			// A repeat of an unpaid trade: the latest URLs win, as the merchant re-issued it.
			if tr.notifyURL != "" {
				existing.NotifyURL = tr.notifyURL
			}
			if tr.returnURL != "" {
				existing.ReturnURL = tr.returnURL
			}
			if tr.quitURL != "" {
				existing.QuitURL = tr.quitURL
			}
			if tr.kind != kindPrecreate {
				existing.Scanned = true
			} else if existing.QRToken == "" {
				existing.QRToken = "bax" + randomToken(21)
			}
			if err := saveTrade(ctx, tx, existing); err != nil {
				return nil, nil, err
			}
			if err := tx.Commit(); err != nil {
				return nil, nil, fmt.Errorf("alipay sandbox: open trade: %w", err)
			}
			return existing, nil, nil
		}
		// An expired QR code nobody scanned never became a trade: the number is free again.
		if _, err := tx.ExecContext(ctx, `DELETE FROM ali_trades WHERE trade_no = ?`, existing.TradeNo); err != nil {
			return nil, nil, fmt.Errorf("alipay sandbox: open trade: %w", err)
		}
	}
	t := &trade{
		TradeNo: s.newTradeNo(), AppID: s.app.id, OutTradeNo: tr.outTradeNo, Kind: tr.kind, Status: statusWait,
		Scanned: tr.kind != kindPrecreate, Subject: tr.subject, Body: tr.body, TotalFen: tr.totalFen,
		ProductCode: tr.productCode, NotifyURL: tr.notifyURL, ReturnURL: tr.returnURL, QuitURL: tr.quitURL,
		PassbackParams: tr.passbackParams, BuyerID: buyerID, BuyerOpenID: openID,
		CreatedAt: now.UnixMilli(), ExpiresAt: tr.expiresAt.UnixMilli(),
	}
	if tr.kind == kindPrecreate {
		t.QRToken = "bax" + randomToken(21)
	}
	if err := insertTrade(ctx, tx, t); err != nil {
		return nil, nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, nil, fmt.Errorf("alipay sandbox: open trade: %w", err)
	}
	return t, nil, nil
}

// result is the code and msg every response node starts with.
type result struct {
	Code string `json:"code"`
	Msg  string `json:"msg"`
}

var success = result{Code: codeSuccess, Msg: codeMsgs[codeSuccess]}

func (s *Sandbox) qrURL(t *trade) string { return s.baseURL + "/sandbox/alipay/qr/" + t.QRToken }

type precreateResponse struct {
	result
	OutTradeNo string `json:"out_trade_no"`
	QRCode     string `json:"qr_code"`
}

func (s *Sandbox) tradePrecreate(ctx context.Context, req *gatewayRequest) (any, *apiError) {
	tr, apiErr := s.readTradeRequest(req, kindPrecreate)
	if apiErr != nil {
		return nil, apiErr
	}
	t, apiErr, err := s.openTrade(ctx, tr)
	if apiErr != nil || err != nil {
		return nil, s.internal(err, apiErr)
	}
	return precreateResponse{result: success, OutTradeNo: t.OutTradeNo, QRCode: s.qrURL(t)}, nil
}

type createResponse struct {
	result
	OutTradeNo string `json:"out_trade_no"`
	TradeNo    string `json:"trade_no"`
}

func (s *Sandbox) tradeCreate(ctx context.Context, req *gatewayRequest) (any, *apiError) {
	tr, apiErr := s.readTradeRequest(req, kindCreate)
	if apiErr != nil {
		return nil, apiErr
	}
	t, apiErr, err := s.openTrade(ctx, tr)
	if apiErr != nil || err != nil {
		return nil, s.internal(err, apiErr)
	}
	return createResponse{result: success, OutTradeNo: t.OutTradeNo, TradeNo: t.TradeNo}, nil
}

// internal turns an unexpected failure into Alipay's system error, logging the cause.
func (s *Sandbox) internal(err error, apiErr *apiError) *apiError {
	if apiErr != nil {
		return apiErr
	}
	s.log.Error("alipay sandbox: internal error", "err", err)
	return errBiz("ACQ.SYSTEM_ERROR", "系统错误")
}

// tradeKeys reads out_trade_no / trade_no, one of which is required.
func tradeKeys(req *gatewayRequest) (outTradeNo, tradeNo string, apiErr *apiError) {
	r := &bizReader{b: req.biz}
	outTradeNo, tradeNo = r.str("out_trade_no"), r.str("trade_no")
	r.checkOutNo("out_trade_no", outTradeNo)
	if r.err != nil {
		return "", "", r.err
	}
	if outTradeNo == "" && tradeNo == "" {
		return "", "", errMissingParameter("out_trade_no和trade_no不能同时为空")
	}
	return outTradeNo, tradeNo, nil
}

// merchantTrade loads the trade a merchant call names, applying expiry; a precreated trade nobody
// scanned does not exist yet.
func (s *Sandbox) merchantTrade(ctx context.Context, q querier, req *gatewayRequest) (*trade, *apiError, error) {
	outTradeNo, tradeNo, apiErr := tradeKeys(req)
	if apiErr != nil {
		return nil, apiErr, nil
	}
	t, err := loadTrade(ctx, q, s.app.id, outTradeNo, tradeNo)
	if errors.Is(err, errTradeNotFound) {
		return nil, errTradeNotExist(), nil
	}
	if err != nil {
		return nil, nil, err
	}
	if outTradeNo != "" && tradeNo != "" && t.OutTradeNo != outTradeNo {
		return nil, errTradeNotExist(), nil
	}
	if !t.visible() {
		return nil, errTradeNotExist(), nil
	}
	if err := s.expireIfDue(ctx, q, t); err != nil {
		return nil, nil, err
	}
	return t, nil, nil
}

type fundBill struct {
	FundChannel string `json:"fund_channel"`
	Amount      string `json:"amount"`
	RealAmount  string `json:"real_amount"`
}

type queryResponse struct {
	result
	TradeNo        string     `json:"trade_no"`
	OutTradeNo     string     `json:"out_trade_no"`
	BuyerLogonID   string     `json:"buyer_logon_id,omitempty"`
	TradeStatus    string     `json:"trade_status"`
	TotalAmount    string     `json:"total_amount"`
	BuyerPayAmount string     `json:"buyer_pay_amount"`
	PointAmount    string     `json:"point_amount"`
	InvoiceAmount  string     `json:"invoice_amount"`
	ReceiptAmount  string     `json:"receipt_amount"`
	SendPayDate    string     `json:"send_pay_date,omitempty"`
	BuyerUserID    string     `json:"buyer_user_id,omitempty"`
	BuyerOpenID    string     `json:"buyer_open_id,omitempty"`
	FundBillList   []fundBill `json:"fund_bill_list,omitempty"`
	Subject        string     `json:"subject,omitempty"`
	Body           string     `json:"body,omitempty"`
	PassbackParams string     `json:"passback_params,omitempty"`
}

func (s *Sandbox) tradeQuery(ctx context.Context, req *gatewayRequest) (any, *apiError) {
	t, apiErr, err := s.merchantTrade(ctx, s.db, req)
	if apiErr != nil || err != nil {
		return nil, s.internal(err, apiErr)
	}
	rsp := queryResponse{
		result: success, TradeNo: t.TradeNo, OutTradeNo: t.OutTradeNo, TradeStatus: t.Status,
		TotalAmount: formatYuan(t.TotalFen), BuyerPayAmount: "0.00", PointAmount: "0.00", InvoiceAmount: "0.00",
		ReceiptAmount: "0.00", Subject: t.Subject, Body: t.Body, PassbackParams: t.PassbackParams,
	}
	if t.BuyerID != "" {
		u, err := userByID(ctx, s.db, t.BuyerID)
		if err != nil {
			return nil, s.internal(err, nil)
		}
		rsp.BuyerUserID, rsp.BuyerLogonID = u.id, u.logonID
		rsp.BuyerOpenID = t.BuyerOpenID
	}
	if t.PaidAt != 0 {
		paid := formatYuan(t.TotalFen)
		rsp.BuyerPayAmount, rsp.InvoiceAmount, rsp.ReceiptAmount = paid, paid, paid
		rsp.SendPayDate = timeText(fromMillis(t.PaidAt))
		rsp.FundBillList = []fundBill{{FundChannel: "ALIPAYACCOUNT", Amount: paid, RealAmount: paid}}
	}
	return rsp, nil
}

type closeResponse struct {
	result
	TradeNo    string `json:"trade_no"`
	OutTradeNo string `json:"out_trade_no"`
}

func (s *Sandbox) tradeClose(ctx context.Context, req *gatewayRequest) (any, *apiError) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, s.internal(err, nil)
	}
	defer tx.Rollback()
	t, apiErr, err := s.merchantTrade(ctx, tx, req)
	if apiErr != nil || err != nil {
		if err == nil {
			err = tx.Commit() // keep an expiry applied on the way
		}
		return nil, s.internal(err, apiErr)
	}
	if t.Status != statusWait {
		if err := tx.Commit(); err != nil {
			return nil, s.internal(err, nil)
		}
		return nil, errTradeStatusBad()
	}
	t.Status, t.ClosedAt = statusClosed, s.now().UnixMilli()
	if err := saveTrade(ctx, tx, t); err != nil {
		return nil, s.internal(err, nil)
	}
	if err := tx.Commit(); err != nil {
		return nil, s.internal(err, nil)
	}
	// Alipay notifies a merchant-initiated close only when the close call names a notify_url.
	if u := req.params.Get("notify_url"); u != "" {
		s.notifyTrade(ctx, u, t, nil)
	}
	return closeResponse{result: success, TradeNo: t.TradeNo, OutTradeNo: t.OutTradeNo}, nil
}
