package alipay

// apiError is an Alipay gateway answer other than success, as it appears in a response node.
type apiError struct {
	Code    string `json:"code"`
	Msg     string `json:"msg"`
	SubCode string `json:"sub_code,omitempty"`
	SubMsg  string `json:"sub_msg,omitempty"`
}

func (e *apiError) Error() string { return "alipay: " + e.Code + " " + e.SubCode + ": " + e.SubMsg }

// The public result codes and the msg Alipay pairs with each.
const (
	codeSuccess      = "10000"
	codeUnavailable  = "20000"
	codeMissingParam = "40001"
	codeInvalidParam = "40002"
	codeBusiness     = "40004"
)

var codeMsgs = map[string]string{
	codeSuccess:      "Success",
	codeUnavailable:  "Service Currently Unavailable",
	codeMissingParam: "Missing Required Arguments",
	codeInvalidParam: "Invalid Arguments",
	codeBusiness:     "Business Failed",
}

func newAPIError(code, subCode, subMsg string) *apiError {
	return &apiError{Code: code, Msg: codeMsgs[code], SubCode: subCode, SubMsg: subMsg}
}

// Gateway-level errors (checked before the method runs).
func errMissing(sub, msg string) *apiError { return newAPIError(codeMissingParam, sub, msg) }
func errInvalid(sub, msg string) *apiError { return newAPIError(codeInvalidParam, sub, msg) }

// Business errors, code 40004 with an ACQ.* sub code.
func errBiz(sub, msg string) *apiError { return newAPIError(codeBusiness, sub, msg) }

var (
	errSystem            = func() *apiError { return newAPIError(codeUnavailable, "isp.unknow-error", "系统繁忙") }
	errTradeNotExist     = func() *apiError { return errBiz("ACQ.TRADE_NOT_EXIST", "交易不存在") }
	errTradeHasSuccess   = func() *apiError { return errBiz("ACQ.TRADE_HAS_SUCCESS", "交易已被支付") }
	errTradeHasClose     = func() *apiError { return errBiz("ACQ.TRADE_HAS_CLOSE", "交易已经关闭") }
	errTradeStatusBad    = func() *apiError { return errBiz("ACQ.REASON_TRADE_STATUS_INVALID", "交易状态不合法") }
	errTradeStatusError  = func() *apiError { return errBiz("ACQ.TRADE_STATUS_ERROR", "交易状态不合法") }
	errContextDiffers    = func() *apiError { return errBiz("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改") }
	errRefundTooMuch     = func() *apiError { return errBiz("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限") }
	errRefundDiscordant  = func() *apiError { return errBiz("ACQ.DISCORDANT_REPEAT_REQUEST", "不一致的请求") }
	errRefundAmountBad   = func() *apiError { return errBiz("ACQ.REASON_TRADE_REFUND_FEE_ERR", "退款金额无效") }
	errBuyerNotExist     = func() *apiError { return errBiz("ACQ.BUYER_NOT_EXIST", "买家不存在") }
	errInvalidBizParam   = func(msg string) *apiError { return errBiz("ACQ.INVALID_PARAMETER", msg) }
	errInvalidParameter  = func(msg string) *apiError { return errInvalid("isv.invalid-parameter", msg) }
	errMissingParameter  = func(msg string) *apiError { return errMissing("isv.missing-parameter", msg) }
	errBillNotExist      = func() *apiError { return errBiz("isp.bill_not_exist", "账单不存在") }
	errCodeInvalid       = func() *apiError { return errInvalid("isv.code-invalid", "授权码code无效") }
	errRefreshInvalid    = func() *apiError { return errInvalid("isv.refresh-token-invalid", "刷新令牌refresh_token无效") }
	errGrantTypeInvalid  = func() *apiError { return errInvalid("isv.grant-type-invalid", "grant_type参数不正确") }
	errInvalidMethodName = func() *apiError { return errInvalid("isv.invalid-method", "不存在的方法名") }
)
