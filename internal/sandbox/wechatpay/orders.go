package wechatpay

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
	"unicode/utf8"
)

const (
	tradeJSAPI  = "JSAPI"
	tradeNative = "NATIVE"
	tradeH5     = "MWEB"
	tradeApp    = "APP"

	stateNotPay  = "NOTPAY"
	stateSuccess = "SUCCESS"
	stateRefund  = "REFUND"
	stateClosed  = "CLOSED"

	// defaultExpiry is how long an order without time_expire can be paid (WeChat's prepay_id lifetime).
	defaultExpiry = 2 * time.Hour
	// maxTotal keeps sums of amounts far from int64 overflow; no real single payment comes close.
	maxTotal = 100_000_000_00
)

var stateDesc = map[string]string{
	stateNotPay:  "订单未支付",
	stateSuccess: "支付成功",
	stateRefund:  "转入退款",
	stateClosed:  "订单已关闭",
}

const ordersSchema = `CREATE TABLE IF NOT EXISTS wx_orders (
	mchid          TEXT NOT NULL,
	out_trade_no   TEXT NOT NULL,
	appid          TEXT NOT NULL,
	trade_type     TEXT NOT NULL,
	description    TEXT NOT NULL,
	attach         TEXT NOT NULL,
	notify_url     TEXT NOT NULL,
	total          INTEGER NOT NULL,
	currency       TEXT NOT NULL,
	payer_openid   TEXT NOT NULL,
	request_hash   TEXT NOT NULL,
	prepay_id      TEXT NOT NULL UNIQUE,
	answer         TEXT NOT NULL,
	state          TEXT NOT NULL,
	transaction_id TEXT UNIQUE,
	bank_type      TEXT NOT NULL DEFAULT '',
	created_at     INTEGER NOT NULL,
	expire_at      INTEGER NOT NULL,
	success_at     INTEGER,
	closed_at      INTEGER,
	event_id       TEXT,
	notified       INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (mchid, out_trade_no)
)`

const ordersIndex = `CREATE INDEX IF NOT EXISTS wx_orders_success ON wx_orders (success_at) WHERE success_at IS NOT NULL`

// ordersNativeIndex finds a Native order by its code_url, which lives only in the stored answer.
const ordersNativeIndex = `CREATE INDEX IF NOT EXISTS wx_orders_native ON wx_orders (answer) WHERE trade_type = 'NATIVE'`

// codeURLPrefix starts every Native code_url; the token after it names the order.
const codeURLPrefix = "weixin://wxpay/bizpayurl?pr="

// order is one prepaid order. State is the stored state; an unpaid order past its expiry reads as CLOSED.
type order struct {
	MchID, OutTradeNo, AppID, TradeType, Description, Attach, NotifyURL string
	Total                                                               int64
	Currency, PayerOpenID, RequestHash, PrepayID, Answer, State         string
	TransactionID, BankType, EventID                                    string
	CreatedAt, ExpireAt, SuccessAt                                      time.Time
	Notified                                                            bool
}

func (o *order) tradeState(now time.Time) string {
	if o.State == stateNotPay && !now.Before(o.ExpireAt) {
		return stateClosed
	}
	return o.State
}

const orderCols = `mchid, out_trade_no, appid, trade_type, description, attach, notify_url, total, currency, payer_openid,
	request_hash, prepay_id, answer, state, transaction_id, bank_type, created_at, expire_at, success_at, event_id, notified`

type scanner interface{ Scan(dest ...any) error }

var errNoOrder = errors.New("wechatpay sandbox: no such order")

func scanOrder(row scanner) (*order, error) {
	var o order
	var tid, event sql.NullString
	var created, expire int64
	var success sql.NullInt64
	err := row.Scan(&o.MchID, &o.OutTradeNo, &o.AppID, &o.TradeType, &o.Description, &o.Attach, &o.NotifyURL, &o.Total,
		&o.Currency, &o.PayerOpenID, &o.RequestHash, &o.PrepayID, &o.Answer, &o.State, &tid, &o.BankType, &created, &expire,
		&success, &event, &o.Notified)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoOrder
	}
	if err != nil {
		return nil, fmt.Errorf("wechatpay sandbox: read order: %w", err)
	}
	o.TransactionID, o.EventID = tid.String, event.String
	o.CreatedAt, o.ExpireAt = time.Unix(0, created), time.Unix(0, expire)
	if success.Valid {
		o.SuccessAt = time.Unix(0, success.Int64)
	}
	return &o, nil
}

