package gateway

import (
	"context"

	"github.com/hutong-pay/hutong/internal/payment"
)

// Customers tells what the wallets know of a merchant's customers (internal/identity implements
// it), so that a payment for a customer pays as that customer at the chosen wallet.
type Customers interface {
	// CustomerPayer returns the customer's identities at the configured wallets as a payer (empty
	// for a customer without any). An unknown customer is an error naming the parameter "customer".
	CustomerPayer(ctx context.Context, merchantID string, livemode bool, customerID string) (*payment.Payer, error)
}

// withCustomer fills in.Payer with what the wallets know of in's customer, for every wallet, so
// that the checkout can pay inside a wallet without asking the buyer again. What the merchant
// said of the payer wins. Without Customers configured a customer id is kept as a mere label.
func (s *Service) withCustomer(ctx context.Context, merchantID string, in *CreatePaymentParams) error {
	if in.CustomerID == "" || s.customers == nil {
		return nil
	}
	known, err := s.customers.CustomerPayer(ctx, merchantID, in.Livemode, in.CustomerID)
	if err != nil {
		return err
	}
	if known == nil || *known == (payment.Payer{}) {
		return nil
	}
	in.Payer = mergePayer(known, in.Payer)
	return nil
}
