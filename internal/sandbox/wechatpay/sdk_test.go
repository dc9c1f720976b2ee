package wechatpay

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/app"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/h5"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/jsapi"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/native"
	"github.com/wechatpay-apiv3/wechatpay-go/services/refunddomestic"
)

func nativePrepay(t testing.TB, e *testEnv, c *core.Client, outTradeNo, notifyURL string, total int64) string {
	t.Helper()
	svc := native.NativeApiService{Client: c}
	resp, _, err := svc.Prepay(context.Background(), native.PrepayRequest{
		Appid: core.String(e.creds.AppID), Mchid: core.String(e.creds.MchID), Description: core.String("测试商品"),
		OutTradeNo: core.String(outTradeNo), NotifyUrl: core.String(notifyURL),
		Amount: &native.Amount{Total: core.Int64(total), Currency: core.String("CNY")},
	})
	if err != nil {
		t.Fatalf("native prepay: %v", err)
	}
	return *resp.CodeUrl
}

func apiErr(t *testing.T, err error) *core.APIError {
	t.Helper()
	var ae *core.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want an API error", err)
	}
	return ae
}

func TestCredentialsPersistAcrossRestarts(t *testing.T) {
	e := newEnv(t, "")
	first := e.creds
	if !strings.HasPrefix(first.PublicKeyID, "PUB_KEY_ID_") || len(first.PublicKeyID) != len("PUB_KEY_ID_")+34 {
		t.Errorf("public_key_id = %q, want PUB_KEY_ID_ and 34 digits", first.PublicKeyID)
	}
	if len(first.APIv3Key) != 32 || len(first.MchID) != 10 || !strings.HasPrefix(first.AppID, "wx") || len(first.MerchantSerialNo) != 40 {
		t.Errorf("credentials not shaped like WeChat's: %+v", first)
	}
	if !strings.Contains(first.MerchantPrivateKey, "BEGIN PRIVATE KEY") || !strings.Contains(first.PublicKey, "BEGIN PUBLIC KEY") {
		t.Error("keys are not PKCS#8 / PKIX PEM")
	}
	raw, err := json.Marshal(first)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	_ = json.Unmarshal(raw, &m)
	for _, k := range []string{"mchid", "appid", "app_secret", "merchant_serial_no", "merchant_private_key", "public_key_id", "public_key", "apiv3_key"} {
		if m[k] == "" {
			t.Errorf("credentials JSON lacks %q", k)
		}
	}
	cert := e.platformCert()
	e.restart()
	if e.creds != first {
		t.Fatal("credentials changed across a restart")
	}
	if !e.platformCert().Equal(cert) {
		t.Fatal("platform certificate changed across a restart")
	}
}