func getOrder(ctx context.Context, q querier, mchid, outTradeNo string) (*order, error) {
	return scanOrder(q.QueryRowContext(ctx, `SELECT `+orderCols+` FROM wx_orders WHERE mchid = ? AND out_trade_no = ?`, mchid, outTradeNo))
}

// getNativeOrder finds the Native order whose code_url ends in token.
func getNativeOrder(ctx context.Context, q querier, mchid, token string) (*order, error) {
	answer, err := marshalJSON(map[string]string{"code_url": codeURLPrefix + token})
	if err != nil {
		return nil, err
	}
	// trade_type is spelled out so the partial index wx_orders_native applies however parameters are planned.
	return scanOrder(q.QueryRowContext(ctx, `SELECT `+orderCols+` FROM wx_orders WHERE trade_type = 'NATIVE' AND answer = ? AND mchid = ?`,
		string(answer), mchid))
}

// getOrderByPrepayID finds an order by its prepay_id (JSAPI, APP, and H5 whose h5_url ends in it).
func getOrderByPrepayID(ctx context.Context, q querier, mchid, prepayID string) (*order, error) {
	return scanOrder(q.QueryRowContext(ctx, `SELECT `+orderCols+` FROM wx_orders WHERE mchid = ? AND prepay_id = ?`, mchid, prepayID))
}

func getOrderByTransactionID(ctx context.Context, q querier, mchid, transactionID string) (*order, error) {
	return scanOrder(q.QueryRowContext(ctx, `SELECT `+orderCols+` FROM wx_orders WHERE mchid = ? AND transaction_id = ?`, mchid, transactionID))
}

// prepayRequest is the body of every prepay endpoint; pointers tell missing from empty.
type prepayRequest struct {
	AppID         *string         `json:"appid"`
	MchID         *string         `json:"mchid"`
	Description   *string         `json:"description"`
	OutTradeNo    *string         `json:"out_trade_no"`
	TimeExpire    *string         `json:"time_expire,omitempty"`
	Attach        *string         `json:"attach,omitempty"`
	NotifyURL     *string         `json:"notify_url"`
	GoodsTag      *string         `json:"goods_tag,omitempty"`
	LimitPay      []string        `json:"limit_pay,omitempty"`
	SupportFapiao *bool           `json:"support_fapiao,omitempty"`
	Amount        *prepayAmount   `json:"amount"`
	Payer         *prepayPayer    `json:"payer,omitempty"`
	Detail        json.RawMessage `json:"detail,omitempty"`
	SceneInfo     *sceneInfo      `json:"scene_info,omitempty"`
	SettleInfo    *settleInfo     `json:"settle_info,omitempty"`
}

type prepayAmount struct {
	Total    *int64  `json:"total"`
	Currency *string `json:"currency,omitempty"`
}

type prepayPayer struct {
	OpenID *string `json:"openid"`
}

type sceneInfo struct {
	PayerClientIP *string         `json:"payer_client_ip"`
	DeviceID      *string         `json:"device_id,omitempty"`
	StoreInfo     json.RawMessage `json:"store_info,omitempty"`
	H5Info        *h5Info         `json:"h5_info,omitempty"`
}

type h5Info struct {
	Type        *string `json:"type"`
	AppName     *string `json:"app_name,omitempty"`
	AppURL      *string `json:"app_url,omitempty"`
	BundleID    *string `json:"bundle_id,omitempty"`
	PackageName *string `json:"package_name,omitempty"`
}

type settleInfo struct {
	ProfitSharing *bool `json:"profit_sharing,omitempty"`
}

// validPrepay is a checked prepay request.
type validPrepay struct {
	req      prepayRequest
	expireAt time.Time
	hash     string
}

func requiredString(field string, v *string, minLen, maxLen int) *apiError {
	if v == nil {
		return paramError("body", field, "缺少必填参数")
	}
	if n := utf8.RuneCountInString(*v); n < minLen || n > maxLen || !utf8.ValidString(*v) {
		return paramError("body", field, "长度应在%d到%d个字符之间，实际为%d", minLen, maxLen, n)
	}
	return nil
}

func optionalString(field string, v *string, maxLen int) *apiError {
	if v == nil {
		return nil
	}
	return requiredString(field, v, 0, maxLen)
}

