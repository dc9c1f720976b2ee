package payment

import "time"

// RefundStatus is a refund's state: pending → succeeded | failed.
type RefundStatus string

const (
	RefundPending   RefundStatus = "pending"
	RefundSucceeded RefundStatus = "succeeded"
	RefundFailed    RefundStatus = "failed"
)

// RefundRef holds a refund's identifiers at the wallet.
type RefundRef struct {
	OutRefundNo string `json:"out_refund_no,omitempty"` // WeChat out_refund_no / Alipay out_request_no
	RefundID    string `json:"refund_id,omitempty"`     // WeChat refund_id
}

// Refund returns part or all of a succeeded payment. Its JSON form is the API's.
type Refund struct {
	ID             string            `json:"id"`
	Object         string            `json:"object"` // always "refund"
	MerchantID     string            `json:"-"`
	Livemode       bool              `json:"livemode"`
	PaymentID      string            `json:"payment_id"`
	Status         RefundStatus      `json:"status"`
	Amount         int64             `json:"amount"`
	Currency       string            `json:"currency"`
	Reason         string            `json:"reason,omitempty"`
	Provider       Provider          `json:"provider"`
	ProviderRef    RefundRef         `json:"provider_ref"`
	Metadata       map[string]string `json:"metadata"`
	FailureCode    string            `json:"failure_code,omitempty"`
	FailureMessage string            `json:"failure_message,omitempty"`
	CreatedAt      time.Time         `json:"created_at"`
	UpdatedAt      time.Time         `json:"updated_at"`
	SucceededAt    *time.Time        `json:"succeeded_at,omitempty"`
}

// Succeed records that the wallet returned the money; repeating it is harmless.
func (r *Refund) Succeed(at, now time.Time) (changed bool, err error) {
	if r.Status == RefundSucceeded {
		return false, nil
	}
	if r.Status != RefundPending {
		return false, Errorf(Conflict, "refund_state", "refund %s is %s and cannot become succeeded", r.ID, r.Status)
	}
	at = at.UTC()
	r.Status, r.SucceededAt, r.UpdatedAt = RefundSucceeded, &at, now
	return true, nil
}

// Fail records that the wallet refused or abandoned the refund; its amount is refundable again.
func (r *Refund) Fail(code, message string, now time.Time) (changed bool, err error) {
	if r.Status == RefundFailed {
		return false, nil
	}
	if r.Status != RefundPending {
		return false, Errorf(Conflict, "refund_state", "refund %s is %s and cannot become failed", r.ID, r.Status)
	}
	r.Status, r.FailureCode, r.FailureMessage, r.UpdatedAt = RefundFailed, code, message, now
	return true, nil
}