func TestPrepayEveryChannelPublicKeyMode(t *testing.T) {
	e := newEnv(t, "")
	c := e.pubKeyClient()
	ctx := context.Background()
	notifyURL := "http://127.0.0.1:1/notify"

	// JSAPI, with the paySign the mini program needs, checked with the merchant's public key.
	js := jsapi.JsapiApiService{Client: c}
	pr, result, err := js.PrepayWithRequestPayment(ctx, jsapi.PrepayRequest{
		Appid: core.String(e.creds.AppID), Mchid: core.String(e.creds.MchID), Description: core.String("小程序商品"),
		OutTradeNo: core.String("jsapi_0001"), NotifyUrl: core.String(notifyURL),
		Amount: &jsapi.Amount{Total: core.Int64(100)}, Payer: &jsapi.Payer{Openid: core.String("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")},
	})
	if err != nil {
		t.Fatalf("jsapi prepay: %v", err)
	}
	if got := result.Response.Header.Get("Wechatpay-Serial"); got != e.creds.PublicKeyID {
		t.Errorf("response signed by %q, want the public key %q", got, e.creds.PublicKeyID)
	}
	if !strings.HasPrefix(*pr.PrepayId, "wx") || *pr.Package != "prepay_id="+*pr.PrepayId || *pr.SignType != "RSA" {
		t.Errorf("request payment = %+v", pr)
	}
	msg := *pr.Appid + "\n" + *pr.TimeStamp + "\n" + *pr.NonceStr + "\n" + *pr.Package + "\n"
	sig, _ := base64.StdEncoding.DecodeString(*pr.PaySign)
	d := sha256.Sum256([]byte(msg))
	if err := rsa.VerifyPKCS1v15(&e.merchantKey.PublicKey, crypto.SHA256, d[:], sig); err != nil {
		t.Errorf("paySign does not verify with the merchant public key: %v", err)
	}

	codeURL := nativePrepay(t, e, c, "native_0001", notifyURL, 1)
	if !strings.HasPrefix(codeURL, "weixin://wxpay/bizpayurl?pr=") {
		t.Errorf("code_url = %q", codeURL)
	}

	h5svc := h5.H5ApiService{Client: c}
	h5resp, _, err := h5svc.Prepay(ctx, h5.PrepayRequest{
		Appid: core.String(e.creds.AppID), Mchid: core.String(e.creds.MchID), Description: core.String("H5商品"),
		OutTradeNo: core.String("h5_000001"), NotifyUrl: core.String(notifyURL), Amount: &h5.Amount{Total: core.Int64(5)},
		SceneInfo: &h5.SceneInfo{PayerClientIp: core.String("127.0.0.1"), H5Info: &h5.H5Info{Type: core.String("Wap")}},
	})
	if err != nil {
		t.Fatalf("h5 prepay: %v", err)
	}
	if !strings.HasPrefix(*h5resp.H5Url, e.srv.URL+"/sandbox/wechatpay/h5/") {
		t.Errorf("h5_url = %q, want it on the sandbox", *h5resp.H5Url)
	}

	appsvc := app.AppApiService{Client: c}
	appresp, _, err := appsvc.Prepay(ctx, app.PrepayRequest{
		Appid: core.String(e.creds.AppID), Mchid: core.String(e.creds.MchID), Description: core.String("App商品"),
		OutTradeNo: core.String("app_000001"), NotifyUrl: core.String(notifyURL), Amount: &app.Amount{Total: core.Int64(7)},
	})
	if err != nil {
		t.Fatalf("app prepay: %v", err)
	}
	if !strings.HasPrefix(*appresp.PrepayId, "wx") {
		t.Errorf("app prepay_id = %q", *appresp.PrepayId)
	}

	// The channel is recorded: after payment the query reports WeChat's trade types.
	for otn, want := range map[string]string{"jsapi_0001": "JSAPI", "native_0001": "NATIVE", "h5_000001": "MWEB", "app_000001": "APP"} {
		if a := e.pay(otn, ""); a.status != http.StatusOK {
			t.Fatalf("pay %s: %d %s", otn, a.status, a.body)
		}
		tx, _, err := js.QueryOrderByOutTradeNo(ctx, jsapi.QueryOrderByOutTradeNoRequest{OutTradeNo: core.String(otn), Mchid: core.String(e.creds.MchID)})
		if err != nil {
			t.Fatalf("query %s: %v", otn, err)
		}
		if *tx.TradeType != want || *tx.TradeState != "SUCCESS" {
			t.Errorf("%s: trade_type %s state %s, want %s SUCCESS", otn, *tx.TradeType, *tx.TradeState, want)
		}
	}
	// The JSAPI payer is the openid the order was placed for.
	tx, _, err := js.QueryOrderByOutTradeNo(ctx, jsapi.QueryOrderByOutTradeNoRequest{OutTradeNo: core.String("jsapi_0001"), Mchid: core.String(e.creds.MchID)})
	if err != nil {
		t.Fatal(err)
	}
	if *tx.Payer.Openid != "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o" {
		t.Errorf("payer = %s", *tx.Payer.Openid)
	}
}