// validOutNo reports whether s is a merchant order/refund number made of WeChat's allowed characters.
func validOutNo(s string, extra string, minLen, maxLen int) bool {
	if len(s) < minLen || len(s) > maxLen {
		return false
	}
	for _, c := range []byte(s) {
		ok := c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || bytes.IndexByte([]byte(extra), c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

// validNotifyURL checks a notify_url as WeChat does, except that plain http (e.g. loopback) is accepted.
func validNotifyURL(field string, v *string, required bool) *apiError {
	if v == nil {
		if required {
			return paramError("body", field, "缺少必填参数")
		}
		return nil
	}
	if len(*v) > 256 {
		return paramError("body", field, "长度不能超过256个字符")
	}
	u, err := url.Parse(*v)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return paramError("body", field, "必须是http或https开头的完整URL")
	}
	if u.RawQuery != "" || u.ForceQuery {
		return paramError("body", field, "不能携带参数")
	}
	return nil
}

func (s *Sandbox) validatePrepay(tradeType, authMchID string, req prepayRequest, now time.Time) (validPrepay, *apiError) {
	v := validPrepay{req: req}
	checks := []*apiError{
		requiredString("appid", req.AppID, 1, 32),
		requiredString("mchid", req.MchID, 1, 32),
		requiredString("description", req.Description, 1, 127),
		requiredString("out_trade_no", req.OutTradeNo, 6, 32),
		optionalString("attach", req.Attach, 128),
		validNotifyURL("notify_url", req.NotifyURL, true),
		optionalString("goods_tag", req.GoodsTag, 32),
	}
	for _, e := range checks {
		if e != nil {
			return v, e
		}
	}
	if !validOutNo(*req.OutTradeNo, "_-*", 6, 32) {
		return v, paramError("body", "out_trade_no", "只能是数字、大小写字母和_-*，长度6到32")
	}
	if req.Amount == nil || req.Amount.Total == nil {
		return v, paramError("body", "amount.total", "缺少必填参数")
	}
	if t := *req.Amount.Total; t <= 0 || t > maxTotal {
		return v, paramError("body", "amount.total", "总金额必须是大于0的整数（单位分），实际为%d", t)
	}
	if c := req.Amount.Currency; c != nil && *c != "CNY" {
		return v, paramError("body", "amount.currency", "仅支持CNY")
	}
	if tradeType == tradeJSAPI {
		if req.Payer == nil {
			return v, paramError("body", "payer", "缺少必填参数")
		}
		if e := requiredString("payer.openid", req.Payer.OpenID, 1, 128); e != nil {
			return v, e
		}
	}
	if req.SceneInfo != nil {
		if e := requiredString("scene_info.payer_client_ip", req.SceneInfo.PayerClientIP, 1, 45); e != nil {
			return v, e
		}
	}
	if tradeType == tradeH5 {
		if req.SceneInfo == nil {
			return v, paramError("body", "scene_info", "H5下单缺少必填参数")
		}
		if req.SceneInfo.H5Info == nil {
			return v, paramError("body", "scene_info.h5_info", "H5下单缺少必填参数")
		}
		if e := requiredString("scene_info.h5_info.type", req.SceneInfo.H5Info.Type, 1, 32); e != nil {
			return v, e
		}
	}
	v.expireAt = now.Add(defaultExpiry)
	if req.TimeExpire != nil {
		t, err := time.Parse(time.RFC3339, *req.TimeExpire)
		if err != nil {
			return v, paramError("body", "time_expire", "不是合法的rfc3339时间")
		}
		if !t.After(now) {
			return v, paramError("body", "time_expire", "订单失效时间必须晚于当前时间")
		}
		v.expireAt = t
	}
	if *req.MchID != authMchID {
		return v, invalidRequest("mchid与请求签名中的商户号不一致")
	}
	if *req.AppID != s.keys.doc.AppID {
		return v, newAPIError(http.StatusBadRequest, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
	}
	// The request as WeChat compares it for a repeated out_trade_no: the same order content.
	canon := req
	if len(canon.Detail) > 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, canon.Detail); err == nil {
			canon.Detail = buf.Bytes()
		}
	}
	if canon.SceneInfo != nil && len(canon.SceneInfo.StoreInfo) > 0 {
		si := *canon.SceneInfo
		var buf bytes.Buffer
		if err := json.Compact(&buf, si.StoreInfo); err == nil {
			si.StoreInfo = buf.Bytes()
		}
		canon.SceneInfo = &si
	}
	raw, err := json.Marshal(canon)
	if err != nil {
		return v, paramError("body", "body", "请求体不是合法的JSON对象")
	}
	sum := sha256.Sum256(append([]byte(tradeType+"\n"), raw...))
	v.hash = hex.EncodeToString(sum[:])
	return v, nil
}

// prepay answers POST /v3/pay/transactions/{jsapi,native,h5,app}.
func (s *Sandbox) prepay(tradeType string) apiFunc {
	return func(ctx context.Context, c *apiCall) (reply, error) {
		var req prepayRequest
		if e := decodeJSON(c.body, &req); e != nil {
			return reply{}, e
		}
		now := s.now()
		v, e := s.validatePrepay(tradeType, c.mchid, req, now)
		if e != nil {
			return reply{}, e
		}
		var answer string
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			existing, err := getOrder(ctx, tx, c.mchid, *req.OutTradeNo)
			switch {
			case err == nil:
				switch existing.tradeState(now) {
				case stateSuccess, stateRefund:
					return errOrderPaid
				case stateClosed:
					return errOrderClosed
				}
				if existing.RequestHash != v.hash {
					return errOutTradeNo
				}
				answer = existing.Answer
				return nil
			case !errors.Is(err, errNoOrder):
				return err
			}
			prepayID := newPrepayID(now)
			var ans any
			switch tradeType {
			case tradeNative:
				ans = map[string]string{"code_url": codeURLPrefix + randomString(alnum, 9)}
			case tradeH5:
				// Real h5_urls carry a query (…/checkmweb?prepay_id=…&package=…), and merchants append
				// "&redirect_url=…" to them; the page itself ignores package.
				ans = map[string]string{"h5_url": s.base(c.r) + "/sandbox/wechatpay/h5/" + prepayID + "?package=" + randomString(digits, 10)}
			default:
				ans = map[string]string{"prepay_id": prepayID}
			}
			raw, err := marshalJSON(ans)
			if err != nil {
				return err
			}
			answer = string(raw)
			openid, attach, currency := "", "", "CNY"
			if tradeType == tradeJSAPI {
				openid = *req.Payer.OpenID
			}
			if req.Attach != nil {
				attach = *req.Attach
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO wx_orders (mchid, out_trade_no, appid, trade_type, description, attach,
				notify_url, total, currency, payer_openid, request_hash, prepay_id, answer, state, created_at, expire_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				c.mchid, *req.OutTradeNo, *req.AppID, tradeType, *req.Description, attach, *req.NotifyURL,
				*req.Amount.Total, currency, openid, v.hash, prepayID, answer, stateNotPay, now.UnixNano(), v.expireAt.UnixNano())
			if err != nil {
				return fmt.Errorf("wechatpay sandbox: insert order: %w", err)
			}
			return nil
		})
		if err != nil {
			return reply{}, err
		}
		return reply{status: http.StatusOK, body: []byte(answer)}, nil
	}
}

