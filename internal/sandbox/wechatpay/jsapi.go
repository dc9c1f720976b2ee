package wechatpay

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
)

// The emulated WeChat JS bridge. Inside WeChat, a JSAPI page calls
// WeixinJSBridge.invoke('getBrandWCPayRequest', params, cb) (or a mini program wx.requestPayment);
// WeChat checks paySign and the prepay_id, shows the payment sheet, and reports back. The sandbox
// serves a script (GET /sandbox/wechatpay/bridge.js) that does the same against two endpoints:
//
//	POST /sandbox/wechatpay/jsapi/verify  checks the parameters; answers the order for the sheet
//	POST /sandbox/wechatpay/jsapi/pay     checks them again and pays the order as its own payer
//
// Both take the getBrandWCPayRequest parameters as JSON and allow any calling origin (CORS), since
// the page that loads the script is served by someone else (the gateway's checkout).

//go:embed bridge.js
var bridgeJS string

// bridgeOriginPlaceholder in bridge.js is replaced by the sandbox's base URL as a JS string.
const bridgeOriginPlaceholder = "__SANDBOX_ORIGIN__"

func (s *Sandbox) handleBridgeJS(w http.ResponseWriter, r *http.Request) {
	origin, err := json.Marshal(s.base(r)) // a JSON string is a JS string literal (<, > and & escaped too)
	if err != nil {
		http.Error(w, "encode origin", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/javascript; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	// The script is loaded cross-origin by the checkout page; crossorigin="anonymous" loads must work too.
	h.Set("Access-Control-Allow-Origin", "*")
	_, _ = io.WriteString(w, strings.Replace(bridgeJS, bridgeOriginPlaceholder, string(origin), 1))
}

// cors lets a page of any origin call the bridge endpoints, preflight included. The endpoints need
// no credentials: the paySign is the authority, as with WeChat.
func cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Vary", "Origin")
		if origin := r.Header.Get("Origin"); origin != "" {
			h.Set("Access-Control-Allow-Origin", origin)
		}
		if r.Method != http.MethodOptions {
			next.ServeHTTP(w, r)
			return
		}
		h.Add("Vary", "Access-Control-Request-Method")
		h.Add("Vary", "Access-Control-Request-Headers")
		h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type")
		h.Set("Access-Control-Max-Age", "600")
		// Chrome's Private Network Access asks before a public page calls a loopback sandbox.
		if r.Header.Get("Access-Control-Request-Private-Network") == "true" {
			h.Set("Access-Control-Allow-Private-Network", "true")
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// jsString is a JSON string that also accepts a number: pages pass timeStamp either way.
type jsString string

func (j *jsString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*j = jsString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return errors.New("must be a string or a number")
	}
	*j = jsString(n.String())
	return nil
}

// jsapiPayRequest is getBrandWCPayRequest's parameters. appId may be missing (a mini program's
// wx.requestPayment has none: the app's own appid is implied).
type jsapiPayRequest struct {
	AppID     jsString `json:"appId"`
	TimeStamp jsString `json:"timeStamp"`
	NonceStr  jsString `json:"nonceStr"`
	Package   jsString `json:"package"`
	SignType  jsString `json:"signType"`
	PaySign   jsString `json:"paySign"`
}

// decodeJSAPIRequest reads and checks the parameters' shape; it returns the prepay_id they name.
func decodeJSAPIRequest(body []byte, defaultAppID string) (jsapiPayRequest, string, *apiError) {
	var req jsapiPayRequest
	if e := decodeJSON(body, &req); e != nil {
		return req, "", e
	}
	if req.AppID == "" {
		req.AppID = jsString(defaultAppID)
	}
	for _, f := range []struct {
		name string
		v    jsString
		max  int
	}{
		{"appId", req.AppID, 32}, {"timeStamp", req.TimeStamp, 32}, {"nonceStr", req.NonceStr, 32},
		{"package", req.Package, 128}, {"signType", req.SignType, 16}, {"paySign", req.PaySign, 1024},
	} {
		if f.v == "" {
			return req, "", paramError("body", f.name, "缺少必填参数")
		}
		if len(f.v) > f.max {
			return req, "", paramError("body", f.name, "长度不能超过%d个字符", f.max)
		}
	}
	if req.SignType != "RSA" {
		return req, "", paramError("body", "signType", "API v3的signType必须是RSA")
	}
	prepayID, ok := strings.CutPrefix(string(req.Package), "prepay_id=")
	if !ok || !validPrepayID(prepayID) {
		return req, "", paramError("body", "package", "必须是prepay_id=<预支付交易会话标识>")
	}
	return req, prepayID, nil
}

// verifyJSAPI checks a payment request as WeChat does before showing the payment sheet: the paySign
// is the merchant's RSA-SHA256 signature over appId\ntimeStamp\nnonceStr\npackage\n, and the prepay_id
// is an unexpired, unpaid JSAPI order of that appid.
func (s *Sandbox) verifyJSAPI(ctx context.Context, body []byte) (*order, error) {
	req, prepayID, e := decodeJSAPIRequest(body, s.keys.doc.AppID)
	if e != nil {
		return nil, e
	}
	sig, err := base64.StdEncoding.DecodeString(string(req.PaySign))
	if err != nil {
		return nil, newAPIError(http.StatusBadRequest, "SIGN_ERROR", "支付验证签名失败：paySign不是有效的Base64编码")
	}
	msg := string(req.AppID) + "\n" + string(req.TimeStamp) + "\n" + string(req.NonceStr) + "\n" + string(req.Package) + "\n"
	digest := sha256.Sum256([]byte(msg))
	if rsa.VerifyPKCS1v15(s.keys.merchantPub, crypto.SHA256, digest[:], sig) != nil {
		return nil, newAPIError(http.StatusBadRequest, "SIGN_ERROR", "支付验证签名失败")
	}
	o, err := getOrderByPrepayID(ctx, s.db, s.keys.doc.MchID, prepayID)
	if err != nil {
		return nil, err
	}
	if o.TradeType != tradeJSAPI || o.AppID != string(req.AppID) {
		return nil, invalidRequest("prepay_id不是该appid的JSAPI订单")
	}
	if st := o.tradeState(s.now()); st != stateNotPay {
		return nil, notPayable(st)
	}
	return o, nil
}

// jsapiOrder is what the payment sheet shows.
type jsapiOrder struct {
	AppID       string `json:"appid"`
	MchID       string `json:"mchid"`
	OutTradeNo  string `json:"out_trade_no"`
	Description string `json:"description"`
	Total       int64  `json:"total"`
	Amount      string `json:"amount"` // yuan, for display
	Currency    string `json:"currency"`
	TradeState  string `json:"trade_state"`
}

func readJSAPIBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		writeSandboxError(w, http.StatusBadRequest, "PARAM_ERROR", "request body unreadable or larger than 64 KiB")
		return nil, false
	}
	return body, true
}

