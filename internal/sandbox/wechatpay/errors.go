package wechatpay

import (
	"fmt"
	"net/http"
	"strings"
)

// apiError is an error answer in WeChat Pay's shape: {"code","message","detail"?}.
// Handlers return it; anything else that goes wrong becomes SYSTEM_ERROR and is logged.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

func (e *apiError) Error() string {
	return fmt.Sprintf("wechatpay sandbox: %d %s: %s", e.Status, e.Code, e.Message)
}

func newAPIError(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// paramError names the offending field the way WeChat does (a JSON pointer into the input).
func paramError(location, field, format string, args ...any) *apiError {
	ptr := "/" + location + "/" + strings.ReplaceAll(field, ".", "/")
	return &apiError{
		Status:  http.StatusBadRequest,
		Code:    "PARAM_ERROR",
		Message: fmt.Sprintf("输入源“%s”映射到字段“%s”校验失败：%s", ptr, field, fmt.Sprintf(format, args...)),
		Detail:  map[string]string{"location": location, "field": ptr},
	}
}

func signError(format string, args ...any) *apiError {
	return newAPIError(http.StatusUnauthorized, "SIGN_ERROR", format, args...)
}

func invalidRequest(format string, args ...any) *apiError {
	return newAPIError(http.StatusBadRequest, "INVALID_REQUEST", format, args...)
}

var (
	errSystem        = &apiError{Status: http.StatusInternalServerError, Code: "SYSTEM_ERROR", Message: "系统错误"}
	errOrderNotExist = &apiError{Status: http.StatusNotFound, Code: "ORDER_NOT_EXIST", Message: "订单不存在"}
	errOrderPaid     = &apiError{Status: http.StatusBadRequest, Code: "ORDERPAID", Message: "订单已支付"}
	errOrderClosed   = &apiError{Status: http.StatusBadRequest, Code: "ORDER_CLOSED", Message: "订单已关闭"}
	errOutTradeNo    = &apiError{Status: http.StatusBadRequest, Code: "OUT_TRADE_NO_USED", Message: "商户订单号重复"}
	errRefundMissing = &apiError{Status: http.StatusNotFound, Code: "RESOURCE_NOT_EXISTS", Message: "退款单不存在"}
	errTradeMissing  = &apiError{Status: http.StatusNotFound, Code: "RESOURCE_NOT_EXISTS", Message: "订单不存在"}
	errNotFound      = &apiError{Status: http.StatusNotFound, Code: "NOT_FOUND", Message: "请求的资源不存在"}
)