func TestCertificateMode(t *testing.T) {
	e := newEnv(t, "")
	c, mgr := e.certClient()
	ctx := context.Background()
	serial := mgr.GetNewestCertificateSerial(ctx, e.creds.MchID)
	if serial != e.sb.keys.newestCert().serial {
		t.Fatalf("downloaded newest serial %q, want %q", serial, e.sb.keys.newestCert().serial)
	}
	if pem, ok := mgr.ExportCertificate(ctx, e.creds.MchID, serial); !ok || !strings.Contains(pem, "BEGIN CERTIFICATE") {
		t.Fatal("certificate not decrypted")
	}
	nativePrepay(t, e, c, "cert_mode_1", "http://127.0.0.1:1/n", 10)
	svc := native.NativeApiService{Client: c}
	tx, result, err := svc.QueryOrderByOutTradeNo(ctx, native.QueryOrderByOutTradeNoRequest{OutTradeNo: core.String("cert_mode_1"), Mchid: core.String(e.creds.MchID)})
	if err != nil {
		t.Fatalf("query in certificate mode: %v", err)
	}
	if *tx.TradeState != "NOTPAY" {
		t.Errorf("trade_state = %s", *tx.TradeState)
	}
	if got := result.Response.Header.Get("Wechatpay-Serial"); got != serial {
		t.Errorf("response signed by %q, want the platform certificate %q the request named", got, serial)
	}
	// Close answers a signed 204, which the SDK validates.
	result, err = svc.CloseOrder(ctx, native.CloseOrderRequest{OutTradeNo: core.String("cert_mode_1"), Mchid: core.String(e.creds.MchID)})
	if err != nil {
		t.Fatalf("close in certificate mode: %v", err)
	}
	if result.Response.StatusCode != http.StatusNoContent {
		t.Errorf("close status = %d", result.Response.StatusCode)
	}
}

func TestCertificatesAlwaysSignedWithNewestCertificate(t *testing.T) {
	e := newEnv(t, "")
	for _, serial := range []string{"", e.creds.PublicKeyID, "SOMETHING-ELSE"} {
		h := map[string]string{}
		if serial != "" {
			h["Wechatpay-Serial"] = serial
		}
		a := e.raw(rawCall{method: "GET", uri: "/v3/certificates", header: h})
		if a.status != http.StatusOK {
			t.Fatalf("certificates: %d %s", a.status, a.body)
		}
		if got := verifyAnswer(t, a, e.platformCert().PublicKey.(*rsa.PublicKey)); got != e.sb.keys.newestCert().serial {
			t.Errorf("Wechatpay-Serial %q = %q, want the newest certificate", serial, got)
		}
	}
}

func TestResponsesFollowRequestSerial(t *testing.T) {
	e := newEnv(t, "")
	nativePrepay(t, e, e.pubKeyClient(), "serial_01", "http://127.0.0.1:1/n", 1)
	uri := "/v3/pay/transactions/out-trade-no/serial_01?mchid=" + e.creds.MchID
	certSerial := e.sb.keys.newestCert().serial
	cases := []struct {
		header string
		want   string
		pub    *rsa.PublicKey
	}{
		{"", e.creds.PublicKeyID, e.wxPub},
		{e.creds.PublicKeyID, e.creds.PublicKeyID, e.wxPub},
		{"0123456789ABCDEF", e.creds.PublicKeyID, e.wxPub},
		{certSerial, certSerial, e.platformCert().PublicKey.(*rsa.PublicKey)},
	}
	for _, c := range cases {
		h := map[string]string{}
		if c.header != "" {
			h["Wechatpay-Serial"] = c.header
		}
		a := e.raw(rawCall{method: "GET", uri: uri, header: h})
		if a.status != http.StatusOK {
			t.Fatalf("query: %d %s", a.status, a.body)
		}
		if got := verifyAnswer(t, a, c.pub); got != c.want {
			t.Errorf("Wechatpay-Serial %q: answer signed by %q, want %q", c.header, got, c.want)
		}
	}
}

