package identity_test

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/hutong-pay/hutong/internal/sandbox/faults"
)

// with returns e reporting to t, for subtests sharing one environment.
func (e *env) with(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

// The identity bridge against the real wallet sandboxes, through the merchant API.
func TestAgainstSandboxes(t *testing.T) {
	base := newEnv(t)
	for _, tc := range []struct {
		name string
		fn   func(e *env)
	}{
		{"WeChatLogin", testWeChatLogin},
		{"AlipayLogin", testAlipayLogin},
		{"WalletBusy", testWalletBusy},
		{"LinkSecondWallet", testLinkSecondWallet},
		{"LinkRefusals", testLinkRefusals},
		{"LoginRequests", testLoginRequests},
		{"Isolation", testIsolation},
		{"PaymentsForLinkedCustomer", testPaymentsForLinkedCustomer},
		{"PaymentsRefusedWithoutIdentity", testPaymentsRefusedWithoutIdentity},
		{"CheckoutKnowsCustomer", testCheckoutKnowsCustomer},
		{"WebAuthorization", testWebAuthorization},
		{"WebAuthorizationRefusals", testWebAuthorizationRefusals},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(base.with(t)) })
	}
}

func testWeChatLogin(e *env) {
	code, openid, unionid := e.wechatCode("")
	c := e.customer(e.login(e.key, "wechatpay", code, ""))
	if c.Livemode || len(c.Identities) != 1 {
		e.t.Fatalf("new customer: %+v", c)
	}
	i := c.Identities[0]
	if i.Provider != "wechatpay" || i.AppID != e.creds.WeChatPay.AppID || i.OpenID != openid || i.UnionID != unionid || i.UserID != "" {
		e.t.Fatalf("identity %+v, want openid %s unionid %s at %s", i, openid, unionid, e.creds.WeChatPay.AppID)
	}
	// The same buyer logging in again, with a new code, is the same customer.
	again, _, _ := e.wechatCode(openid)
	if got := e.customer(e.login(e.key, "wechatpay", again, "")); got.ID != c.ID || len(got.Identities) != 1 {
		e.t.Fatalf("second login: %+v, want customer %s", got, c.ID)
	}
	// A code works once: WeChat says so with errcode 40163.
	used := e.login(e.key, "wechatpay", code, "")
	if used.status != http.StatusBadRequest || used.errCode() != "code_used" || used.str("error", "param") != "code" ||
		used.str("error", "provider_code") != "40163" {
		e.t.Fatalf("reused code: %d %s, want 400 code_used", used.status, used.raw)
	}
	bad := e.login(e.key, "wechatpay", "0a1b2c3d4e5f0a1b2c3d4e5f0a1b2c3d", "")
	if bad.status != http.StatusBadRequest || bad.errCode() != "invalid_code" || bad.str("error", "provider_code") != "40029" {
		e.t.Fatalf("invalid code: %d %s, want 400 invalid_code", bad.status, bad.raw)
	}
	// A code that cannot be one is refused without asking WeChat.
	junk := e.login(e.key, "wechatpay", "has spaces\n", "")
	if junk.status != http.StatusBadRequest || junk.errCode() != "invalid_code" || junk.str("error", "provider_code") != "" {
		e.t.Fatalf("junk code: %d %s, want 400 invalid_code from Hutong", junk.status, junk.raw)
	}
	// GET returns what the login returned.
	if got := e.customer(e.api("GET", "/v1/customers/"+c.ID, e.key, nil)); got.ID != c.ID || got.Identities[0].OpenID != openid {
		e.t.Fatalf("GET customer: %+v", got)
	}
}

