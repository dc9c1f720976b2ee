package wechatpay

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/app"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/h5"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/jsapi"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/native"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

// WeChat Pay error codes the connector gives meaning to.
const (
	codeOrderPaid     = "ORDERPAID"
	codeOrderClosed   = "ORDER_CLOSED"
	codeOrderNotExist = "ORDER_NOT_EXIST"
	codeRefundMissing = "RESOURCE_NOT_EXISTS"
)

// chinaTime renders time_expire the way WeChat Pay documents it (2018-06-08T10:34:56+08:00):
// whole seconds and an explicit offset rather than Go's default fractional "Z" form.
var chinaTime = time.FixedZone("CST", 8*3600)

// CreatePayment places an order for req.Channel and returns what the buyer must do next:
// qr → Native code_url, miniprogram → JSAPI wx.requestPayment parameters (signed with the
// merchant key), h5 → the H5 cashier URL, app → the App SDK's PayReq parameters.
func (c *Connector) CreatePayment(ctx context.Context, req gateway.PaymentRequest) (gateway.PaymentResult, error) {
	if err := checkPaymentRequest(req); err != nil {
		return gateway.PaymentResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()

	var expire *time.Time
	if !req.ExpiresAt.IsZero() {
		t := req.ExpiresAt.In(chinaTime).Truncate(time.Second)
		expire = &t
	}
	appid, mchid := core.String(c.cfg.AppID), core.String(c.cfg.MchID)
	desc, otn, notifyURL := core.String(req.Description), core.String(req.OutTradeNo), core.String(req.NotifyURL)
	total, currency := core.Int64(req.Amount), core.String(req.Currency)

	var action payment.NextAction
	switch req.Channel {
	case payment.ChannelQR:
		resp, _, err := c.native.Prepay(ctx, native.PrepayRequest{
			Appid: appid, Mchid: mchid, Description: desc, OutTradeNo: otn, TimeExpire: expire, NotifyUrl: notifyURL,
			Amount: &native.Amount{Total: total, Currency: currency},
		})
		if err != nil {
			return gateway.PaymentResult{}, callError("native prepay", err)
		}
		if resp.CodeUrl == nil || *resp.CodeUrl == "" {
			return gateway.PaymentResult{}, badAnswer("native prepay", "no code_url")
		}
		action = payment.NextAction{Type: payment.ActionQRCode, QRCode: *resp.CodeUrl}

	case payment.ChannelMiniProgram:
		resp, _, err := c.jsapi.PrepayWithRequestPayment(ctx, jsapi.PrepayRequest{
			Appid: appid, Mchid: mchid, Description: desc, OutTradeNo: otn, TimeExpire: expire, NotifyUrl: notifyURL,
			Amount: &jsapi.Amount{Total: total, Currency: currency},
			Payer:  &jsapi.Payer{Openid: core.String(req.Payer.OpenID)},
		})
		if err != nil {
			return gateway.PaymentResult{}, callError("jsapi prepay", err)
		}
		if resp.PrepayId == nil || *resp.PrepayId == "" {
			return gateway.PaymentResult{}, badAnswer("jsapi prepay", "no prepay_id")
		}
		action = payment.NextAction{Type: payment.ActionWeChatJSAPI, Params: map[string]string{
			"appId": deref(resp.Appid), "timeStamp": deref(resp.TimeStamp), "nonceStr": deref(resp.NonceStr),
			"package": deref(resp.Package), "signType": deref(resp.SignType), "paySign": deref(resp.PaySign),
		}}

	case payment.ChannelH5:
		resp, _, err := c.h5.Prepay(ctx, h5.PrepayRequest{
			Appid: appid, Mchid: mchid, Description: desc, OutTradeNo: otn, TimeExpire: expire, NotifyUrl: notifyURL,
			Amount: &h5.Amount{Total: total, Currency: currency},
			SceneInfo: &h5.SceneInfo{
				PayerClientIp: core.String(clientIP(req.Payer.ClientIP)),
				H5Info:        &h5.H5Info{Type: core.String("Wap")},
			},
		})
		if err != nil {
			return gateway.PaymentResult{}, callError("h5 prepay", err)
		}
		if resp.H5Url == nil || *resp.H5Url == "" {
			return gateway.PaymentResult{}, badAnswer("h5 prepay", "no h5_url")
		}
		action = payment.NextAction{Type: payment.ActionRedirect, URL: withRedirect(*resp.H5Url, req.ReturnURL)}

	case payment.ChannelApp:
		resp, _, err := c.app.PrepayWithRequestPayment(ctx, app.PrepayRequest{
			Appid: appid, Mchid: mchid, Description: desc, OutTradeNo: otn, TimeExpire: expire, NotifyUrl: notifyURL,
			Amount: &app.Amount{Total: total, Currency: currency},
		})
		if err != nil {
			return gateway.PaymentResult{}, callError("app prepay", err)
		}
		if resp.PrepayId == nil || *resp.PrepayId == "" {
			return gateway.PaymentResult{}, badAnswer("app prepay", "no prepay_id")
		}
		// The keys are those of the App SDK's PayReq (appid, partnerid, prepayid, package, noncestr, timestamp, sign).
		action = payment.NextAction{Type: payment.ActionApp, Params: map[string]string{
			"appid": c.cfg.AppID, "partnerid": deref(resp.PartnerId), "prepayid": deref(resp.PrepayId),
			"package": deref(resp.Package), "noncestr": deref(resp.NonceStr), "timestamp": deref(resp.TimeStamp),
			"sign": deref(resp.Sign),
		}}
	}
	return gateway.PaymentResult{NextAction: &action}, nil
}

func checkPaymentRequest(req gateway.PaymentRequest) error {
	if req.OutTradeNo == "" {
		return payment.InvalidParam("out_trade_no", "out_trade_no is required")
	}
	if err := payment.CheckAmount("amount", req.Amount); err != nil {
		return err
	}
	// WeChat Pay counts integer fen, which is what our minor units are for CNY, its only currency.
	if err := payment.CheckCurrency("currency", req.Currency); err != nil {
		return err
	}
	if req.Description == "" {
		return payment.InvalidParam("description", "WeChat Pay requires a description")
	}
	if req.NotifyURL == "" {
		return payment.InvalidParam("notify_url", "WeChat Pay requires a notify_url")
	}
	switch req.Channel {
	case payment.ChannelQR, payment.ChannelH5, payment.ChannelApp:
	case payment.ChannelMiniProgram:
		if req.Payer.OpenID == "" {
			return payment.InvalidParam("payer", "a WeChat Pay miniprogram payment needs payer.openid")
		}
	default:
		return payment.InvalidParam("channel", "WeChat Pay does not offer the %q channel", req.Channel)
	}
	return nil
}

// clientIP is the buyer's IP for H5's scene_info, which WeChat Pay requires; loopback when unknown.
func clientIP(s string) string {
	if ip := net.ParseIP(strings.TrimSpace(s)); ip != nil {
		return ip.String()
	}
	return "127.0.0.1"
}

// withRedirect appends redirect_url to an H5 cashier URL, WeChat Pay's way of bringing the buyer
// back after paying.
func withRedirect(h5URL, returnURL string) string {
	if returnURL == "" {
		return h5URL
	}
	sep := "&"
	if !strings.Contains(h5URL, "?") {
		sep = "?"
	}
	return h5URL + sep + "redirect_url=" + url.QueryEscape(returnURL)
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// QueryPayment asks WeChat Pay for the order's state. An order WeChat Pay does not know is
// reported with State WalletNotFound, not as an error.
func (c *Connector) QueryPayment(ctx context.Context, outTradeNo string) (gateway.WalletPayment, error) {
	if outTradeNo == "" {
		return gateway.WalletPayment{}, payment.InvalidParam("out_trade_no", "out_trade_no is required")
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	tx, _, err := c.native.QueryOrderByOutTradeNo(ctx, native.QueryOrderByOutTradeNoRequest{
		OutTradeNo: core.String(outTradeNo), Mchid: core.String(c.cfg.MchID),
	})
	if err != nil {
		if ae, ok := asAPIError("query order", err); ok && ae.Code == codeOrderNotExist {
			return gateway.WalletPayment{OutTradeNo: outTradeNo, State: gateway.WalletNotFound, Account: c.cfg.MchID}, nil
		}
		return gateway.WalletPayment{}, callError("query order", err)
	}
	wp, err := c.walletPayment(tx)
	if err != nil {
		return gateway.WalletPayment{}, badAnswer("query order", "%v", err)
	}
	if wp.OutTradeNo != outTradeNo {
		return gateway.WalletPayment{}, badAnswer("query order", "asked for %s, got %s", outTradeNo, wp.OutTradeNo)
	}
	return wp, nil
}

// tradeStates maps WeChat Pay's trade_state to the gateway's view.
var tradeStates = map[string]gateway.WalletState{
	"SUCCESS":    gateway.WalletPaid,
	"REFUND":     gateway.WalletPaid, // paid, then (partly) refunded
	"NOTPAY":     gateway.WalletPending,
	"USERPAYING": gateway.WalletPending,
	"CLOSED":     gateway.WalletClosed,
	"REVOKED":    gateway.WalletClosed,
	"PAYERROR":   gateway.WalletFailed,
}

// walletPayment checks a Transaction (from a query or a notification) and maps it. It refuses
// one that does not belong to this merchant account and app, or whose money is not CNY fen.
func (c *Connector) walletPayment(tx *payments.Transaction) (gateway.WalletPayment, error) {
	if tx == nil {
		return gateway.WalletPayment{}, fmt.Errorf("empty transaction")
	}
	wp := gateway.WalletPayment{
		OutTradeNo: deref(tx.OutTradeNo), TransactionID: deref(tx.TransactionId), Account: deref(tx.Mchid),
	}
	if wp.OutTradeNo == "" {
		return wp, fmt.Errorf("no out_trade_no")
	}
	if wp.Account != c.cfg.MchID {
		return wp, &accountError{field: "mchid", got: wp.Account}
	}
	if appid := deref(tx.Appid); appid != c.cfg.AppID {
		return wp, &accountError{field: "appid", got: appid}
	}
	state, ok := tradeStates[deref(tx.TradeState)]
	if !ok {
		return wp, fmt.Errorf("unknown trade_state %q", deref(tx.TradeState))
	}
	wp.State = state
	if tx.Amount != nil && tx.Amount.Total != nil {
		wp.Amount = *tx.Amount.Total
		wp.Currency = deref(tx.Amount.Currency)
	}
	if wp.Currency == "" {
		wp.Currency = "CNY" // WeChat Pay's default
	}
	if state == gateway.WalletPaid {
		if wp.Amount <= 0 {
			return wp, fmt.Errorf("paid without a positive amount.total")
		}
		if wp.Currency != "CNY" {
			return wp, fmt.Errorf("paid in %q, not CNY", wp.Currency)
		}
		if wp.TransactionID == "" {
			return wp, fmt.Errorf("paid without a transaction_id")
		}
		if t, err := time.Parse(time.RFC3339, deref(tx.SuccessTime)); err == nil {
			wp.PaidAt = t
		}
	}
	if tx.Payer != nil && tx.Payer.Openid != nil {
		wp.Payer.OpenID = *tx.Payer.Openid
	}
	return wp, nil
}

// ClosePayment closes an unpaid order. WeChat Pay's ORDERPAID becomes an error of Code
// "already_paid"; closing an order that is already closed succeeds.
func (c *Connector) ClosePayment(ctx context.Context, outTradeNo string) error {
	if outTradeNo == "" {
		return payment.InvalidParam("out_trade_no", "out_trade_no is required")
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	_, err := c.native.CloseOrder(ctx, native.CloseOrderRequest{OutTradeNo: core.String(outTradeNo), Mchid: core.String(c.cfg.MchID)})
	if err == nil {
		return nil
	}
	if ae, ok := asAPIError("close order", err); ok {
		switch ae.Code {
		case codeOrderPaid:
			return &payment.Error{Kind: payment.ProviderError, Code: gateway.CodeAlreadyPaid, ProviderCode: ae.Code,
				Message: "WeChat Pay says the order was paid", Err: ae}
		case codeOrderClosed:
			return nil
		case codeOrderNotExist:
			return &payment.Error{Kind: payment.ProviderError, Code: gateway.CodeNotAtWallet, ProviderCode: ae.Code,
				Message: "WeChat Pay does not know the order", Err: ae}
		}
	}
	return callError("close order", err)
}
