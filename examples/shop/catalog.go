package shop

import "fmt"

// Product is something the shop sells. Prices are integer fen (1/100 yuan), as Hutong's API takes
// them: never floating point near money.
type Product struct {
	SKU         string
	Name        string
	Description string
	Price       int64 // fen
}

// Catalog is the shop's whole range: three teas.
var Catalog = []Product{
	{SKU: "longjing", Name: "西湖龙井 West Lake Longjing", Description: "Pan-fired green tea from Hangzhou, 50 g.", Price: 6800},
	{SKU: "tieguanyin", Name: "安溪铁观音 Anxi Tieguanyin", Description: "Rolled oolong from Fujian, 100 g.", Price: 4800},
	{SKU: "puer", Name: "云南普洱 Yunnan Pu'er", Description: "Aged pressed cake from Xishuangbanna, 357 g.", Price: 12800},
}

// productBySKU returns the catalogue entry for sku.
func productBySKU(sku string) (Product, bool) {
	for _, p := range Catalog {
		if p.SKU == sku {
			return p, true
		}
	}
	return Product{}, false
}

// FormatFen renders fen as yuan for people: 6800 → "¥68.00".
func FormatFen(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s¥%d.%02d", sign, fen/100, fen%100)
}
