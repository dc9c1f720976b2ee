package identity_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/hutong-pay/hutong/internal/identity"
)

// The routes Routes lists are the ones RegisterAPI mounts, and no others.
func TestRoutesAreMounted(t *testing.T) {
	mux := http.NewServeMux()
	s := identity.New(identity.Config{})
	s.RegisterAPI(mux, func(*http.Request) (string, bool, bool) { return "", false, false }, func(http.ResponseWriter, *http.Request, error) {})
	routes := identity.Routes()
	if !slices.Equal(routes, []string{"POST /v1/customers/login", "GET /v1/customers/{id}"}) {
		t.Fatalf("Routes() = %v", routes)
	}
	for _, p := range routes {
		method, path, _ := strings.Cut(p, " ")
		if _, got := mux.Handler(httptest.NewRequest(method, strings.ReplaceAll(path, "{id}", "cus_x"), nil)); got != p {
			t.Errorf("%s is served by %q", p, got)
		}
	}
}

// BenchmarkCustomerPayer is what a payment for a customer adds to POST /v1/payments: reading
// the customer's identities (SQLite).
func BenchmarkCustomerPayer(b *testing.B) {
	e := newEnv(b)
	code, openid, _ := e.wechatCode("")
	c := e.customer(e.login(e.key, "wechatpay", code, ""))
	aliCode, _, _ := e.alipayCode("")
	e.customer(e.login(e.key, "alipay", aliCode, c.ID))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p, err := e.ids.CustomerPayer(ctx, e.merchantID, false, c.ID)
		if err != nil || p.OpenID != openid || p.BuyerID == "" {
			b.Fatalf("%+v %v", p, err)
		}
	}
}

// BenchmarkWeChatLogin is POST /v1/customers/login for a returning WeChat buyer, end to end
// against the sandbox; the sandbox issuing each code is outside the timing.
func BenchmarkWeChatLogin(b *testing.B) {
	e := newEnv(b)
	_, openid, _ := e.wechatCode("")
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		code, _, _ := e.wechatCode(openid)
		b.StartTimer()
		if a := e.login(e.key, "wechatpay", code, ""); a.status != http.StatusOK {
			b.Fatalf("login: %d %s", a.status, a.raw)
		}
	}
}
