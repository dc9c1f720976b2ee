package wechatpay

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// retrySchedule is WeChat Pay's: after the first attempt, retries at these intervals (about 24h4m in all).
var retrySchedule = []time.Duration{
	15 * time.Second, 15 * time.Second, 30 * time.Second, 3 * time.Minute, 10 * time.Minute, 20 * time.Minute,
	30 * time.Minute, 30 * time.Minute, 30 * time.Minute, 60 * time.Minute, 3 * time.Hour, 3 * time.Hour, 3 * time.Hour,
	6 * time.Hour, 6 * time.Hour,
}

// event is what the sandbox hands to the notification sender: the notification before encryption
// and signing, which happen afresh at every attempt (Render).
type event struct {
	ID           string          `json:"id"`
	CreateTime   string          `json:"create_time"`
	EventType    string          `json:"event_type"`
	Summary      string          `json:"summary"`
	OriginalType string          `json:"original_type"`
	Plaintext    json.RawMessage `json:"plaintext"`
}

// notificationBody is what WeChat POSTs to notify_url.
type notificationBody struct {
	ID           string               `json:"id"`
	CreateTime   string               `json:"create_time"`
	ResourceType string               `json:"resource_type"`
	EventType    string               `json:"event_type"`
	Summary      string               `json:"summary"`
	Resource     notificationResource `json:"resource"`
}

type notificationResource struct {
	OriginalType   string `json:"original_type"`
	Algorithm      string `json:"algorithm"`
	Ciphertext     string `json:"ciphertext"`
	AssociatedData string `json:"associated_data"`
	Nonce          string `json:"nonce"`
}

// wallet tells notify.Sender how WeChat Pay notifications look on the wire.
type wallet struct{ s *Sandbox }

func (wallet) Schedule() []time.Duration { return slices.Clone(retrySchedule) }

// Acknowledged: WeChat goes by the status alone; any 2xx is received.
func (wallet) Acknowledged(status int, _ []byte) bool { return status >= 200 && status < 300 }

// Render encrypts the event's resource with the APIv3 key and signs the body with the key the merchant's
// notification setting names. A forged probe carries a signature over something else.
func (w wallet) Render(payload []byte, forged bool) (http.Header, []byte, error) {
	s := w.s
	var ev event
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, nil, fmt.Errorf("wechatpay sandbox: decode event: %w", err)
	}
	nonce := randomString(alnum, 12)
	ciphertext, err := encryptResource(s.keys.doc.APIv3Key, nonce, ev.OriginalType, ev.Plaintext)
	if err != nil {
		return nil, nil, err
	}
	body, err := marshalJSON(notificationBody{
		ID: ev.ID, CreateTime: ev.CreateTime, ResourceType: "encrypt-resource", EventType: ev.EventType, Summary: ev.Summary,
		Resource: notificationResource{
			OriginalType: ev.OriginalType, Algorithm: "AEAD_AES_256_GCM", Ciphertext: ciphertext,
			AssociatedData: ev.OriginalType, Nonce: nonce,
		},
	})
	if err != nil {
		return nil, nil, err
	}
	key := s.keys.publicKey
	if s.signingMode() == signingCert {
		key = s.keys.newestCert().signingKey
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Request-ID", newRequestID())
	signed := body
	if forged {
		signed = append(slices.Clone(body), " "...) // a valid signature, but not over this body
	}
	if err := s.signHeaders(h, key, signed); err != nil {
		return nil, nil, err
	}
	return h, body, nil
}

// encryptResource seals plaintext with AEAD_AES_256_GCM: key = APIv3 key, nonce = the 12-byte string, AAD = associated.
func encryptResource(apiV3Key, nonce, associated string, plaintext []byte) (string, error) {
	block, err := aes.NewCipher([]byte(apiV3Key))
	if err != nil {
		return "", fmt.Errorf("wechatpay sandbox: apiv3 key: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return "", fmt.Errorf("wechatpay sandbox: gcm: %w", err)
	}
	return base64.StdEncoding.EncodeToString(gcm.Seal(nil, []byte(nonce), plaintext, []byte(associated))), nil
}

// notifyTransaction hands TRANSACTION.SUCCESS for a paid order to the sender and records that it did.
func (s *Sandbox) notifyTransaction(ctx context.Context, o *order) error {
	plain, err := marshalJSON(o.transaction(stateSuccess))
	if err != nil {
		return err
	}
	ev := event{ID: o.EventID, CreateTime: formatTime(o.SuccessAt), EventType: "TRANSACTION.SUCCESS", Summary: "支付成功",
		OriginalType: "transaction", Plaintext: plain}
	if err := s.enqueue(ctx, ev, o.NotifyURL); err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `UPDATE wx_orders SET notified = 1 WHERE mchid = ? AND out_trade_no = ?`, o.MchID, o.OutTradeNo)
	if err != nil {
		return fmt.Errorf("wechatpay sandbox: mark order notified: %w", err)
	}
	return nil
}