func TestOrderLifecycleWithSDK(t *testing.T) {
	e := newEnv(t, "")
	s := e.newSink()
	c := e.pubKeyClient()
	ctx := context.Background()
	svc := native.NativeApiService{Client: c}
	mchid := core.String(e.creds.MchID)

	nativePrepay(t, e, c, "life_0001", s.srv.URL+"/wx", 2990)
	tx, _, err := svc.QueryOrderByOutTradeNo(ctx, native.QueryOrderByOutTradeNoRequest{OutTradeNo: core.String("life_0001"), Mchid: mchid})
	if err != nil {
		t.Fatal(err)
	}
	if *tx.TradeState != "NOTPAY" || tx.TransactionId != nil || *tx.Amount.Total != 2990 {
		t.Errorf("unpaid order = %+v", tx)
	}

	a := e.pay("life_0001", `{"mchid":"`+e.creds.MchID+`","openid":"oPayer0000000000000000000001"}`)
	if a.status != http.StatusOK {
		t.Fatalf("pay: %d %s", a.status, a.body)
	}
	var paid payments.Transaction
	if err := json.Unmarshal(a.body, &paid); err != nil {
		t.Fatal(err)
	}
	if *paid.TradeState != "SUCCESS" || !strings.HasPrefix(*paid.TransactionId, "42") || len(*paid.TransactionId) != 28 {
		t.Errorf("paid = %+v", paid)
	}

	// TRANSACTION.SUCCESS reaches notify_url, verified and decrypted by the SDK.
	n := s.wait("TRANSACTION.SUCCESS", nil)
	if n.req.Resource.AssociatedData != "transaction" || n.req.Resource.OriginalType != "transaction" || len(n.req.Resource.Nonce) != 12 {
		t.Errorf("resource = %+v", n.req.Resource)
	}
	if n.header.Get("Wechatpay-Serial") != e.creds.PublicKeyID {
		t.Errorf("notification signed by %q, want the public key by default", n.header.Get("Wechatpay-Serial"))
	}
	if n.plaintext["transaction_id"] != *paid.TransactionId || n.plaintext["trade_state"] != "SUCCESS" ||
		n.plaintext["out_trade_no"] != "life_0001" || n.plaintext["payer"].(map[string]any)["openid"] != "oPayer0000000000000000000001" {
		t.Errorf("plaintext = %v", n.plaintext)
	}
	if amt := n.plaintext["amount"].(map[string]any); amt["total"] != float64(2990) || amt["payer_total"] != float64(2990) {
		t.Errorf("plaintext amount = %v", amt)
	}
	if _, err := time.Parse(time.RFC3339, n.plaintext["success_time"].(string)); err != nil {
		t.Errorf("success_time: %v", err)
	}

	byID, _, err := svc.QueryOrderById(ctx, native.QueryOrderByIdRequest{TransactionId: paid.TransactionId, Mchid: mchid})
	if err != nil {
		t.Fatalf("query by id: %v", err)
	}
	if *byID.OutTradeNo != "life_0001" || *byID.TradeState != "SUCCESS" || *byID.SuccessTime == "" || *byID.BankType == "" {
		t.Errorf("by id = %+v", byID)
	}

	// Paid orders cannot be paid again, closed, or prepaid again.
	if a := e.pay("life_0001", ""); a.status != http.StatusConflict {
		t.Errorf("second pay: %d, want 409", a.status)
	}
	_, err = svc.CloseOrder(ctx, native.CloseOrderRequest{OutTradeNo: core.String("life_0001"), Mchid: mchid})
	if ae := apiErr(t, err); ae.Code != "ORDERPAID" || ae.StatusCode != http.StatusBadRequest {
		t.Errorf("close paid: %v", ae)
	}
	_, _, err = svc.Prepay(ctx, native.PrepayRequest{
		Appid: core.String(e.creds.AppID), Mchid: mchid, Description: core.String("测试商品"), OutTradeNo: core.String("life_0001"),
		NotifyUrl: core.String(s.srv.URL + "/wx"), Amount: &native.Amount{Total: core.Int64(2990), Currency: core.String("CNY")},
	})
	if ae := apiErr(t, err); ae.Code != "ORDERPAID" {
		t.Errorf("prepay paid order: %v", ae)
	}

	// Unknown orders.
	_, _, err = svc.QueryOrderByOutTradeNo(ctx, native.QueryOrderByOutTradeNoRequest{OutTradeNo: core.String("nope_0001"), Mchid: mchid})
	if ae := apiErr(t, err); ae.StatusCode != http.StatusNotFound || ae.Code != "ORDER_NOT_EXIST" {
		t.Errorf("unknown order: %v", ae)
	}
	_, _, err = svc.QueryOrderById(ctx, native.QueryOrderByIdRequest{TransactionId: core.String("4200000000000000000000000000"), Mchid: mchid})
	if ae := apiErr(t, err); ae.StatusCode != http.StatusNotFound || ae.Code != "ORDER_NOT_EXIST" {
		t.Errorf("unknown transaction: %v", ae)
	}
	_, err = svc.CloseOrder(ctx, native.CloseOrderRequest{OutTradeNo: core.String("nope_0001"), Mchid: mchid})
	if ae := apiErr(t, err); ae.StatusCode != http.StatusNotFound {
		t.Errorf("close unknown: %v", ae)
	}
	if a := e.pay("nope_0001", ""); a.status != http.StatusNotFound {
		t.Errorf("pay unknown: %d, want 404", a.status)
	}
	if a := e.pay("life_0001", `{"mchid":"1999999999"}`); a.status != http.StatusNotFound {
		t.Errorf("pay with another mchid: %d, want 404", a.status)
	}
}

