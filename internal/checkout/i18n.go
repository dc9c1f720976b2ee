package checkout

import (
	"net/http"
	"strings"

	"golang.org/x/text/language"
)

// Lang is a page language.
type Lang string

const (
	LangZH Lang = "zh" // the default: most buyers of Chinese wallets read Chinese
	LangEN Lang = "en"
)

// langCookie keeps a buyer's ?lang= choice across the trip to the wallet and back.
const langCookie = "hutong_lang"

// parseLang reads an explicit choice such as "en", "en-US", "zh", "zh-CN"; ok is false otherwise.
func parseLang(s string) (Lang, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	base, _, _ := strings.Cut(strings.ReplaceAll(s, "_", "-"), "-")
	switch base {
	case "zh":
		return LangZH, true
	case "en":
		return LangEN, true
	}
	return "", false
}

// negotiateLang picks the page language: ?lang=, then the cookie it sets, then Accept-Language.
func negotiateLang(r *http.Request) (l Lang, explicit bool) {
	if l, ok := parseLang(r.URL.Query().Get("lang")); ok {
		return l, true
	}
	if c, err := r.Cookie(langCookie); err == nil {
		if l, ok := parseLang(c.Value); ok {
			return l, false
		}
	}
	return acceptLang(r.Header.Get("Accept-Language")), false
}

// acceptLang picks the first page language in the buyer's order of preference: any Chinese
// (a reader of zh-Hant is better served by Chinese than by English), then English.
func acceptLang(header string) Lang {
	if header == "" {
		return LangZH
	}
	tags, _, err := language.ParseAcceptLanguage(header)
	if err != nil {
		return LangZH
	}
	for _, t := range tags {
		base, conf := t.Base()
		if conf == language.No {
			continue
		}
		switch base.String() {
		case "zh":
			return LangZH
		case "en":
			return LangEN
		}
	}
	return LangZH
}

// T returns the message key in language l, or the key itself when it is missing, so that a
// missing translation shows up on the page instead of breaking it (a test checks there are none).
func (l Lang) T(key string) string {
	m, ok := messages[key]
	if !ok {
		return key
	}
	if l == LangEN {
		return m.en
	}
	return m.zh
}

// HTMLLang is the value of <html lang>.
func (l Lang) HTMLLang() string {
	if l == LangEN {
		return "en"
	}
	return "zh-CN"
}

type message struct{ zh, en string }