func testAlipayLogin(e *env) {
	code, userID, openID := e.alipayCode("")
	c := e.customer(e.login(e.key, "alipay", code, ""))
	if len(c.Identities) != 1 {
		e.t.Fatalf("new customer: %+v", c)
	}
	i := c.Identities[0]
	if i.Provider != "alipay" || i.AppID != e.creds.Alipay.AppID || i.UserID != userID || i.OpenIDA != openID || i.OpenID != "" {
		e.t.Fatalf("identity %+v, want user_id %s open_id %s at %s", i, userID, openID, e.creds.Alipay.AppID)
	}
	again, _, _ := e.alipayCode(userID)
	if got := e.customer(e.login(e.key, "alipay", again, "")); got.ID != c.ID {
		e.t.Fatalf("second login: customer %s, want %s", got.ID, c.ID)
	}
	// Alipay answers a used code as an invalid one (isv.code-invalid), and so does Hutong.
	for name, code := range map[string]string{"reused": code, "invalid": "4b203fe6c11548bcabd8da5bb087a83b"} {
		a := e.login(e.key, "alipay", code, "")
		if a.status != http.StatusBadRequest || a.errCode() != "invalid_code" || a.str("error", "param") != "code" ||
			a.str("error", "provider_code") != "isv.code-invalid" {
			e.t.Fatalf("%s code: %d %s, want 400 invalid_code", name, a.status, a.raw)
		}
	}
}

// A wallet that fails is a 502, and the buyer's code survives for a retry.
func testWalletBusy(e *env) {
	if err := e.sb.Faults.Set(faults.Settings{API: faults.APIFaults{ErrorRate: 1}}); err != nil {
		e.t.Fatal(err)
	}
	defer e.sb.Faults.Set(faults.Settings{})
	wxCode, _, _ := e.wechatCode("")
	if a := e.login(e.key, "wechatpay", wxCode, ""); a.status != http.StatusBadGateway || a.errCode() != "provider_unavailable" || a.str("error", "provider_code") != "-1" {
		e.t.Fatalf("WeChat busy: %d %s, want 502 provider_unavailable (-1)", a.status, a.raw)
	}
	aliCode, _, _ := e.alipayCode("")
	if a := e.login(e.key, "alipay", aliCode, ""); a.status != http.StatusBadGateway {
		e.t.Fatalf("Alipay busy: %d %s, want 502", a.status, a.raw)
	}
	e.sb.Faults.Set(faults.Settings{})
	e.customer(e.login(e.key, "wechatpay", wxCode, ""))
	e.customer(e.login(e.key, "alipay", aliCode, ""))
}

func testLinkSecondWallet(e *env) {
	wxCode, openid, _ := e.wechatCode("")
	c := e.customer(e.login(e.key, "wechatpay", wxCode, ""))
	aliCode, userID, _ := e.alipayCode("")
	linked := e.customer(e.login(e.key, "alipay", aliCode, c.ID))
	if linked.ID != c.ID || len(linked.Identities) != 2 || linked.Identities[0].OpenID != openid || linked.Identities[1].UserID != userID {
		e.t.Fatalf("after linking Alipay: %+v", linked)
	}
	// Logging in with either wallet now finds the one customer.
	again, _, _ := e.alipayCode(userID)
	if got := e.customer(e.login(e.key, "alipay", again, "")); got.ID != c.ID {
		e.t.Fatalf("Alipay login after linking: customer %s, want %s", got.ID, c.ID)
	}
	// Linking what the customer already has changes nothing.
	same, _, _ := e.wechatCode(openid)
	if got := e.customer(e.login(e.key, "wechatpay", same, c.ID)); got.ID != c.ID || len(got.Identities) != 2 {
		e.t.Fatalf("relinking its own identity: %+v", got)
	}
	if got := e.customer(e.api("GET", "/v1/customers/"+c.ID, e.key, nil)); len(got.Identities) != 2 {
		e.t.Fatalf("GET after linking: %+v", got)
	}
}

