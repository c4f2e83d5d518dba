package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestBooksAndReadsBalances(t *testing.T) {
	h := newLedger().handler()
	for _, body := range []string{
		`{"id":"o1","customer":"ann","currency":"EUR","items":[{"sku":"mug","quantity":2,"unit_cents":450}]}`,
		`{"id":"o2","customer":"ann","currency":"EUR","items":[{"sku":"tea","quantity":1,"unit_cents":325}]}`,
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/entries", strings.NewReader(body)))
		if rec.Code != http.StatusCreated {
			t.Fatalf("POST /entries: %d %s", rec.Code, rec.Body)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/balance?customer=ann&currency=EUR", nil))
	if !strings.Contains(rec.Body.String(), `"balance":"12.25 EUR"`) {
		t.Errorf("GET /balance: %s", rec.Body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/entries", strings.NewReader(`{"id":"o3","customer":"","currency":"EUR","items":[]}`)))
	if rec.Code != http.StatusUnprocessableEntity {
		t.Errorf("an order without customer: %d %s", rec.Code, rec.Body)
	}
}