func TestOutTradeNoReuse(t *testing.T) {
	e := newEnv(t, "")
	c := e.pubKeyClient()
	first := nativePrepay(t, e, c, "reuse_0001", "http://127.0.0.1:1/n", 100)
	if again := nativePrepay(t, e, c, "reuse_0001", "http://127.0.0.1:1/n", 100); again != first {
		t.Errorf("same request again: code_url %q, want the first answer %q", again, first)
	}
	svc := native.NativeApiService{Client: c}
	_, _, err := svc.Prepay(context.Background(), native.PrepayRequest{
		Appid: core.String(e.creds.AppID), Mchid: core.String(e.creds.MchID), Description: core.String("测试商品"),
		OutTradeNo: core.String("reuse_0001"), NotifyUrl: core.String("http://127.0.0.1:1/n"), Amount: &native.Amount{Total: core.Int64(101)},
	})
	if ae := apiErr(t, err); ae.Code != "OUT_TRADE_NO_USED" || ae.StatusCode != http.StatusBadRequest {
		t.Errorf("different content: %v", ae)
	}
	// The same number through another channel is different content too.
	js := jsapi.JsapiApiService{Client: c}
	_, _, err = js.Prepay(context.Background(), jsapi.PrepayRequest{
		Appid: core.String(e.creds.AppID), Mchid: core.String(e.creds.MchID), Description: core.String("测试商品"),
		OutTradeNo: core.String("reuse_0001"), NotifyUrl: core.String("http://127.0.0.1:1/n"), Amount: &jsapi.Amount{Total: core.Int64(100)},
		Payer: &jsapi.Payer{Openid: core.String("oX")},
	})
	if ae := apiErr(t, err); ae.Code != "OUT_TRADE_NO_USED" {
		t.Errorf("other channel: %v", ae)
	}
}