func testLinkRefusals(e *env) {
	wxCode, openidA, _ := e.wechatCode("")
	a := e.customer(e.login(e.key, "wechatpay", wxCode, ""))
	aliCode, _, _ := e.alipayCode("")
	b := e.customer(e.login(e.key, "alipay", aliCode, ""))

	// A's WeChat identity cannot be linked to B.
	code, _, _ := e.wechatCode(openidA)
	taken := e.login(e.key, "wechatpay", code, b.ID)
	if taken.status != http.StatusConflict || taken.errCode() != "identity_taken" || !strings.Contains(taken.str("error", "message"), a.ID) {
		e.t.Fatalf("linking A's identity to B: %d %s, want 409 identity_taken naming %s", taken.status, taken.raw, a.ID)
	}
	// A second WeChat identity for A is refused too.
	other, _, _ := e.wechatCode("")
	exists := e.login(e.key, "wechatpay", other, a.ID)
	if exists.status != http.StatusConflict || exists.errCode() != "identity_exists" || exists.str("error", "param") != "customer" {
		e.t.Fatalf("second WeChat identity for A: %d %s, want 409 identity_exists", exists.status, exists.raw)
	}
	for id, want := range map[string]int{a.ID: 1, b.ID: 1} {
		if got := e.customer(e.api("GET", "/v1/customers/"+id, e.key, nil)); len(got.Identities) != want {
			e.t.Fatalf("refusals changed customer %s: %+v", id, got)
		}
	}
	// An unknown customer is refused before the code is spent: the code still works after.
	fresh, _, _ := e.wechatCode("")
	for _, id := range []string{"cus_000000000000000000000000", "not-a-customer"} {
		missing := e.login(e.key, "wechatpay", fresh, id)
		if missing.status != http.StatusBadRequest || missing.errCode() != "resource_missing" || missing.str("error", "param") != "customer" {
			e.t.Fatalf("unknown customer %s: %d %s, want 400 resource_missing naming customer", id, missing.status, missing.raw)
		}
	}
	e.customer(e.login(e.key, "wechatpay", fresh, ""))
}

func testLoginRequests(e *env) {
	for _, tc := range []struct {
		key, body string
		status    int
		param     string
	}{
		{e.key, `{"code":"x"}`, 400, "provider"},
		{e.key, `{"provider":"paypal","code":"x"}`, 400, "provider"},
		{e.key, `{"provider":"wechatpay"}`, 400, "code"},
		{e.key, `{"provider":"wechatpay","code":""}`, 400, "code"},
		{e.key, `{"provider":"wechatpay","code":"x","session_key":"k"}`, 400, "session_key"},
		{e.key, `{"provider":"wechatpay","code":7}`, 400, "code"},
		{e.key, `not json`, 400, "body"},
		{"", `{"provider":"wechatpay","code":"x"}`, 401, ""},
		{"sk_test_wrongwrongwrongwrongwrongwrongwrongwron", `{"provider":"wechatpay","code":"x"}`, 401, ""},
	} {
		a := e.api("POST", "/v1/customers/login", tc.key, tc.body)
		if a.status != tc.status || a.str("error", "param") != tc.param {
			e.t.Errorf("%s: %d %s, want %d naming %q", tc.body, a.status, a.raw, tc.status, tc.param)
		}
	}
	if a := e.api("GET", "/v1/customers/cus_000000000000000000000000", "", nil); a.status != http.StatusUnauthorized {
		e.t.Errorf("GET without a key: %d", a.status)
	}
	for _, id := range []string{"cus_000000000000000000000000", "not-an-id", "pay_000000000000000000000000"} {
		if a := e.api("GET", "/v1/customers/"+id, e.key, nil); a.status != http.StatusNotFound || a.errCode() != "resource_missing" {
			e.t.Errorf("GET %s: %d %s, want 404", id, a.status, a.raw)
		}
	}
}

// Customers belong to one merchant and one mode.
func testIsolation(e *env) {
	code, openid, _ := e.wechatCode("")
	c := e.customer(e.login(e.key, "wechatpay", code, ""))
	for name, key := range map[string]string{"another merchant": e.otherKey, "the live key": e.liveKey} {
		if a := e.api("GET", "/v1/customers/"+c.ID, key, nil); a.status != http.StatusNotFound {
			e.t.Errorf("%s reads the customer: %d %s", name, a.status, a.raw)
		}
		aliCode, _, _ := e.alipayCode("")
		if a := e.login(key, "alipay", aliCode, c.ID); a.status != http.StatusBadRequest || a.errCode() != "resource_missing" {
			e.t.Errorf("%s links to the customer: %d %s", name, a.status, a.raw)
		}
	}
	// The same buyer is another customer for another merchant and in live mode.
	for name, key := range map[string]string{"another merchant": e.otherKey, "the live key": e.liveKey} {
		again, _, _ := e.wechatCode(openid)
		got := e.customer(e.login(key, "wechatpay", again, ""))
		if got.ID == c.ID || got.Identities[0].OpenID != openid || got.Livemode != (key == e.liveKey) {
			e.t.Errorf("%s: %+v, want a customer of its own", name, got)
		}
	}
}

