package httpx

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealth(t *testing.T) {
	rec := httptest.NewRecorder()
	Health("orders").ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"service":"orders"`) {
		t.Errorf("got %d %s", rec.Code, rec.Body)
	}
}

func TestDecodeJSONRefusesUnknownFields(t *testing.T) {
	var v struct{ A int }
	if err := DecodeJSON(httptest.NewRequest("POST", "/", strings.NewReader(`{"A":1}`)), &v); err != nil || v.A != 1 {
		t.Fatalf("got %v, %v", v, err)
	}
	if err := DecodeJSON(httptest.NewRequest("POST", "/", strings.NewReader(`{"B":1}`)), &v); err == nil {
		t.Error("an unknown field was accepted")
	}
}