func TestCloseAndExpiry(t *testing.T) {
	e := newEnv(t, "")
	c := e.pubKeyClient()
	ctx := context.Background()
	svc := native.NativeApiService{Client: c}
	mchid := core.String(e.creds.MchID)

	nativePrepay(t, e, c, "close_0001", "http://127.0.0.1:1/n", 100)
	for range 2 { // closing twice is fine
		if _, err := svc.CloseOrder(ctx, native.CloseOrderRequest{OutTradeNo: core.String("close_0001"), Mchid: mchid}); err != nil {
			t.Fatalf("close: %v", err)
		}
	}
	tx, _, err := svc.QueryOrderByOutTradeNo(ctx, native.QueryOrderByOutTradeNoRequest{OutTradeNo: core.String("close_0001"), Mchid: mchid})
	if err != nil {
		t.Fatal(err)
	}
	if *tx.TradeState != "CLOSED" {
		t.Errorf("after close: %s", *tx.TradeState)
	}
	if a := e.pay("close_0001", ""); a.status != http.StatusConflict {
		t.Errorf("pay closed: %d, want 409", a.status)
	}
	_, _, err = svc.Prepay(ctx, native.PrepayRequest{
		Appid: core.String(e.creds.AppID), Mchid: mchid, Description: core.String("测试商品"), OutTradeNo: core.String("close_0001"),
		NotifyUrl: core.String("http://127.0.0.1:1/n"), Amount: &native.Amount{Total: core.Int64(100), Currency: core.String("CNY")},
	})
	if ae := apiErr(t, err); ae.Code != "ORDER_CLOSED" {
		t.Errorf("prepay closed: %v", ae)
	}

	// time_expire: payable before, CLOSED after.
	expire := e.now().Add(time.Minute)
	for _, otn := range []string{"expire_001", "expire_002"} {
		_, _, err = svc.Prepay(ctx, native.PrepayRequest{
			Appid: core.String(e.creds.AppID), Mchid: mchid, Description: core.String("限时商品"), OutTradeNo: core.String(otn),
			NotifyUrl: core.String("http://127.0.0.1:1/n"), Amount: &native.Amount{Total: core.Int64(1)}, TimeExpire: &expire,
		})
		if err != nil {
			t.Fatalf("prepay with time_expire: %v", err)
		}
	}
	if a := e.pay("expire_001", ""); a.status != http.StatusOK {
		t.Fatalf("pay before expiry: %d %s", a.status, a.body)
	}
	e.offset.Store(int64(2 * time.Minute))
	if a := e.pay("expire_002", ""); a.status != http.StatusConflict {
		t.Errorf("pay after expiry: %d, want 409", a.status)
	}
	tx, _, err = svc.QueryOrderByOutTradeNo(ctx, native.QueryOrderByOutTradeNoRequest{OutTradeNo: core.String("expire_002"), Mchid: mchid})
	if err != nil {
		t.Fatal(err)
	}
	if *tx.TradeState != "CLOSED" {
		t.Errorf("expired order: %s, want CLOSED", *tx.TradeState)
	}
	tx, _, err = svc.QueryOrderByOutTradeNo(ctx, native.QueryOrderByOutTradeNoRequest{OutTradeNo: core.String("expire_001"), Mchid: mchid})
	if err != nil {
		t.Fatal(err)
	}
	if *tx.TradeState != "SUCCESS" {
		t.Errorf("paid before expiry: %s, want SUCCESS", *tx.TradeState)
	}
}

func TestDecline(t *testing.T) {
	e := newEnv(t, "")
	nativePrepay(t, e, e.pubKeyClient(), "decline_01", "http://127.0.0.1:1/n", 100)
	a := e.sandboxPost("POST", "/sandbox/wechatpay/transactions/decline_01/decline", "")
	if a.status != http.StatusOK || !strings.Contains(string(a.body), `"trade_state":"NOTPAY"`) {
		t.Fatalf("decline: %d %s", a.status, a.body)
	}
	if a := e.pay("decline_01", ""); a.status != http.StatusOK {
		t.Fatalf("pay after decline: %d %s", a.status, a.body)
	}
	if a := e.sandboxPost("POST", "/sandbox/wechatpay/transactions/decline_01/decline", ""); a.status != http.StatusConflict {
		t.Errorf("decline paid: %d, want 409", a.status)
	}
	if a := e.sandboxPost("POST", "/sandbox/wechatpay/transactions/nope_00001/decline", ""); a.status != http.StatusNotFound {
		t.Errorf("decline unknown: %d, want 404", a.status)
	}
}