// A mini-program payment for a linked customer is placed with that customer's identity at the
// chosen wallet, paid at the sandbox by that buyer (and by no other), and succeeds.
func testPaymentsForLinkedCustomer(e *env) {
	wxCode, openid, _ := e.wechatCode("")
	c := e.customer(e.login(e.key, "wechatpay", wxCode, ""))
	aliCode, userID, _ := e.alipayCode("")
	e.customer(e.login(e.key, "alipay", aliCode, c.ID))

	for _, tc := range []struct {
		provider, action, payerField, payer string
		stranger                            map[string]string
		buyer                               map[string]string
	}{
		{"wechatpay", "wechat_jsapi", "openid", openid, map[string]string{"openid": "oStrangerStrangerStrangerStr"}, map[string]string{"openid": openid}},
		{"alipay", "alipay_trade", "buyer_id", userID, map[string]string{"buyer_id": "2088000000009999"}, map[string]string{"buyer_id": userID}},
	} {
		p := e.api("POST", "/v1/payments", e.key, map[string]any{
			"amount": 1288, "currency": "CNY", "description": "Longjing 龙井", "reference": "mini-" + tc.provider,
			"provider": tc.provider, "channel": "miniprogram", "customer": c.ID,
		})
		if p.status != http.StatusOK || p.str("status") != "pending" || p.str("next_action", "type") != tc.action ||
			p.str("customer") != c.ID || p.str("payer", tc.payerField) != tc.payer {
			e.t.Fatalf("%s payment for %s: %d %s", tc.provider, c.ID, p.status, p.raw)
		}
		otn := p.str("provider_ref", "out_trade_no")
		if st := e.payAtWallet(tc.provider, otn, tc.stranger); st != http.StatusConflict {
			e.t.Fatalf("%s: another buyer paid the customer's order: %d, want 409", tc.provider, st)
		}
		if st := e.payAtWallet(tc.provider, otn, tc.buyer); st/100 != 2 {
			e.t.Fatalf("%s: the customer could not pay: %d", tc.provider, st)
		}
		done := e.waitStatus(p.str("id"), "succeeded")
		if done.str("payer", tc.payerField) != tc.payer {
			e.t.Fatalf("%s: succeeded payment's payer: %s", tc.provider, done.raw)
		}
	}
}

func testPaymentsRefusedWithoutIdentity(e *env) {
	code, _, _ := e.wechatCode("")
	c := e.customer(e.login(e.key, "wechatpay", code, ""))
	create := func(key, provider, customer string) answer {
		return e.api("POST", "/v1/payments", key, map[string]any{
			"amount": 100, "currency": "CNY", "description": "tea", "reference": "r", "provider": provider, "channel": "miniprogram", "customer": customer,
		})
	}
	a := create(e.key, "alipay", c.ID)
	if a.status != http.StatusBadRequest || a.str("error", "param") != "customer" || !strings.Contains(a.str("error", "message"), "alipay") {
		e.t.Fatalf("Alipay payment for a WeChat-only customer: %d %s, want 400 naming customer", a.status, a.raw)
	}
	for name, a := range map[string]answer{
		"unknown customer":          create(e.key, "wechatpay", "cus_000000000000000000000000"),
		"another merchant's":        create(e.otherKey, "wechatpay", c.ID),
		"a test customer with live": create(e.liveKey, "wechatpay", c.ID),
	} {
		if a.status != http.StatusBadRequest || a.errCode() != "resource_missing" || a.str("error", "param") != "customer" {
			e.t.Errorf("%s: %d %s, want 400 resource_missing naming customer", name, a.status, a.raw)
		}
	}
	// An explicit payer wins over the customer's identity.
	p := e.api("POST", "/v1/payments", e.key, map[string]any{
		"amount": 100, "currency": "CNY", "description": "tea", "reference": "r", "provider": "wechatpay", "channel": "miniprogram",
		"customer": c.ID, "payer": map[string]string{"openid": "oExplicitExplicitExplicitExp"},
	})
	if p.status != http.StatusOK || p.str("payer", "openid") != "oExplicitExplicitExplicitExp" {
		e.t.Fatalf("explicit payer: %d %s", p.status, p.raw)
	}
}

