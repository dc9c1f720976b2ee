package alipay

import (
	"context"
	"errors"
	"fmt"
)

// The payer's side of a trade: scanning a QR code, paying, declining. These back both the cashier
// pages and the /sandbox/alipay/trades/{out_trade_no}/… control endpoints.

// Payer-side outcomes, mapped to HTTP statuses by the control endpoints.
var (
	errPayerUnknown       = errors.New("unknown trade")
	errPayerTradePaid     = errors.New("trade already paid")
	errPayerTradeClosed   = errors.New("trade closed or expired")
	errPayerBuyerMismatch = errors.New("trade is reserved for another buyer")
)

// payerTrade loads a trade for a payer action by out_trade_no (or trade_no, from the cashier) and
// applies expiry.
func (s *Sandbox) payerTrade(ctx context.Context, q querier, outTradeNo, tradeNo string) (*trade, error) {
	t, err := loadTrade(ctx, q, s.app.id, outTradeNo, tradeNo)
	if errors.Is(err, errTradeNotFound) {
		return nil, errPayerUnknown
	}
	if err != nil {
		return nil, err
	}
	if err := s.expireIfDue(ctx, q, t); err != nil {
		return nil, err
	}
	return t, nil
}

// chooseBuyer settles who pays: the buyer the trade was created for, the one the payer names, or
// the sandbox's default buyer.
func (s *Sandbox) chooseBuyer(ctx context.Context, q querier, t *trade, buyerID string) error {
	switch {
	case buyerID != "" && t.BuyerID != "" && buyerID != t.BuyerID:
		return errPayerBuyerMismatch
	case t.BuyerID != "":
		return nil
	case buyerID == "":
		buyerID = s.app.defaultBuyer
	}
	if _, err := ensureUser(ctx, q, buyerID, s.now().UnixMilli()); err != nil {
		return err
	}
	t.BuyerID = buyerID
	return nil
}

// pay makes the payer pay the trade (scanning a QR trade first) and sends the TRADE_SUCCESS notification.
func (s *Sandbox) pay(ctx context.Context, outTradeNo, tradeNo, buyerID string) (*trade, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("alipay sandbox: pay: %w", err)
	}
	defer tx.Rollback()
	t, err := s.payerTrade(ctx, tx, outTradeNo, tradeNo)
	if err != nil {
		return nil, err
	}
	switch t.Status {
	case statusSuccess:
		return t, errPayerTradePaid
	case statusClosed:
		_ = tx.Commit() // keep the expiry
		return t, errPayerTradeClosed
	}
	if err := s.chooseBuyer(ctx, tx, t, buyerID); err != nil {
		return t, err
	}
	t.Status, t.Scanned, t.PaidAt = statusSuccess, true, s.now().UnixMilli()
	if err := saveTrade(ctx, tx, t); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("alipay sandbox: pay: %w", err)
	}
	s.log.Info("alipay sandbox: trade paid", "out_trade_no", t.OutTradeNo, "trade_no", t.TradeNo)
	if t.NotifyURL != "" {
		s.notifyTrade(ctx, t.NotifyURL, t, nil)
	}
	return t, nil
}

// scan makes the payer scan a QR trade: from then on it exists for the merchant, waiting for payment.
func (s *Sandbox) scan(ctx context.Context, outTradeNo, qrToken, buyerID string) (*trade, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("alipay sandbox: scan: %w", err)
	}
	defer tx.Rollback()
	var t *trade
	if qrToken != "" {
		t, err = loadTradeByQR(ctx, tx, qrToken)
		if errors.Is(err, errTradeNotFound) {
			err = errPayerUnknown
		}
		if err == nil {
			err = s.expireIfDue(ctx, tx, t)
		}
	} else {
		t, err = s.payerTrade(ctx, tx, outTradeNo, "")
	}
	if err != nil {
		return nil, err
	}
	switch t.Status {
	case statusSuccess:
		return t, errPayerTradePaid
	case statusClosed:
		_ = tx.Commit()
		return t, errPayerTradeClosed
	}
	if err := s.chooseBuyer(ctx, tx, t, buyerID); err != nil {
		return t, err
	}
	t.Scanned = true
	if err := saveTrade(ctx, tx, t); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("alipay sandbox: scan: %w", err)
	}
	return t, nil
}

// decline makes the payer refuse: the unpaid trade is closed and, as Alipay reports closures, a
// TRADE_CLOSED notification goes to its notify_url.
func (s *Sandbox) decline(ctx context.Context, outTradeNo, tradeNo string) (*trade, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("alipay sandbox: decline: %w", err)
	}
	defer tx.Rollback()
	t, err := s.payerTrade(ctx, tx, outTradeNo, tradeNo)
	if err != nil {
		return nil, err
	}
	switch t.Status {
	case statusSuccess:
		return t, errPayerTradePaid
	case statusClosed:
		_ = tx.Commit()
		return t, errPayerTradeClosed
	}
	t.Status, t.Scanned, t.ClosedAt = statusClosed, true, s.now().UnixMilli()
	if err := saveTrade(ctx, tx, t); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("alipay sandbox: decline: %w", err)
	}
	if t.NotifyURL != "" {
		s.notifyTrade(ctx, t.NotifyURL, t, nil)
	}
	return t, nil
}
