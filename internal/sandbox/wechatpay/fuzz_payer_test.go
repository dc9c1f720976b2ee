package wechatpay

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// FuzzParseCodeURL: only weixin://wxpay/bizpayurl?pr=<token> is a Native code, and its token is
// exactly what the sandbox would have issued around.
func FuzzParseCodeURL(f *testing.F) {
	f.Add(codeURLPrefix + "15tCwvQ1X")
	f.Add(codeURLPrefix)
	f.Add(codeURLPrefix + "a&pr=b")
	f.Add(codeURLPrefix + "a%26b")
	f.Add("weixin://wxpay/bizpayurl?pr=abc#frag")
	f.Add("weixin://user@wxpay/bizpayurl?pr=abc")
	f.Add("https://wxpay/bizpayurl?pr=abc")
	f.Add("weixin://wxpay/bizpayurl?pr=abc&x=1")
	f.Add("%zz")
	f.Fuzz(func(t *testing.T, codeURL string) {
		token, ok := parseCodeURL(codeURL)
		if !ok {
			if token != "" {
				t.Fatalf("rejected %q but returned %q", codeURL, token)
			}
			return
		}
		if !validNativeToken(token) {
			t.Fatalf("accepted %q with token %q", codeURL, token)
		}
		// The token alone rebuilds a code_url that parses to it.
		if again, ok := parseCodeURL(codeURLPrefix + token); !ok || again != token {
			t.Fatalf("round trip of %q: %q %v", token, again, ok)
		}
	})
}

// FuzzJSAPIRequest: getBrandWCPayRequest parameters from a page never crash the decoder; failures are
// WeChat-shaped 400s; what is accepted names a well-formed prepay_id and the RSA sign type.
func FuzzJSAPIRequest(f *testing.F) {
	f.Add(`{"appId":"wx1234567890abcdef","timeStamp":"1700000000","nonceStr":"abc","package":"prepay_id=wx2024","signType":"RSA","paySign":"c2ln"}`)
	f.Add(`{"timeStamp":1700000000,"nonceStr":"abc","package":"prepay_id=wx2024","signType":"RSA","paySign":"c2ln"}`)
	f.Add(`{"timeStamp":1.7e9,"nonceStr":"abc","package":"prepay_id=","signType":"RSA","paySign":"x"}`)
	f.Add(`{"timeStamp":true}`)
	f.Add(`{"package":"Sign=WXPay","signType":"MD5"}`)
	f.Add(`{"appId":null}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, body string) {
		req, prepayID, e := decodeJSAPIRequest([]byte(body), "wxdefault000000000")
		if e != nil {
			if e.Status != http.StatusBadRequest || e.Code != "PARAM_ERROR" {
				t.Fatalf("error %+v", e)
			}
			return
		}
		if req.SignType != "RSA" || string(req.Package) != "prepay_id="+prepayID || !validPrepayID(prepayID) ||
			req.AppID == "" || req.TimeStamp == "" || req.NonceStr == "" || req.PaySign == "" {
			t.Fatalf("accepted %q as %+v (prepay_id %q)", body, req, prepayID)
		}
	})
}

// FuzzPayerInput: what the payer pages accept as openid and redirect_url is safe to echo and follow.
func FuzzPayerInput(f *testing.F) {
	f.Add("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "https://shop.example/r?x=1")
	f.Add(`o"><script>`, "javascript:alert(1)")
	f.Add("", "//evil.example/")
	f.Add("o", "http://user:pw@host/")
	f.Add("o-_", "HTTPS://Shop.Example")
	f.Fuzz(func(t *testing.T, openid, redirect string) {
		if validOpenID(openid) && strings.ContainsAny(openid, "<>\"'& \t\r\n") {
			t.Fatalf("openid %q accepted", openid)
		}
		if validRedirect(redirect) {
			u, err := url.Parse(redirect)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				t.Fatalf("redirect %q accepted", redirect)
			}
		}
	})
}
