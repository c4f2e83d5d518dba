// Package pricing prices an order: its items plus VAT.
package pricing

import (
	"fmt"

	"example.com/monorepo/lib/money"
	"example.com/monorepo/schema"
)

// VATPercent is the rate applied to every order.
const VATPercent = 20

// Total is what the customer pays for o.
func Total(o schema.Order) (money.Amount, error) {
	if err := o.Validate(); err != nil {
		return money.Amount{}, err
	}
	if len(o.Items) == 0 {
		return money.Amount{}, fmt.Errorf("order %s has no items", o.ID)
	}
	total := money.Amount{Currency: o.Currency}
	for _, it := range o.Items {
		var err error
		total, err = money.Add(total, money.Amount{Cents: it.Quantity * it.UnitCents, Currency: o.Currency})
		if err != nil {
			return money.Amount{}, err
		}
	}
	total.Cents += (total.Cents*VATPercent + 50) / 100 // rounded half up
	return total, nil
}
