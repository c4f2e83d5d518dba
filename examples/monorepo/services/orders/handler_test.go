package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestOrders(t *testing.T) {
	srv := httptest.NewServer(newHandler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/orders", "application/json", strings.NewReader(
		`{"id":"o1","customer":"ann","currency":"EUR","items":[{"sku":"mug","quantity":2,"unit_cents":450}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusCreated || !strings.Contains(string(b), `"total":"10.80 EUR"`) {
		t.Errorf("POST /orders: %d %s", resp.StatusCode, b)
	}
}

func TestOrdersRefusesInvalid(t *testing.T) {
	rec := httptest.NewRecorder()
	newHandler().ServeHTTP(rec, httptest.NewRequest("POST", "/orders", strings.NewReader(`{"id":"o1","currency":"EUR","items":[]}`)))
	if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), "Order.customer: required") {
		t.Errorf("got %d %s", rec.Code, rec.Body)
	}
}

func TestServesTheFrontEnd(t *testing.T) {
	for path, want := range map[string]string{"/": `<script src="/app.js">`, "/app.js": "function formatCents"} {
		rec := httptest.NewRecorder()
		newHandler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("GET %s: %d, want a body with %q", path, rec.Code, want)
		}
	}
}