const insideWeChat = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI Language/zh_CN"

// A payment for a customer with a WeChat identity needs no web authorization inside WeChat.
func testCheckoutKnowsCustomer(e *env) {
	code, openid, _ := e.wechatCode("")
	c := e.customer(e.login(e.key, "wechatpay", code, ""))
	p := e.api("POST", "/v1/payments", e.key, map[string]any{"amount": 100, "currency": "CNY", "description": "tea", "reference": "r", "customer": c.ID})
	if p.status != http.StatusOK || p.str("payer", "openid") != openid || p.str("provider") != "" {
		e.t.Fatalf("payment for the checkout: %d %s", p.status, p.raw)
	}
	req, _ := http.NewRequest("GET", p.str("checkout_url"), nil)
	req.Header.Set("User-Agent", insideWeChat)
	resp, err := noRedirects().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("checkout inside WeChat: %d to %q, want the page itself", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// The buyer inside WeChat goes from the checkout to WeChat's authorize page and back; the
// openid obtained places the JSAPI order, which that buyer then pays.
func testWebAuthorization(e *env) {
	p := e.api("POST", "/v1/payments", e.key, map[string]any{"amount": 2500, "currency": "CNY", "description": "Pu'er", "reference": "web"})
	id := p.str("id")
	jar, _ := cookiejar.New(nil)
	var hops []string
	client := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		hops = append(hops, req.URL.Scheme+"://"+req.URL.Host+req.URL.Path)
		req.Header.Set("User-Agent", insideWeChat)
		return nil
	}}
	req, _ := http.NewRequest("GET", p.str("checkout_url")+"?lang=en", nil)
	req.Header.Set("User-Agent", insideWeChat)
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	want := []string{
		e.gatewayURL + "/checkout/" + id + "/wechat-oauth",
		e.sandboxURL + "/connect/oauth2/authorize",
		e.gatewayURL + "/checkout/" + id + "/wechat-oauth/callback",
		e.gatewayURL + "/checkout/" + id,
	}
	if resp.StatusCode != http.StatusOK || strings.Join(hops, " ") != strings.Join(want, " ") {
		e.t.Fatalf("redirects %v ended %d, want %v then 200", hops, resp.StatusCode, want)
	}
	if got := resp.Request.URL.Query().Get("lang"); got != "en" {
		e.t.Errorf("the language was lost on the way: %s", resp.Request.URL)
	}
	placed := e.api("GET", "/v1/payments/"+id, e.key, nil)
	openid := placed.str("payer", "openid")
	if placed.str("provider") != "wechatpay" || placed.str("channel") != "miniprogram" || placed.str("next_action", "type") != "wechat_jsapi" || openid == "" {
		e.t.Fatalf("after web authorization: %s", placed.raw)
	}
	// Going through again changes nothing: the order is placed.
	resp, err = client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/checkout/"+id {
		e.t.Fatalf("second visit: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	otn := placed.str("provider_ref", "out_trade_no")
	if st := e.payAtWallet("wechatpay", otn, map[string]string{"openid": "oStrangerStrangerStrangerStr"}); st != http.StatusConflict {
		e.t.Fatalf("another buyer paid: %d, want 409", st)
	}
	if st := e.payAtWallet("wechatpay", otn, map[string]string{"openid": openid}); st/100 != 2 {
		e.t.Fatalf("the authorized buyer could not pay: %d", st)
	}
	e.waitStatus(id, "succeeded")
}

// start begins web authorization for payment id in a fresh browser (cookie jar) and returns
// the browser and the state and redirect_uri WeChat was given.
func (e *env) start(id string) (*http.Client, string, string) {
	e.t.Helper()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(e.gatewayURL + "/checkout/" + id + "/wechat-oauth")
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil || loc.Path != "/connect/oauth2/authorize" {
		e.t.Fatalf("start: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	q := loc.Query()
	if q.Get("appid") != e.creds.WeChatPay.AppID || q.Get("scope") != "snsapi_base" || q.Get("response_type") != "code" || len(q.Get("state")) > 128 {
		e.t.Fatalf("authorize URL %s", loc)
	}
	return client, q.Get("state"), q.Get("redirect_uri")
}

// authorizeCode has the sandbox authorize like WeChat would and returns the code it sends back.
func (e *env) authorizeCode(redirectURI, state string) string {
	e.t.Helper()
	q := url.Values{"appid": {e.creds.WeChatPay.AppID}, "redirect_uri": {redirectURI}, "response_type": {"code"}, "scope": {"snsapi_base"}, "state": {state}}
	resp, err := noRedirects().Get(e.sandboxURL + "/connect/oauth2/authorize?" + q.Encode())
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || back.Query().Get("code") == "" {
		e.t.Fatalf("sandbox authorize: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return back.Query().Get("code")
}

func testWebAuthorizationRefusals(e *env) {
	p := e.api("POST", "/v1/payments", e.key, map[string]any{"amount": 100, "currency": "CNY", "description": "tea", "reference": "r"})
	id := p.str("id")
	get := func(client *http.Client, u string) *http.Response {
		e.t.Helper()
		resp, err := client.Get(u)
		if err != nil {
			e.t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	unchanged := func(what string) {
		e.t.Helper()
		if got := e.api("GET", "/v1/payments/"+id, e.key, nil); got.str("provider") != "" || got.str("payer", "openid") != "" {
			e.t.Fatalf("%s changed the payment: %s", what, got.raw)
		}
	}
	browser, state, redirect := e.start(id)
	if !strings.HasPrefix(redirect, e.gatewayURL+"/checkout/"+id+"/wechat-oauth/callback") {
		e.t.Fatalf("redirect_uri %q", redirect)
	}
	code := e.authorizeCode(redirect, state)
	callback := func(id, code, state string) string {
		return e.gatewayURL + "/checkout/" + id + "/wechat-oauth/callback?" + url.Values{"code": {code}, "state": {state}}.Encode()
	}

	// Another browser (no cookie), a forged state, and a state for another payment are refused.
	other := e.api("POST", "/v1/payments", e.key, map[string]any{"amount": 100, "currency": "CNY", "description": "tea", "reference": "r"})
	for name, resp := range map[string]*http.Response{
		"another browser":   get(noRedirects(), callback(id, code, state)),
		"forged state":      get(browser, callback(id, code, state[:len(state)-2]+"xx")),
		"no state":          get(browser, callback(id, code, "")),
		"another payment's": get(browser, callback(other.str("id"), code, state)),
	} {
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Security-Policy") == "" {
			e.t.Errorf("%s: %d, want 400", name, resp.StatusCode)
		}
	}
	unchanged("refused callbacks")

	// A code WeChat refuses is a 400 page, and the payment is unchanged.
	browser2, state2, _ := e.start(id)
	if resp := get(browser2, callback(id, "0123456789abcdef0123456789abcdef", state2)); resp.StatusCode != http.StatusBadRequest {
		e.t.Fatalf("invalid code: %d, want 400", resp.StatusCode)
	}
	unchanged("an invalid code")

	// The first browser, with its state and a real code, succeeds; replaying it changes nothing.
	resp := get(browser, callback(id, code, state))
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/checkout/"+id {
		e.t.Fatalf("callback: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	placed := e.api("GET", "/v1/payments/"+id, e.key, nil)
	if placed.str("next_action", "type") != "wechat_jsapi" {
		e.t.Fatalf("after the callback: %s", placed.raw)
	}
	if resp := get(browser, callback(id, code, state)); resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/checkout/"+id {
		e.t.Fatalf("replayed callback: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Starting again for a placed payment goes straight back to the checkout, as for an unknown
	// payment there is nothing to authorize.
	if resp := get(noRedirects(), e.gatewayURL+"/checkout/"+id+"/wechat-oauth"); resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/checkout/"+id {
		e.t.Fatalf("start for a placed payment: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, bad := range []string{"pay_000000000000000000000000", "nope"} {
		if resp := get(noRedirects(), e.gatewayURL+"/checkout/"+bad+"/wechat-oauth"); resp.StatusCode != http.StatusNotFound {
			e.t.Errorf("start for %s: %d, want 404", bad, resp.StatusCode)
		}
	}
}