func TestJSAPIPayerMustMatch(t *testing.T) {
	e := newEnv(t, "")
	js := jsapi.JsapiApiService{Client: e.pubKeyClient()}
	_, _, err := js.Prepay(context.Background(), jsapi.PrepayRequest{
		Appid: core.String(e.creds.AppID), Mchid: core.String(e.creds.MchID), Description: core.String("商品"),
		OutTradeNo: core.String("payer_0001"), NotifyUrl: core.String("http://127.0.0.1:1/n"), Amount: &jsapi.Amount{Total: core.Int64(1)},
		Payer: &jsapi.Payer{Openid: core.String("oOwner")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if a := e.pay("payer_0001", `{"openid":"oSomeoneElse"}`); a.status != http.StatusConflict {
		t.Errorf("another payer: %d, want 409", a.status)
	}
	if a := e.pay("payer_0001", `{"openid":"oOwner"}`); a.status != http.StatusOK {
		t.Errorf("the payer: %d %s", a.status, a.body)
	}
}

func TestRefunds(t *testing.T) {
	e := newEnv(t, "")
	orderSink, refundSink := e.newSink(), e.newSink()
	c := e.pubKeyClient()
	ctx := context.Background()
	rs := refunddomestic.RefundsApiService{Client: c}

	nativePrepay(t, e, c, "refund_001", orderSink.srv.URL+"/pay", 1000)
	// Not paid yet: nothing to refund.
	_, _, err := rs.Create(ctx, refunddomestic.CreateRequest{
		OutTradeNo: core.String("refund_001"), OutRefundNo: core.String("R0"),
		Amount: &refunddomestic.AmountReq{Refund: core.Int64(1), Total: core.Int64(1000), Currency: core.String("CNY")},
	})
	if ae := apiErr(t, err); ae.Code != "INVALID_REQUEST" {
		t.Errorf("refund unpaid: %v", ae)
	}
	a := e.pay("refund_001", "")
	var paid payments.Transaction
	_ = json.Unmarshal(a.body, &paid)

	// Partial refund by out_trade_no, notified at the order's notify_url.
	r1, _, err := rs.Create(ctx, refunddomestic.CreateRequest{
		OutTradeNo: core.String("refund_001"), OutRefundNo: core.String("R1"), Reason: core.String("部分退款"),
		Amount: &refunddomestic.AmountReq{Refund: core.Int64(300), Total: core.Int64(1000), Currency: core.String("CNY")},
	})
	if err != nil {
		t.Fatalf("refund 1: %v", err)
	}
	if *r1.Status != refunddomestic.STATUS_PROCESSING || *r1.TransactionId != *paid.TransactionId || *r1.Amount.Refund != 300 ||
		r1.SuccessTime != nil || *r1.Channel != refunddomestic.CHANNEL_ORIGINAL {
		t.Errorf("refund 1 = %+v", r1)
	}
	// Second partial refund by transaction_id, with its own notify_url.
	r2, _, err := rs.Create(ctx, refunddomestic.CreateRequest{
		TransactionId: paid.TransactionId, OutRefundNo: core.String("R2"), NotifyUrl: core.String(refundSink.srv.URL + "/refund"),
		Amount: &refunddomestic.AmountReq{Refund: core.Int64(700), Total: core.Int64(1000), Currency: core.String("CNY")},
	})
	if err != nil {
		t.Fatalf("refund 2: %v", err)
	}
	// The same out_refund_no again is the same refund.
	again, _, err := rs.Create(ctx, refunddomestic.CreateRequest{
		TransactionId: paid.TransactionId, OutRefundNo: core.String("R2"), NotifyUrl: core.String(refundSink.srv.URL + "/refund"),
		Amount: &refunddomestic.AmountReq{Refund: core.Int64(700), Total: core.Int64(1000), Currency: core.String("CNY")},
	})
	if err != nil || *again.RefundId != *r2.RefundId {
		t.Fatalf("idempotent refund: %v %+v", err, again)
	}
	// …but not with other content.
	_, _, err = rs.Create(ctx, refunddomestic.CreateRequest{
		TransactionId: paid.TransactionId, OutRefundNo: core.String("R2"),
		Amount: &refunddomestic.AmountReq{Refund: core.Int64(1), Total: core.Int64(1000), Currency: core.String("CNY")},
	})
	if ae := apiErr(t, err); ae.Code != "INVALID_REQUEST" {
		t.Errorf("reused out_refund_no: %v", ae)
	}
	// Fully refunded: one more fen is too much.
	_, _, err = rs.Create(ctx, refunddomestic.CreateRequest{
		OutTradeNo: core.String("refund_001"), OutRefundNo: core.String("R3"),
		Amount: &refunddomestic.AmountReq{Refund: core.Int64(1), Total: core.Int64(1000), Currency: core.String("CNY")},
	})
	if ae := apiErr(t, err); ae.Code != "INVALID_REQUEST" || !strings.Contains(ae.Message, "可退金额") {
		t.Errorf("over-refund: %v", ae)
	}
	// total must be the order's.
	_, _, err = rs.Create(ctx, refunddomestic.CreateRequest{
		OutTradeNo: core.String("refund_001"), OutRefundNo: core.String("R4"),
		Amount: &refunddomestic.AmountReq{Refund: core.Int64(1), Total: core.Int64(999), Currency: core.String("CNY")},
	})
	if ae := apiErr(t, err); ae.Code != "INVALID_REQUEST" {
		t.Errorf("wrong total: %v", ae)
	}
	_, _, err = rs.Create(ctx, refunddomestic.CreateRequest{
		OutTradeNo: core.String("nope_00001"), OutRefundNo: core.String("R5"),
		Amount: &refunddomestic.AmountReq{Refund: core.Int64(1), Total: core.Int64(1), Currency: core.String("CNY")},
	})
	if ae := apiErr(t, err); ae.StatusCode != http.StatusNotFound || ae.Code != "RESOURCE_NOT_EXISTS" {
		t.Errorf("refund unknown order: %v", ae)
	}

	// Both refunds succeed shortly and are notified where asked.
	n1 := orderSink.wait("REFUND.SUCCESS", nil)
	n2 := refundSink.wait("REFUND.SUCCESS", nil)
	if n1.plaintext["out_refund_no"] != "R1" || n2.plaintext["out_refund_no"] != "R2" {
		t.Errorf("refund notifications went to the wrong place: %v / %v", n1.plaintext, n2.plaintext)
	}
	if n2.req.Resource.AssociatedData != "refund" || n2.plaintext["refund_status"] != "SUCCESS" || n2.plaintext["refund_id"] != *r2.RefundId {
		t.Errorf("refund notification = %+v %v", n2.req.Resource, n2.plaintext)
	}
	if amt := n2.plaintext["amount"].(map[string]any); amt["refund"] != float64(700) || amt["total"] != float64(1000) {
		t.Errorf("refund notification amount = %v", amt)
	}
	got, _, err := rs.QueryByOutRefundNo(ctx, refunddomestic.QueryByOutRefundNoRequest{OutRefundNo: core.String("R1")})
	if err != nil {
		t.Fatal(err)
	}
	if *got.Status != refunddomestic.STATUS_SUCCESS || got.SuccessTime == nil || *got.Amount.Refund != 300 {
		t.Errorf("refund 1 later = %+v", got)
	}
	_, _, err = rs.QueryByOutRefundNo(ctx, refunddomestic.QueryByOutRefundNoRequest{OutRefundNo: core.String("R404")})
	if ae := apiErr(t, err); ae.StatusCode != http.StatusNotFound || ae.Code != "RESOURCE_NOT_EXISTS" {
		t.Errorf("unknown refund: %v", ae)
	}
	svc := native.NativeApiService{Client: c}
	tx, _, err := svc.QueryOrderByOutTradeNo(ctx, native.QueryOrderByOutTradeNoRequest{OutTradeNo: core.String("refund_001"), Mchid: core.String(e.creds.MchID)})
	if err != nil {
		t.Fatal(err)
	}
	if *tx.TradeState != "REFUND" {
		t.Errorf("refunded order state = %s, want REFUND", *tx.TradeState)
	}
}