// transactionJSON is WeChat's Transaction object (query answer and TRANSACTION.SUCCESS plaintext).
type transactionJSON struct {
	Amount          txAmount   `json:"amount"`
	AppID           string     `json:"appid"`
	Attach          string     `json:"attach,omitempty"`
	BankType        string     `json:"bank_type,omitempty"`
	MchID           string     `json:"mchid"`
	OutTradeNo      string     `json:"out_trade_no"`
	Payer           *txPayer   `json:"payer,omitempty"`
	PromotionDetail []struct{} `json:"promotion_detail"`
	SuccessTime     string     `json:"success_time,omitempty"`
	TradeState      string     `json:"trade_state"`
	TradeStateDesc  string     `json:"trade_state_desc"`
	TradeType       string     `json:"trade_type,omitempty"`
	TransactionID   string     `json:"transaction_id,omitempty"`
}

type txAmount struct {
	Currency      string `json:"currency"`
	PayerCurrency string `json:"payer_currency"`
	PayerTotal    *int64 `json:"payer_total,omitempty"`
	Total         int64  `json:"total"`
}

type txPayer struct {
	OpenID string `json:"openid"`
}

func (o *order) transaction(state string) transactionJSON {
	t := transactionJSON{
		Amount:          txAmount{Currency: o.Currency, PayerCurrency: o.Currency, Total: o.Total},
		AppID:           o.AppID,
		Attach:          o.Attach,
		MchID:           o.MchID,
		OutTradeNo:      o.OutTradeNo,
		PromotionDetail: []struct{}{},
		TradeState:      state,
		TradeStateDesc:  stateDesc[state],
	}
	if o.PayerOpenID != "" {
		t.Payer = &txPayer{OpenID: o.PayerOpenID}
	}
	if o.TransactionID != "" { // paid: the fields only a payment fills in
		total := o.Total
		t.Amount.PayerTotal = &total
		t.BankType = o.BankType
		t.SuccessTime = formatTime(o.SuccessAt)
		t.TradeType = o.TradeType
		t.TransactionID = o.TransactionID
	}
	return t
}

