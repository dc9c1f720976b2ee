package alipay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// maxRequestBytes bounds a gateway request body; real calls are a few kilobytes.
const maxRequestBytes = 1 << 20

// gatewayRequest is one verified gateway call.
type gatewayRequest struct {
	method string
	params url.Values // query and form merged
	biz    bizContent
}

// methodFunc runs one API method and returns the success node, or the error to answer inside the
// method node.
type methodFunc func(ctx context.Context, req *gatewayRequest) (any, *apiError)

// pageMethods are answered with HTML (the cashier) rather than a JSON node: the browser, or the app
// SDK for app.pay, brings the signed request to the gateway itself.
var pageMethods = map[string]string{
	"alipay.trade.page.pay": kindPage,
	"alipay.trade.wap.pay":  kindWap,
	"alipay.trade.app.pay":  kindApp,
}

func (s *Sandbox) apiMethods() map[string]methodFunc {
	return map[string]methodFunc{
		"alipay.trade.precreate":                         s.tradePrecreate,
		"alipay.trade.create":                            s.tradeCreate,
		"alipay.trade.query":                             s.tradeQuery,
		"alipay.trade.close":                             s.tradeClose,
		"alipay.trade.refund":                            s.tradeRefund,
		"alipay.trade.fastpay.refund.query":              s.tradeRefundQuery,
		"alipay.data.dataservice.bill.downloadurl.query": s.billDownloadURLQuery,
		"alipay.system.oauth.token":                      s.systemOauthToken,
	}
}

// errorResponseMethods answer their failures in error_response, as Alipay does for the token
// exchange; every other method keeps failures inside its own signed node.
var errorResponseMethods = map[string]bool{"alipay.system.oauth.token": true}

// handleGateway serves /gateway.do for GET and POST.
func (s *Sandbox) handleGateway(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	params, parseErr := readParams(w, r)
	method := params.Get("method")
	kind, isPage := pageMethods[method]
	fn, isAPI := s.methods[method]

	if s.faults != nil && s.faults.API(ctx) {
		switch {
		case isPage:
			s.writeCashierError(w, errSystem())
		case isAPI:
			s.writeNode(w, method, errSystem())
		default:
			s.writeNode(w, "", errSystem())
		}
		return
	}
	switch {
	case method == "":
		s.writeNode(w, "", errMissing("isv.missing-method", "缺少方法名参数"))
		return
	case !isPage && !isAPI:
		s.writeNode(w, "", errInvalidMethodName())
		return
	}
	req, apiErr := s.verifyRequest(method, params, parseErr)
	if apiErr == nil && isPage {
		s.serveCashierRequest(ctx, w, kind, req)
		return
	}
	if apiErr != nil {
		if isPage {
			s.writeCashierError(w, apiErr)
			return
		}
		s.writeNode(w, method, apiErr)
		return
	}
	node, apiErr := fn(ctx, req)
	if apiErr != nil {
		if errorResponseMethods[method] {
			s.writeNode(w, "", apiErr)
			return
		}
		s.writeNode(w, method, apiErr)
		return
	}
	s.writeNode(w, method, node)
}

// readParams merges the URL query and the form body (url-encoded or multipart), as Alipay's gateway
// reads them: the Node SDK puts the common parameters in the query and biz_content in the body.
func readParams(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBytes)
	var err error
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		err = r.ParseMultipartForm(maxRequestBytes)
	} else {
		err = r.ParseForm()
	}
	if r.Form == nil {
		r.Form = url.Values{}
	}
	return r.Form, err
}

// verifyRequest checks the common parameters and the signature, in the order Alipay reports them.
func (s *Sandbox) verifyRequest(method string, p url.Values, parseErr error) (*gatewayRequest, *apiError) {
	if parseErr != nil {
		return nil, errInvalidParameter("请求参数格式错误")
	}
	for k, vs := range p {
		if !utf8.ValidString(k) {
			return nil, errInvalid("isv.invalid-charset", "参数不是合法的utf-8编码")
		}
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return nil, errInvalid("isv.invalid-charset", "参数不是合法的utf-8编码")
			}
		}
	}
	if cs := p.Get("charset"); cs != "" && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return nil, errInvalid("isv.invalid-charset", "字符集错误")
	}
	if p.Get("app_id") == "" {
		return nil, errMissing("isv.missing-app-id", "缺少AppID参数")
	}
	if p.Get("sign_type") == "" {
		return nil, errMissing("isv.missing-signature-type", "缺少签名类型参数")
	}
	if p.Get("sign_type") != "RSA2" {
		return nil, errInvalid("isv.invalid-signature-type", "无效的签名类型")
	}
	if p.Get("sign") == "" {
		return nil, errMissing("isv.missing-signature", "缺少签名参数")
	}
	ts := p.Get("timestamp")
	if ts == "" {
		return nil, errMissing("isv.missing-timestamp", "缺少时间戳参数")
	}
	if _, err := time.ParseInLocation(alipayTime, ts, shanghai); err != nil {
		return nil, errInvalid("isv.invalid-timestamp", "非法的时间戳参数")
	}
	if p.Get("version") == "" {
		return nil, errMissing("isv.missing-version", "缺少版本参数")
	}
	if p.Get("app_id") != s.app.id {
		return nil, errInvalid("isv.invalid-app-id", "无效的AppID参数")
	}
	candidates := requestSignCandidates(p)
	verified := false
	for _, c := range candidates {
		if verifyRSA2(s.app.appPublic, c, p.Get("sign")) == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, errInvalid("isv.invalid-signature",
			"验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为："+candidates[0])
	}
	if p.Get("encrypt_type") != "" {
		return nil, errInvalid("isv.missing-encrypt-key", "应用未配置对应加密密钥")
	}
	biz, err := parseBizContent(p.Get("biz_content"))
	if err != nil {
		return nil, errInvalidParameter("参数biz_content不是合法的JSON对象")
	}
	return &gatewayRequest{method: method, params: p, biz: biz}, nil
}

