package money

import "testing"

func TestString(t *testing.T) {
	for _, tt := range []struct {
		a    Amount
		want string
	}{
		{Amount{1234, "EUR"}, "12.34 EUR"},
		{Amount{5, "USD"}, "0.05 USD"},
		{Amount{-50, "EUR"}, "-0.50 EUR"},
	} {
		if got := tt.a.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.a, got, tt.want)
		}
	}
}

func TestAdd(t *testing.T) {
	sum, err := Add(Amount{150, "EUR"}, Amount{275, "EUR"})
	if err != nil || sum != (Amount{425, "EUR"}) {
		t.Errorf("Add = %v, %v", sum, err)
	}
	if _, err := Add(Amount{1, "EUR"}, Amount{1, "USD"}); err == nil {
		t.Error("adding EUR and USD succeeded")
	}
}

func TestParse(t *testing.T) {
	a, err := Parse("12.34 EUR")
	if err != nil || a != (Amount{1234, "EUR"}) {
		t.Errorf("Parse = %v, %v", a, err)
	}
	for _, bad := range []string{"12 EUR", "1.2.3 EUR", "x.00 EUR", ""} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}
