package payment

import "fmt"

// Money is always an integer count of minor units (fen for CNY) with its currency; never a float.

// Currencies Hutong accepts. Both wallets settle domestic payments in CNY.
var Currencies = map[string]bool{"CNY": true}

// MaxAmount is the largest single payment accepted: 100,000,000.00 CNY, above every wallet limit.
const MaxAmount int64 = 100_000_000_00

// CheckAmount validates an amount in minor units for parameter param.
func CheckAmount(param string, amount int64) error {
	if amount <= 0 {
		return InvalidParam(param, "%s must be a positive integer number of minor units", param)
	}
	if amount > MaxAmount {
		return InvalidParam(param, "%s must be at most %d", param, MaxAmount)
	}
	return nil
}

// CheckCurrency validates a currency code.
func CheckCurrency(param, currency string) error {
	if !Currencies[currency] {
		return InvalidParam(param, "currency %q is not supported; use CNY", currency)
	}
	return nil
}

// FormatYuan renders fen as a yuan decimal with two places, e.g. 1 → "0.01".
func FormatYuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s%d.%02d", sign, fen/100, fen%100)
}
