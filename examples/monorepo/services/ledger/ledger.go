package main

import (
	"net/http"
	"sync"

	"example.com/monorepo/lib/httpx"
	"example.com/monorepo/lib/money"
	"example.com/monorepo/schema"
)

// ledger keeps what each customer was invoiced, per currency.
type ledger struct {
	mu       sync.Mutex
	balances map[string]money.Amount // by customer + " " + currency
}

func newLedger() *ledger { return &ledger{balances: map[string]money.Amount{}} }

// handler: POST /entries books an order's items (before tax), GET
// /balance?customer=ann&currency=EUR reads a balance.
func (l *ledger) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", httpx.Health("ledger"))
	mux.HandleFunc("POST /entries", func(w http.ResponseWriter, r *http.Request) {
		var o schema.Order
		if err := httpx.DecodeJSON(r, &o); err != nil {
			httpx.Error(w, http.StatusBadRequest, err.Error())
			return
		}
		if err := o.Validate(); err != nil {
			httpx.Error(w, http.StatusUnprocessableEntity, err.Error())
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		key := o.Customer + " " + o.Currency
		bal := l.balances[key]
		bal.Currency = o.Currency
		for _, it := range o.Items {
			bal, _ = money.Add(bal, money.Amount{Cents: it.Quantity * it.UnitCents, Currency: o.Currency})
		}
		l.balances[key] = bal
		httpx.JSON(w, http.StatusCreated, map[string]string{"customer": o.Customer, "balance": bal.String()})
	})
	mux.HandleFunc("GET /balance", func(w http.ResponseWriter, r *http.Request) {
		c, cur := r.URL.Query().Get("customer"), r.URL.Query().Get("currency")
		l.mu.Lock()
		bal, ok := l.balances[c+" "+cur]
		l.mu.Unlock()
		if !ok {
			bal = money.Amount{Currency: cur}
		}
		httpx.JSON(w, http.StatusOK, map[string]string{"customer": c, "balance": bal.String()})
	})
	return mux
}
