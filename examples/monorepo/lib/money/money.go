// Package money is amounts in minor units (cents) of one currency.
package money

import (
	"fmt"
	"strconv"
)

// Amount is a number of cents of a currency ("EUR").
type Amount struct {
	Cents    int64
	Currency string
}

// String formats the amount as "12.34 EUR" (or "-0.50 EUR").
func (a Amount) String() string {
	sign, c := "", a.Cents
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, c/100, c%100, a.Currency)
}

// Add returns a + b, which must be of the same currency.
func Add(a, b Amount) (Amount, error) {
	if a.Currency != b.Currency {
		return Amount{}, fmt.Errorf("cannot add %s to %s", b.Currency, a.Currency)
	}
	return Amount{Cents: a.Cents + b.Cents, Currency: a.Currency}, nil
}

// Parse reads "12.34 EUR".
func Parse(s string) (Amount, error) {
	var units, cents, cur string
	if _, err := fmt.Sscanf(s, "%s %s", &units, &cur); err != nil {
		return Amount{}, fmt.Errorf("parsing amount %q: %w", s, err)
	}
	whole, frac, ok := cut(units, '.')
	if !ok || len(frac) != 2 {
		return Amount{}, fmt.Errorf("parsing amount %q: want UNITS.CC CURRENCY", s)
	}
	cents = whole + frac
	n, err := strconv.ParseInt(cents, 10, 64)
	if err != nil {
		return Amount{}, fmt.Errorf("parsing amount %q: %w", s, err)
	}
	return Amount{Cents: n, Currency: cur}, nil
}

func cut(s string, sep byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
