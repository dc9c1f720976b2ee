package wechatpay

import (
	"crypto/rand"
	"time"
)

const (
	digits   = "0123456789"
	alnum    = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	hexUpper = "0123456789ABCDEF"
	hexLower = "0123456789abcdef"
	// openidChars are what WeChat openids/unionids are made of (URL-safe base64).
	openidChars = alnum + "-_"
)

// randomString draws n characters uniformly from charset (len <= 256) using crypto/rand.
func randomString(charset string, n int) string {
	out := make([]byte, n)
	limit := 256 - 256%len(charset) // reject bytes that would bias the draw
	buf := make([]byte, n+n/2+8)
	for i := 0; i < n; {
		_, _ = rand.Read(buf) // never fails (crypto/rand panics rather than return an error)
		for _, b := range buf {
			if int(b) >= limit {
				continue
			}
			out[i] = charset[int(b)%len(charset)]
			i++
			if i == n {
				break
			}
		}
	}
	return string(out)
}

// cst is China Standard Time: WeChat Pay writes every time in +08:00 and cuts bills at its midnight.
var cst = time.FixedZone("CST", 8*3600)

func formatTime(t time.Time) string { return t.In(cst).Format(time.RFC3339) }

func newNonce() string { return randomString(alnum, 32) }

// newTransactionID looks like 4200002345202405201234567890: 28 digits starting 42.
func newTransactionID(now time.Time) string {
	return "4200" + randomString(digits, 6) + now.In(cst).Format("20060102") + randomString(digits, 10)
}

// newPrepayID looks like wx201410272009395522657a690389285100: wx, a timestamp, hex.
func newPrepayID(now time.Time) string {
	return "wx" + now.In(cst).Format("20060102150405") + randomString(hexLower, 20)
}

func newRefundID() string { return "50" + randomString(digits, 27) }

// newEventID is a notification id; WeChat's are UUID-shaped.
func newEventID() string {
	return randomString(hexLower, 8) + "-" + randomString(hexLower, 4) + "-5" + randomString(hexLower, 3) + "-" +
		randomString(hexLower, 4) + "-" + randomString(hexLower, 12)
}

func newOpenID() string { return "o" + randomString(openidChars, 27) }

func newRequestID() string { return randomString(hexUpper, 32) }