// refundNotice is the REFUND.* plaintext.
type refundNotice struct {
	MchID               string             `json:"mchid"`
	TransactionID       string             `json:"transaction_id"`
	OutTradeNo          string             `json:"out_trade_no"`
	RefundID            string             `json:"refund_id"`
	OutRefundNo         string             `json:"out_refund_no"`
	RefundStatus        string             `json:"refund_status"`
	SuccessTime         string             `json:"success_time,omitempty"`
	UserReceivedAccount string             `json:"user_received_account"`
	Amount              refundNoticeAmount `json:"amount"`
}

type refundNoticeAmount struct {
	Total       int64 `json:"total"`
	Refund      int64 `json:"refund"`
	PayerTotal  int64 `json:"payer_total"`
	PayerRefund int64 `json:"payer_refund"`
}

func (s *Sandbox) notifyRefund(ctx context.Context, rf *refund) error {
	notice := refundNotice{
		MchID: rf.MchID, TransactionID: rf.TransactionID, OutTradeNo: rf.OutTradeNo, RefundID: rf.RefundID,
		OutRefundNo: rf.OutRefundNo, RefundStatus: rf.Status, UserReceivedAccount: userReceivedAccount,
		Amount: refundNoticeAmount{Total: rf.Total, Refund: rf.Amount, PayerTotal: rf.Total, PayerRefund: rf.Amount},
	}
	settledAt := rf.DueAt // ABNORMAL and CLOSED have no success_time
	if !rf.SuccessAt.IsZero() {
		notice.SuccessTime, settledAt = formatTime(rf.SuccessAt), rf.SuccessAt
	}
	plain, err := marshalJSON(notice)
	if err != nil {
		return err
	}
	ev := event{ID: rf.EventID, CreateTime: formatTime(settledAt), EventType: "REFUND." + rf.Status, Summary: refundSummary[rf.Status],
		OriginalType: "refund", Plaintext: plain}
	if err := s.enqueue(ctx, ev, rf.NotifyURL); err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `UPDATE wx_refunds SET notified = 1 WHERE mchid = ? AND out_refund_no = ?`, rf.MchID, rf.OutRefundNo)
	if err != nil {
		return fmt.Errorf("wechatpay sandbox: mark refund notified: %w", err)
	}
	return nil
}

func (s *Sandbox) enqueue(ctx context.Context, ev event, url string) error {
	payload, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("wechatpay sandbox: encode event: %w", err)
	}
	return s.sender.Enqueue(ctx, walletName, ev.ID, url, payload)
}

// resume finishes what a previous run left: refunds that came due while it was down succeed, refunds
// still processing get their timers back, and events recorded but not handed to the sender are handed
// over (the sender ignores an id it already has).
func (s *Sandbox) resume(ctx context.Context) error {
	s.settleDueRefunds(ctx)
	var orders []*order
	rows, err := s.db.QueryContext(ctx, `SELECT `+orderCols+` FROM wx_orders WHERE event_id IS NOT NULL AND notified = 0`)
	if err != nil {
		return fmt.Errorf("wechatpay sandbox: resume orders: %w", err)
	}
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			rows.Close()
			return err
		}
		orders = append(orders, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("wechatpay sandbox: resume orders: %w", err)
	}
	for _, o := range orders {
		if err := s.notifyTransaction(ctx, o); err != nil {
			return err
		}
	}
	var refunds []*refund
	rows, err = s.db.QueryContext(ctx, `SELECT `+refundCols+` FROM wx_refunds WHERE (event_id IS NOT NULL AND notified = 0) OR status = ?`, refundProcessing)
	if err != nil {
		return fmt.Errorf("wechatpay sandbox: resume refunds: %w", err)
	}
	for rows.Next() {
		rf, err := scanRefund(rows)
		if err != nil {
			rows.Close()
			return err
		}
		refunds = append(refunds, rf)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("wechatpay sandbox: resume refunds: %w", err)
	}
	for _, rf := range refunds {
		if rf.Status == refundProcessing {
			s.scheduleSettle(rf.DueAt)
			continue
		}
		if err := s.notifyRefund(ctx, rf); err != nil {
			return err
		}
	}
	return nil
}
