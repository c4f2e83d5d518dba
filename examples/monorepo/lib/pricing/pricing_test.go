package pricing

import (
	"testing"

	"example.com/monorepo/schema"
)

func TestTotal(t *testing.T) {
	o := schema.Order{ID: "o1", Customer: "ann", Currency: "EUR", Items: []schema.LineItem{
		{Sku: "mug", Quantity: 2, UnitCents: 450},
		{Sku: "tea", Quantity: 1, UnitCents: 325},
	}}
	got, err := Total(o)
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != "14.70 EUR" { // 12.25 + 20 %
		t.Errorf("Total = %s, want 14.70 EUR", got)
	}
}

func TestTotalRefusesInvalidOrders(t *testing.T) {
	for name, o := range map[string]schema.Order{
		"no items":      {ID: "o2", Customer: "bob", Currency: "EUR"},
		"no customer":   {ID: "o3", Currency: "EUR", Items: []schema.LineItem{{Sku: "a", Quantity: 1}}},
		"negative item": {ID: "o4", Customer: "c", Currency: "EUR", Items: []schema.LineItem{{Sku: "a", Quantity: -1}}},
	} {
		if _, err := Total(o); err == nil {
			t.Errorf("%s: Total succeeded", name)
		}
	}
}