func (s *Sandbox) checkQueryMchID(c *apiCall) *apiError {
	mchid := c.r.URL.Query().Get("mchid")
	if mchid == "" {
		return paramError("query", "mchid", "缺少必填参数")
	}
	if mchid != c.mchid {
		return invalidRequest("mchid与请求签名中的商户号不一致")
	}
	return nil
}

func (s *Sandbox) queryByOutTradeNo(ctx context.Context, c *apiCall) (reply, error) {
	if e := s.checkQueryMchID(c); e != nil {
		return reply{}, e
	}
	o, err := getOrder(ctx, s.db, c.mchid, c.r.PathValue("out_trade_no"))
	if errors.Is(err, errNoOrder) {
		return reply{}, errOrderNotExist
	}
	if err != nil {
		return reply{}, err
	}
	return jsonReply(http.StatusOK, o.transaction(o.tradeState(s.now())))
}

func (s *Sandbox) queryByTransactionID(ctx context.Context, c *apiCall) (reply, error) {
	if e := s.checkQueryMchID(c); e != nil {
		return reply{}, e
	}
	o, err := getOrderByTransactionID(ctx, s.db, c.mchid, c.r.PathValue("transaction_id"))
	if errors.Is(err, errNoOrder) {
		return reply{}, errOrderNotExist
	}
	if err != nil {
		return reply{}, err
	}
	return jsonReply(http.StatusOK, o.transaction(o.tradeState(s.now())))
}

// closeOrder answers POST …/out-trade-no/{out_trade_no}/close with a signed, empty 204.
func (s *Sandbox) closeOrder(ctx context.Context, c *apiCall) (reply, error) {
	var req struct {
		MchID *string `json:"mchid"`
	}
	if e := decodeJSON(c.body, &req); e != nil {
		return reply{}, e
	}
	if e := requiredString("mchid", req.MchID, 1, 32); e != nil {
		return reply{}, e
	}
	if *req.MchID != c.mchid {
		return reply{}, invalidRequest("mchid与请求签名中的商户号不一致")
	}
	now := s.now()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		o, err := getOrder(ctx, tx, c.mchid, c.r.PathValue("out_trade_no"))
		if errors.Is(err, errNoOrder) {
			return errOrderNotExist
		}
		if err != nil {
			return err
		}
		switch o.tradeState(now) {
		case stateSuccess, stateRefund:
			return errOrderPaid
		case stateClosed:
			return nil // closing twice is fine
		}
		_, err = tx.ExecContext(ctx, `UPDATE wx_orders SET state = ?, closed_at = ? WHERE mchid = ? AND out_trade_no = ?`,
			stateClosed, now.UnixNano(), o.MchID, o.OutTradeNo)
		if err != nil {
			return fmt.Errorf("wechatpay sandbox: close order: %w", err)
		}
		return nil
	})
	if err != nil {
		return reply{}, err
	}
	return reply{status: http.StatusNoContent}, nil
}

// payerRequest is the optional body of the payer endpoints.
type payerRequest struct {
	MchID  string `json:"mchid"`
	OpenID string `json:"openid"`
}

// handlePay is the payer paying: the order succeeds and TRANSACTION.SUCCESS goes out.
func (s *Sandbox) handlePay(w http.ResponseWriter, r *http.Request) {
	var req payerRequest
	if !readSandboxBody(w, r, &req) {
		return
	}
	mchid := s.keys.doc.MchID
	if req.MchID != "" && req.MchID != mchid {
		writeSandboxError(w, http.StatusNotFound, "ORDER_NOT_EXIST", "no such order for this mchid")
		return
	}
	if len(req.OpenID) > maxOpenIDLen {
		writeSandboxError(w, http.StatusBadRequest, "PARAM_ERROR", "openid longer than 128 characters")
		return
	}
	outTradeNo := r.PathValue("out_trade_no")
	paid, err := s.payOrder(r.Context(), func(q querier) (*order, error) {
		return getOrder(r.Context(), q, mchid, outTradeNo)
	}, req.OpenID, newOpenID)
	if err != nil {
		s.writePayerError(w, err)
		return
	}
	writeSandboxJSON(w, http.StatusOK, paid.transaction(stateSuccess))
}