// nodeName is the JSON key of a method's answer: dots become underscores, plus "_response".
func nodeName(method string) string { return strings.ReplaceAll(method, ".", "_") + "_response" }

// writeNode answers with {"<node>":{...},"sign":"…"}; an empty method answers error_response. The
// signature covers exactly the node's bytes as written, and "sign" comes after the node, where the
// Node SDK looks for it. Alipay always answers HTTP 200.
func (s *Sandbox) writeNode(w http.ResponseWriter, method string, node any) {
	name := "error_response"
	if method != "" {
		name = nodeName(method)
	}
	if e, ok := node.(*apiError); ok {
		node = e // the error itself is the node: code, msg, sub_code, sub_msg
	}
	raw, err := marshalNode(node)
	if err != nil {
		s.log.Error("alipay sandbox: encode response", "method", method, "err", err)
		raw, _ = marshalNode(errSystem())
	}
	sig, err := signRSA2(s.app.alipayKey, raw)
	if err != nil {
		s.log.Error("alipay sandbox: sign response", "method", method, "err", err)
	}
	var b bytes.Buffer
	b.Grow(len(raw) + len(name) + len(sig) + 20)
	b.WriteString(`{"`)
	b.WriteString(name)
	b.WriteString(`":`)
	b.Write(raw)
	b.WriteString(`,"sign":"`)
	b.WriteString(sig)
	b.WriteString(`"}`)
	w.Header().Set("Content-Type", "text/html;charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b.Bytes())
}

// marshalNode encodes a node without HTML escaping (Alipay writes & < > raw) and without the
// encoder's trailing newline. encoding/json never writes `\/`.
func marshalNode(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("alipay sandbox: encode node: %w", err)
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// bizContent is the decoded biz_content object with its values still raw.
type bizContent map[string]json.RawMessage

var errBizNotObject = errors.New("alipay sandbox: biz_content is not a JSON object")

func parseBizContent(s string) (bizContent, error) {
	if strings.TrimSpace(s) == "" {
		return bizContent{}, nil
	}
	var b bizContent
	if err := json.Unmarshal([]byte(s), &b); err != nil || b == nil {
		return nil, errBizNotObject
	}
	return b, nil
}

// bizReader reads text fields of biz_content, keeping the first error so a method reads all its
// fields and checks once.
type bizReader struct {
	b   bizContent
	err *apiError
}

// str returns a field as text: a JSON string, or a number's literal (clients send amounts both
// ways); absent and null are "". Anything else is an invalid parameter.
func (r *bizReader) str(key string) string {
	raw, ok := r.b[key]
	if !ok || r.err != nil {
		return ""
	}
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return ""
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			r.err = errInvalidParameter("参数" + key + "格式错误")
			return ""
		}
		return s
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		return string(raw)
	default:
		r.err = errInvalidParameter("参数" + key + "格式错误")
		return ""
	}
}

// required is str that also insists on a value.
func (r *bizReader) required(key string) string {
	v := r.str(key)
	if v == "" && r.err == nil {
		r.err = errMissingParameter("缺少必选参数" + key)
	}
	return v
}

// checkText bounds a free-text field and refuses control characters.
func (r *bizReader) checkText(key, v string, maxRunes int) {
	if r.err != nil {
		return
	}
	if utf8.RuneCountInString(v) > maxRunes {
		r.err = errInvalidBizParam("参数" + key + "长度超过限制")
		return
	}
	for _, c := range v {
		if c < 0x20 || c == 0x7f {
			r.err = errInvalidBizParam("参数" + key + "包含非法字符")
			return
		}
	}
}

// checkOutNo bounds a merchant number (out_trade_no, out_request_no): 1–64 printable ASCII without spaces.
func (r *bizReader) checkOutNo(key, v string) {
	if r.err != nil || v == "" {
		return
	}
	if len(v) > 64 {
		r.err = errInvalidBizParam("参数" + key + "长度超过64位")
		return
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= 0x20 || v[i] >= 0x7f {
			r.err = errInvalidBizParam("参数" + key + "包含非法字符")
			return
		}
	}
}
