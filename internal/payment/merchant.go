package payment

import "time"

// Merchant is a seller using Hutong; every object belongs to exactly one.
type Merchant struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// APIKey authenticates a merchant. Only a hash of the secret is kept; the secret is shown once.
type APIKey struct {
	ID         string     `json:"id"`
	MerchantID string     `json:"merchant_id"`
	Livemode   bool       `json:"livemode"`
	Prefix     string     `json:"prefix"` // e.g. "sk_test_ab12", to recognise a key without revealing it
	Hash       []byte     `json:"-"`
	CreatedAt  time.Time  `json:"created_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}
