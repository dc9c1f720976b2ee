package wechatpay

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	authScheme = "WECHATPAY2-SHA256-RSA2048"
	// maxSkew is WeChat's window: a timestamp this far (or farther) from now is stale.
	maxSkew = 300 * time.Second
	// maxAuthHeader bounds the parser's work; a real header is about 600 bytes.
	maxAuthHeader = 4096
)

// authorization is a parsed request Authorization header.
type authorization struct {
	MchID     string
	NonceStr  string
	Timestamp string
	SerialNo  string
	Signature string
}

// parseAuthorization reads `WECHATPAY2-SHA256-RSA2048 k="v",k="v",…`. Clients differ in field order and
// spacing, so pairs are taken in any order with optional blanks around them; unknown keys are ignored.
func parseAuthorization(h string) (authorization, error) {
	var a authorization
	if len(h) > maxAuthHeader {
		return a, errors.New("header too long")
	}
	h = strings.TrimSpace(h)
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok || scheme != authScheme {
		return a, fmt.Errorf("scheme must be %s", authScheme)
	}
	seen := map[string]bool{}
	for {
		rest = strings.TrimLeft(rest, " \t")
		if rest == "" {
			break
		}
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 {
			return a, errors.New("expected key=\"value\"")
		}
		key := strings.TrimRight(rest[:eq], " \t")
		if !isToken(key) {
			return a, errors.New("bad key")
		}
		rest = strings.TrimLeft(rest[eq+1:], " \t")
		if !strings.HasPrefix(rest, `"`) {
			return a, fmt.Errorf("value of %s must be quoted", key)
		}
		end := strings.IndexByte(rest[1:], '"')
		if end < 0 {
			return a, fmt.Errorf("unterminated value of %s", key)
		}
		value := rest[1 : 1+end]
		rest = strings.TrimLeft(rest[2+end:], " \t")
		if rest != "" {
			if rest[0] != ',' {
				return a, errors.New("pairs must be separated by commas")
			}
			rest = rest[1:]
		}
		if seen[key] {
			return a, fmt.Errorf("duplicate %s", key)
		}
		seen[key] = true
		switch key {
		case "mchid":
			a.MchID = value
		case "nonce_str":
			a.NonceStr = value
		case "timestamp":
			a.Timestamp = value
		case "serial_no":
			a.SerialNo = value
		case "signature":
			a.Signature = value
		}
	}
	for _, f := range []struct{ name, v string }{
		{"mchid", a.MchID}, {"nonce_str", a.NonceStr}, {"timestamp", a.Timestamp},
		{"serial_no", a.SerialNo}, {"signature", a.Signature},
	} {
		if f.v == "" {
			return a, fmt.Errorf("missing %s", f.name)
		}
	}
	return a, nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// authenticate checks a /v3 request's signature against the merchant's registered key. The signed
// message covers the request target and body exactly as received, so any client's encoding works.
func (s *Sandbox) authenticate(r *http.Request, body []byte) (mchid string, err *apiError) {
	h := r.Header.Get("Authorization")
	if strings.TrimSpace(h) == "" {
		return "", signError("Http头缺少Authorization或Authorization为空")
	}
	a, perr := parseAuthorization(h)
	if perr != nil {
		return "", signError("Http头Authorization值格式错误，请参考《微信支付商户REST API签名规则》(%s)", perr)
	}
	if a.MchID != s.keys.doc.MchID {
		return "", signError("商户号不存在或未开通API v3，请检查Authorization中的mchid")
	}
	if !strings.EqualFold(a.SerialNo, s.keys.doc.MerchantSerialNo) {
		return "", signError("商户证书序列号有误。请使用签名私钥匹配的证书序列号")
	}
	ts, perr := strconv.ParseInt(a.Timestamp, 10, 64)
	if perr != nil {
		return "", signError("Http头Authorization中的timestamp格式错误")
	}
	if skew := s.now().Unix() - ts; skew >= int64(maxSkew/time.Second) || -skew >= int64(maxSkew/time.Second) {
		return "", signError("请求的时间戳已过期，请检查商户服务器时间")
	}
	sig, derr := base64.StdEncoding.DecodeString(a.Signature)
	if derr != nil {
		return "", signError("错误的签名，签名不是有效的Base64编码")
	}
	msg := r.Method + "\n" + r.RequestURI + "\n" + a.Timestamp + "\n" + a.NonceStr + "\n" + string(body) + "\n"
	digest := sha256.Sum256([]byte(msg))
	if rsa.VerifyPKCS1v15(s.keys.merchantPub, crypto.SHA256, digest[:], sig) != nil {
		return "", signError("错误的签名，验签失败")
	}
	return a.MchID, nil
}

// responseKey picks the key for a response: the platform certificate the request names in
// Wechatpay-Serial, otherwise (any other value, or none) the WeChat Pay public key.
func (s *Sandbox) responseKey(r *http.Request) signingKey {
	if c, ok := s.keys.certBySerial(strings.TrimSpace(r.Header.Get("Wechatpay-Serial"))); ok {
		return c.signingKey
	}
	return s.keys.publicKey
}

// signHeaders sets WeChat Pay's signature headers over `timestamp\nnonce\nbody\n` with key.
func (s *Sandbox) signHeaders(h http.Header, key signingKey, body []byte) error {
	ts := strconv.FormatInt(s.now().Unix(), 10)
	nonce := newNonce()
	sig, err := signMessage(key, ts+"\n"+nonce+"\n"+string(body)+"\n")
	if err != nil {
		return err
	}
	h.Set("Wechatpay-Timestamp", ts)
	h.Set("Wechatpay-Nonce", nonce)
	h.Set("Wechatpay-Serial", key.serial)
	h.Set("Wechatpay-Signature", sig)
	h.Set("Wechatpay-Signature-Type", authScheme)
	return nil
}

func signMessage(key signingKey, msg string) (string, error) {
	digest := sha256.Sum256([]byte(msg))
	sig, err := rsa.SignPKCS1v15(nil, key.key, crypto.SHA256, digest[:])
	if err != nil {
		return "", fmt.Errorf("wechatpay sandbox: sign: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}