// messages holds every string the buyer reads. Placeholders: {n} seconds, {t} a time.
var messages = map[string]message{
	"title":               {"收银台", "Checkout"},
	"merchant":            {"商户", "Merchant"},
	"item":                {"商品", "Item"},
	"amount":              {"金额", "Amount"},
	"pay_before":          {"请在 {t} 前完成付款", "Please pay before {t}"},
	"sandbox":             {"沙箱模式：不会产生真实扣款", "Sandbox mode: no real money moves"},
	"choose_method":       {"选择支付方式", "Choose how to pay"},
	"pay_wechat":          {"微信支付", "WeChat Pay"},
	"pay_alipay":          {"支付宝", "Alipay"},
	"pay_alipay_web":      {"在支付宝网站付款", "Pay on the Alipay website"},
	"pay_now":             {"立即支付", "Pay now"},
	"no_method":           {"暂无可用的支付方式。", "No payment method is available."},
	"scan_wechatpay":      {"请使用微信扫一扫付款", "Scan with WeChat to pay"},
	"scan_alipay":         {"请使用支付宝扫一扫付款", "Scan with Alipay to pay"},
	"open_alipay":         {"打开支付宝付款", "Open Alipay to pay"},
	"continue_wechatpay":  {"前往微信支付", "Continue to WeChat Pay"},
	"continue_alipay":     {"前往支付宝付款", "Continue to Alipay"},
	"open_in_wechat":      {"请在微信中打开此页面完成付款。", "Open this page in WeChat to pay."},
	"open_in_alipay":      {"请在支付宝中完成付款。", "Please finish paying in Alipay."},
	"open_in_app":         {"请在商户的应用中完成付款。", "Please finish paying in the merchant's app."},
	"wechat_auth_missing": {"暂时无法在微信内确认您的身份以完成付款。请在手机浏览器中打开此页面，或在电脑上打开后用微信扫码付款。", "We cannot confirm your WeChat account here yet. Open this page in your phone's browser, or open it on a computer and scan the code with WeChat."},
	"waiting":             {"等待付款", "Waiting for payment"},
	"preparing":           {"正在准备付款…", "Preparing your payment…"},
	"confirming":          {"正在确认付款结果…", "Confirming your payment…"},
	"not_received":        {"我们还没有收到您的付款。付款完成后此页面会自动更新。", "We have not received your payment yet. This page updates by itself once you have paid."},
	"back_to_checkout":    {"返回收银台", "Back to checkout"},
	"state_succeeded":     {"支付成功", "Payment successful"},
	"state_failed":        {"支付失败", "Payment failed"},
	"state_canceled":      {"订单已关闭", "Payment canceled"},
	"state_expired":       {"订单已过期", "Payment expired"},
	"body_succeeded":      {"感谢您的付款，商户已收到。", "Thank you: the merchant has received your payment."},
	"body_failed":         {"此次付款未能完成。如需继续购买，请返回商户重新下单。", "This payment could not be completed. To buy, please return to the merchant and order again."},
	"body_canceled":       {"此订单已关闭，无法继续付款。", "This payment was closed and can no longer be paid."},
	"body_expired":        {"此订单已超过付款时限。如需继续购买，请返回商户重新下单。", "This payment is past its time limit. To buy, please return to the merchant and order again."},
	"back_to_merchant":    {"返回商户", "Return to the merchant"},
	"returning_in":        {"{n} 秒后自动返回商户", "Returning to the merchant in {n} s"},
	"close_page":          {"您可以关闭此页面。", "You may close this page."},
	"not_found_title":     {"找不到此订单", "Payment not found"},
	"not_found_body":      {"链接可能有误或已失效，请返回商户重试。", "The link may be wrong or no longer valid. Please go back to the merchant and try again."},
	"error_title":         {"出错了", "Something went wrong"},
	"error_body":          {"请稍后重试。", "Please try again in a moment."},
	"err_method_chosen":   {"此订单已选择了其他支付方式。", "This payment is already being paid another way."},
	"err_payment_state":   {"此订单已无法付款。", "This payment can no longer be paid."},
	"err_expired":         {"此订单已过期，无法付款。", "This payment has expired and can no longer be paid."},
	"err_openid_required": {"需要先在微信内确认您的身份。", "Your WeChat account must be confirmed first."},
	"err_provider":        {"支付机构暂时无法受理，请返回商户重新下单。", "The wallet did not accept the payment. Please return to the merchant and order again."},
	"err_invalid":         {"请选择有效的支付方式。", "Please choose a valid payment method."},
	"err_unavailable":     {"服务暂时不可用，请稍后重试。", "The service is unavailable; please try again in a moment."},
	"err_network":         {"网络异常，请重试。", "Network problem; please try again."},
	"wechat_cancel":       {"您已取消付款，可以再次点击付款。", "You canceled the payment; tap Pay now to try again."},
	"wechat_fail":         {"微信支付未能完成，请重试。", "WeChat Pay did not complete; please try again."},
	"wechat_unavailable":  {"无法调起微信支付，请确认在微信中打开此页面。", "WeChat Pay could not start. Make sure this page is open in WeChat."},
	"language":            {"语言", "Language"},
	"qr_alt_wechatpay":    {"微信支付二维码", "WeChat Pay QR code"},
	"qr_alt_alipay":       {"支付宝二维码", "Alipay QR code"},
	"redirecting":         {"正在前往付款页面…", "Taking you to the payment page…"},
}

// jsMessages are the keys the page script needs.
var jsMessages = []string{
	"preparing", "confirming", "redirecting", "returning_in", "err_network", "err_method_chosen", "err_payment_state",
	"err_expired", "err_openid_required", "err_provider", "err_invalid", "err_unavailable",
	"wechat_cancel", "wechat_fail", "wechat_unavailable",
}

func (l Lang) jsMessages() map[string]string {
	m := make(map[string]string, len(jsMessages))
	for _, k := range jsMessages {
		m[k] = l.T(k)
	}
	return m
}