func (s *Sandbox) handleJSAPIVerify(w http.ResponseWriter, r *http.Request) {
	body, ok := readJSAPIBody(w, r)
	if !ok {
		return
	}
	o, err := s.verifyJSAPI(r.Context(), body)
	if err != nil {
		s.writePayerError(w, err)
		return
	}
	writeSandboxJSON(w, http.StatusOK, jsapiOrder{
		AppID: o.AppID, MchID: o.MchID, OutTradeNo: o.OutTradeNo, Description: o.Description, Total: o.Total,
		Amount: yuan(o.Total), Currency: o.Currency, TradeState: stateNotPay,
	})
}

// handleJSAPIPay is the payer confirming on the payment sheet: the order is paid by the payer it was
// placed for, and TRANSACTION.SUCCESS goes out.
func (s *Sandbox) handleJSAPIPay(w http.ResponseWriter, r *http.Request) {
	body, ok := readJSAPIBody(w, r)
	if !ok {
		return
	}
	o, err := s.verifyJSAPI(r.Context(), body)
	if err != nil {
		s.writePayerError(w, err)
		return
	}
	paid, err := s.payOrder(r.Context(), func(q querier) (*order, error) {
		return getOrderByPrepayID(r.Context(), q, o.MchID, o.PrepayID)
	}, "", newOpenID) // a JSAPI order always has its payer's openid
	if err != nil {
		s.writePayerError(w, err)
		return
	}
	writeSandboxJSON(w, http.StatusOK, paid.transaction(stateSuccess))
}