// maxOpenIDLen is WeChat's limit on payer.openid.
const maxOpenIDLen = 128

// payOrder is the payer paying the order find locates: the order succeeds and its TRANSACTION.SUCCESS
// is handed to the sender. openid names the payer; a JSAPI order can only be paid by the payer it was
// placed for; an order placed without one is paid by openid, or by defaultPayer() when that is empty.
// It fails with errNoOrder, an *apiError (409: the order cannot be paid), or a storage error.
func (s *Sandbox) payOrder(ctx context.Context, find func(q querier) (*order, error), openid string, defaultPayer func() string) (*order, error) {
	now := s.now()
	var paid *order
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		o, err := find(tx)
		if err != nil {
			return err
		}
		if st := o.tradeState(now); st != stateNotPay {
			return notPayable(st)
		}
		payer := o.PayerOpenID
		switch {
		case payer != "" && openid != "" && openid != payer:
			return &apiError{Status: http.StatusConflict, Code: "OPENID_MISMATCH", Message: "this JSAPI order was placed for another payer"}
		case payer == "" && openid != "":
			payer = openid
		case payer == "":
			payer = defaultPayer()
		}
		o.State, o.PayerOpenID, o.TransactionID, o.BankType = stateSuccess, payer, newTransactionID(now), "OTHERS"
		o.SuccessAt, o.EventID = now, newEventID()
		_, err = tx.ExecContext(ctx, `UPDATE wx_orders SET state = ?, payer_openid = ?, transaction_id = ?, bank_type = ?,
			success_at = ?, event_id = ? WHERE mchid = ? AND out_trade_no = ?`,
			o.State, o.PayerOpenID, o.TransactionID, o.BankType, now.UnixNano(), o.EventID, o.MchID, o.OutTradeNo)
		if err != nil {
			return fmt.Errorf("wechatpay sandbox: pay order: %w", err)
		}
		paid = o
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("wechatpay sandbox: order paid", "out_trade_no", paid.OutTradeNo, "transaction_id", paid.TransactionID)
	// The payment is recorded; its notification is handed over now, or at the next start if this fails.
	if err := s.notifyTransaction(context.WithoutCancel(ctx), paid); err != nil {
		s.log.Error("wechatpay sandbox: enqueue payment notification", "out_trade_no", paid.OutTradeNo, "err", err)
	}
	return paid, nil
}

// notPayable is the 409 a payer gets for an order in state st (closed, expired, paid).
func notPayable(st string) *apiError {
	return &apiError{Status: http.StatusConflict, Code: "ORDER_STATE_" + st, Message: "order cannot be paid: " + stateDesc[st]}
}

// writePayerError answers a payer action that failed: 404 unknown order, the apiError's own status, or 500.
func (s *Sandbox) writePayerError(w http.ResponseWriter, err error) {
	var ae *apiError
	switch {
	case errors.Is(err, errNoOrder):
		writeSandboxError(w, http.StatusNotFound, "ORDER_NOT_EXIST", "no such order")
	case errors.As(err, &ae):
		writeSandboxError(w, ae.Status, ae.Code, ae.Message)
	default:
		s.log.Error("wechatpay sandbox: payer action", "err", err)
		writeSandboxError(w, http.StatusInternalServerError, "SYSTEM_ERROR", "could not record the payment")
	}
}

// handleDecline is the payer cancelling at the payment sheet: nothing changes, as with WeChat.
func (s *Sandbox) handleDecline(w http.ResponseWriter, r *http.Request) {
	var req payerRequest
	if !readSandboxBody(w, r, &req) {
		return
	}
	mchid := s.keys.doc.MchID
	if req.MchID != "" && req.MchID != mchid {
		writeSandboxError(w, http.StatusNotFound, "ORDER_NOT_EXIST", "no such order for this mchid")
		return
	}
	o, err := getOrder(r.Context(), s.db, mchid, r.PathValue("out_trade_no"))
	if errors.Is(err, errNoOrder) {
		writeSandboxError(w, http.StatusNotFound, "ORDER_NOT_EXIST", "no such order")
		return
	}
	if err != nil {
		s.log.Error("wechatpay sandbox: decline", "err", err)
		writeSandboxError(w, http.StatusInternalServerError, "SYSTEM_ERROR", "could not read the order")
		return
	}
	st := o.tradeState(s.now())
	if st != stateNotPay {
		s.writePayerError(w, notPayable(st))
		return
	}
	writeSandboxJSON(w, http.StatusOK, o.transaction(st))
}
