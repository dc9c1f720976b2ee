package checkout

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hutong-pay/hutong/internal/payment"
)

func FuzzDetectEnv(f *testing.F) {
	for _, ua := range []string{uaWeChatIOS, uaWeChatAndroid, uaWeChatWindows, uaAlipayIOS, uaAlipayAndroid, uaIPhoneSafari,
		uaAndroidChrome, uaDesktopChrome, uaDesktopSafari, "", "MICROMESSENGER AlipayClient", "\xff\xfe"} {
		f.Add(ua)
	}
	f.Fuzz(func(t *testing.T, ua string) {
		env := DetectEnv(ua)
		lower := strings.ToLower(ua)
		switch {
		case strings.Contains(lower, "micromessenger"):
			if env != EnvWeChat {
				t.Fatalf("%q: %s, want wechat", ua, env)
			}
		case strings.Contains(lower, "alipayclient"):
			if env != EnvAlipay {
				t.Fatalf("%q: %s, want alipay", ua, env)
			}
		case env != EnvMobile && env != EnvDesktop:
			t.Fatalf("%q: %s", ua, env)
		}
	})
}

func FuzzParseChoice(f *testing.F) {
	f.Add("application/json", `{"provider":"wechatpay","channel":"qr"}`)
	f.Add("application/json; charset=utf-8", `{"provider":"alipay","channel":"web","extra":[1,2]}`)
	f.Add("application/x-www-form-urlencoded", "provider=alipay&channel=h5")
	f.Add("", "provider=wechatpay&channel=miniprogram&provider=alipay")
	f.Add("text/plain", "provider=alipay&channel=qr")
	f.Add("application/json", `{"provider":"alipay","channel":"app"}`)
	f.Add("application/x-www-form-urlencoded", "%zz")
	f.Fuzz(func(t *testing.T, ctype, body string) {
		ch, err := parseChoice(ctype, strings.NewReader(body))
		if err != nil {
			if ch != (Choice{}) {
				t.Fatalf("error with a choice: %+v", ch)
			}
			return
		}
		if !buyerMethod(ch.Provider, ch.Channel) || !payment.Supports(ch.Provider, ch.Channel) || ch.Channel == payment.ChannelApp {
			t.Fatalf("accepted %+v", ch)
		}
		if len(body) > maxChoiceBody {
			t.Fatalf("accepted a body of %d bytes", len(body))
		}
	})
}

func FuzzNegotiateLang(f *testing.F) {
	f.Add("en-US,en;q=0.9", "", "")
	f.Add("zh-CN,zh;q=0.9", "en", "")
	f.Add("fr;q=abc, *;q=0.1", "", "zh")
	f.Add(strings.Repeat("en-", 200), "zh_TW", "xx")
	f.Fuzz(func(t *testing.T, accept, query, cookie string) {
		r := httptest.NewRequest("GET", "/checkout/pay_x", nil)
		q := r.URL.Query()
		q.Set("lang", query)
		r.URL.RawQuery = q.Encode()
		r.Header.Set("Accept-Language", accept)
		r.Header.Set("Cookie", langCookie+"="+cookie)
		l, explicit := negotiateLang(r)
		if l != LangZH && l != LangEN {
			t.Fatalf("lang %q", l)
		}
		if ql, ok := parseLang(query); ok != explicit || (ok && ql != l) {
			t.Fatalf("query %q: got %s explicit=%v", query, l, explicit)
		}
	})
}

func FuzzValidID(f *testing.F) {
	f.Add("pay_000000000000000000000000")
	f.Add(payment.NewID("pay"))
	f.Add("pay_../../../../etc/passwd000")
	f.Add("pay_ÄÄÄÄÄÄÄÄÄÄÄÄ")
	f.Fuzz(func(t *testing.T, id string) {
		if !validID(id) {
			return
		}
		if len(id) != 28 || !strings.HasPrefix(id, "pay_") || strings.ContainsAny(id[4:], "/._-%<>\"' ") {
			t.Fatalf("accepted %q", id)
		}
	})
}

func TestValidIDAcceptsNewIDs(t *testing.T) {
	for range 1000 {
		if id := payment.NewID("pay"); !validID(id) {
			t.Fatalf("refused %q", id)
		}
	}
}
