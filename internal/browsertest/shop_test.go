package browsertest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
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
	webhookAccepted(s, p.ID)
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

// webhookAccepted checks, through the merchant API, that Hutong delivered payment.succeeded for
// the payment to the demo shop's webhook endpoint and the shop accepted it (a 2xx comes only
// after the shop verified the signature).
func webhookAccepted(s *stack, paymentID string) {
	s.t.Helper()
	var endpoints struct {
		Data []struct{ ID, URL string }
	}
	s.call("GET", s.info.GatewayURL+"/v1/webhook_endpoints", nil, &endpoints)
	endpoint := ""
	for _, e := range endpoints.Data {
		if e.URL == s.info.ShopURL+"webhooks" {
			endpoint = e.ID
		}
	}
	if endpoint == "" {
		s.t.Fatalf("the demo shop has no webhook endpoint (endpoints: %+v)", endpoints.Data)
	}
	deadline := time.Now().Add(waitFor)
	for {
		var events struct {
			Data []struct {
				ID   string
				Data json.RawMessage
			}
		}
		s.call("GET", s.info.GatewayURL+"/v1/events?type=payment.succeeded&limit=100", nil, &events)
		for _, ev := range events.Data {
			var p struct{ ID string }
			if json.Unmarshal(ev.Data, &p) != nil || p.ID != paymentID {
				continue
			}
			var attempts struct {
				Data []struct {
					WebhookEndpoint string `json:"webhook_endpoint"`
					Status          string
					StatusCode      int `json:"status_code"`
				}
			}
			s.call("GET", s.info.GatewayURL+"/v1/events/"+ev.ID+"/deliveries", nil, &attempts)
			for _, a := range attempts.Data {
				if a.WebhookEndpoint == endpoint && a.Status == "succeeded" {
					return
				}
			}
			if time.Now().After(deadline) {
				s.t.Fatalf("no accepted delivery of %s to the demo shop; attempts: %+v", ev.ID, attempts.Data)
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no payment.succeeded event for %s", paymentID)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
