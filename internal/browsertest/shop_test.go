package browsertest

import (
	"strings"
	"testing"
)

// The example shop's whole purchase: shop → Hutong's checkout → a wallet's payer page → the
// checkout → back to the shop's order page, which shows the order paid.

// boughtOnCheckout opens the shop, buys sku and returns the payment the checkout is for.
func boughtOnCheckout(s *stack, buyer *tab, sku string) payment {
	s.t.Helper()
	buyer.open(s.info.ShopURL)
	buyer.click("#buy-" + sku)
	at := buyer.waitLocation(s.info.GatewayURL + "/checkout/pay_")
	id := strings.TrimPrefix(strings.SplitN(at, "?", 2)[0], s.info.GatewayURL+"/checkout/")
	p := s.payment(id)
	if p.Reference == "" || p.Provider != "" {
		s.t.Fatalf("the shop's payment %s: reference %q provider %q, want the shop's order and no wallet yet", id, p.Reference, p.Provider)
	}
	return p
}

// orderPaid checks the shop's order page for the payment's order.
func orderPaid(s *stack, buyer *tab, p payment, price string) {
	s.t.Helper()
	buyer.waitLocation(s.info.ShopURL + "orders/" + p.Reference)
	buyer.waitVisible(`#order-status[data-status="paid"]`)
	if got := buyer.text("#order-id"); got != p.Reference {
		s.t.Errorf("order page for %q, want %q", got, p.Reference)
	}
	if got := buyer.text("#order-amount"); got != price {
		s.t.Errorf("order amount %q, want %s", got, price)
	}
}

func TestShopPurchaseOnDesktopWithAlipay(t *testing.T) {
	s := start(t)
	pc := s.tab("desktop", desktop)
	p := boughtOnCheckout(s, pc, "longjing")
	if p.Amount != 6800 {
		t.Errorf("amount %d, want 6800", p.Amount)
	}
	pc.click("#pay-alipay-web")
	pc.waitLocation(s.info.SandboxURL + "/gateway.do")
	pc.click("#pay")
	pc.waitLocation(p.CheckoutURL + "/return")
	checkoutSucceeded(pc)
	pc.click("#return-link") // the buyer does not wait for the countdown
	orderPaid(s, pc, p, "¥68.00")
	s.succeeded(p.ID, "alipay", "web")
}

func TestShopPurchaseOnPhoneWithWeChat(t *testing.T) {
	s := start(t)
	phone := s.tab("iphone", iPhone)
	p := boughtOnCheckout(s, phone, "puer")
	phone.click("#pay-wechat")
	phone.waitLocation(s.info.SandboxURL + "/sandbox/wechatpay/h5/")
	phone.click("#pay")
	phone.waitLocation(p.CheckoutURL + "/return")
	checkoutSucceeded(phone)
	// This buyer lets the checkout count down and send them back to the shop by itself.
	orderPaid(s, phone, p, "¥128.00")
	s.succeeded(p.ID, "wechatpay", "h5")
}
