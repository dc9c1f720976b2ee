package alipay

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// The payer and control endpoints under /sandbox/alipay: they act as the buyer (scan, pay,
// decline) and let tests look at a trade. They answer JSON with plain HTTP statuses: 2xx done,
// 404 unknown trade, 409 the trade cannot take the action.

type payerBody struct {
	AppID   string `json:"app_id"`
	BuyerID string `json:"buyer_id"`
}

type tradeView struct {
	TradeNo      string `json:"trade_no"`
	OutTradeNo   string `json:"out_trade_no"`
	Kind         string `json:"kind"`
	TradeStatus  string `json:"trade_status"`
	Scanned      bool   `json:"scanned"`
	TotalAmount  string `json:"total_amount"`
	RefundAmount string `json:"refund_amount"`
	BuyerID      string `json:"buyer_id,omitempty"`
	QRCode       string `json:"qr_code,omitempty"`
	CreatedAt    string `json:"created_at"`
	ExpiresAt    string `json:"expires_at"`
	PaidAt       string `json:"paid_at,omitempty"`
	ClosedAt     string `json:"closed_at,omitempty"`
}

func (s *Sandbox) viewOf(t *trade) tradeView {
	v := tradeView{
		TradeNo: t.TradeNo, OutTradeNo: t.OutTradeNo, Kind: t.Kind, TradeStatus: t.Status, Scanned: t.Scanned,
		TotalAmount: formatYuan(t.TotalFen), RefundAmount: formatYuan(t.RefundedFen), BuyerID: t.BuyerID,
		CreatedAt: timeText(fromMillis(t.CreatedAt)), ExpiresAt: timeText(fromMillis(t.ExpiresAt)),
	}
	if t.QRToken != "" {
		v.QRCode = s.qrURL(t)
	}
	if t.PaidAt != 0 {
		v.PaidAt = timeText(fromMillis(t.PaidAt))
	}
	if t.ClosedAt != 0 {
		v.ClosedAt = timeText(fromMillis(t.ClosedAt))
	}
	return v
}

// readPayerBody reads the optional JSON body; an app_id other than the sandbox's names no trade here.
func (s *Sandbox) readPayerBody(w http.ResponseWriter, r *http.Request) (payerBody, bool) {
	var in payerBody
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, "invalid_body", "body too large or unreadable")
		return in, false
	}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &in); err != nil {
			writeJSONError(w, http.StatusBadRequest, "invalid_body", "body must be a JSON object")
			return in, false
		}
	}
	if in.AppID != "" && in.AppID != s.app.id {
		writeJSONError(w, http.StatusNotFound, "TRADE_NOT_EXIST", "no such trade for this app_id")
		return in, false
	}
	if in.BuyerID != "" && (len(in.BuyerID) > 32 || !isDigits(in.BuyerID)) {
		writeJSONError(w, http.StatusBadRequest, "invalid_buyer_id", "buyer_id must be digits (2088…)")
		return in, false
	}
	return in, true
}

func (s *Sandbox) handleTradeView(w http.ResponseWriter, r *http.Request) {
	t, err := s.payerTrade(r.Context(), s.db, r.PathValue("out_trade_no"), "")
	if err != nil {
		s.writePayerError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.viewOf(t))
}

// handlePayAction pays the trade as the payer would; a precreated QR trade is scanned and paid at once.
func (s *Sandbox) handlePayAction(w http.ResponseWriter, r *http.Request) {
	in, ok := s.readPayerBody(w, r)
	if !ok {
		return
	}
	t, err := s.pay(r.Context(), r.PathValue("out_trade_no"), "", in.BuyerID)
	if err != nil {
		s.writePayerError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.viewOf(t))
}

func (s *Sandbox) handleDeclineAction(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.readPayerBody(w, r); !ok {
		return
	}
	t, err := s.decline(r.Context(), r.PathValue("out_trade_no"), "")
	if err != nil {
		s.writePayerError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.viewOf(t))
}

// handleScanAction scans a QR trade without paying: it then exists, waiting for the buyer to pay.
func (s *Sandbox) handleScanAction(w http.ResponseWriter, r *http.Request) {
	in, ok := s.readPayerBody(w, r)
	if !ok {
		return
	}
	t, err := s.scan(r.Context(), r.PathValue("out_trade_no"), "", in.BuyerID)
	if err != nil {
		s.writePayerError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.viewOf(t))
}

// payerStatus maps a payer-side outcome to its HTTP status and error code.
func payerStatus(err error) (int, string) {
	switch {
	case errors.Is(err, errPayerUnknown):
		return http.StatusNotFound, "TRADE_NOT_EXIST"
	case errors.Is(err, errPayerTradePaid):
		return http.StatusConflict, "TRADE_HAS_SUCCESS"
	case errors.Is(err, errPayerTradeClosed):
		return http.StatusConflict, "TRADE_HAS_CLOSE"
	case errors.Is(err, errPayerBuyerMismatch):
		return http.StatusConflict, "BUYER_MISMATCH"
	default:
		return http.StatusInternalServerError, "SYSTEM_ERROR"
	}
}

func payerMessage(err error) string {
	if status, _ := payerStatus(err); status == http.StatusInternalServerError {
		return "internal error"
	}
	return err.Error()
}

func (s *Sandbox) writePayerError(w http.ResponseWriter, err error) {
	status, code := payerStatus(err)
	if status == http.StatusInternalServerError {
		s.log.Error("alipay sandbox: payer action", "err", err)
	}
	writeJSONError(w, status, code, payerMessage(err))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeJSONError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": message}})
}
