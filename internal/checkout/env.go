package checkout

import "strings"

// Env is where the buyer opened the checkout, which decides the wallet and channel offered.
type Env string

const (
	EnvWeChat  Env = "wechat"  // WeChat's in-app browser: JSAPI through WeixinJSBridge
	EnvAlipay  Env = "alipay"  // Alipay's in-app browser: wap cashier
	EnvMobile  Env = "mobile"  // a phone browser: WeChat H5 or Alipay wap
	EnvDesktop Env = "desktop" // anything else: QR codes, or Alipay's web cashier
)

// mobileMarks are User-Agent fragments of phone and tablet browsers.
var mobileMarks = []string{"mobile", "android", "iphone", "ipad", "ipod", "harmonyos", "openharmony"}

// DetectEnv classifies a User-Agent. The wallets' own browsers come first because they also
// carry the phone marks; WeChat's desktop app (MicroMessenger … WindowsWechat) supports JSAPI too.
func DetectEnv(userAgent string) Env {
	ua := strings.ToLower(userAgent)
	switch {
	case strings.Contains(ua, "micromessenger"):
		return EnvWeChat
	case strings.Contains(ua, "alipayclient"):
		return EnvAlipay
	}
	for _, m := range mobileMarks {
		if strings.Contains(ua, m) {
			return EnvMobile
		}
	}
	return EnvDesktop
}
