package main

import (
	"io/fs"
	"net/http"

	"example.com/monorepo/lib/httpx"
	"example.com/monorepo/lib/pricing"
	"example.com/monorepo/schema"
	"example.com/monorepo/web"
)

// Version is what /healthz and the release note call this build.
const Version = "1.5.0"

// newHandler serves the front end, the health check and POST /orders.
func newHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", httpx.Health("orders "+Version))
	mux.HandleFunc("GET /{$}", static("index.html", "text/html; charset=utf-8"))
	mux.HandleFunc("GET /app.js", static("out/app.js", "text/javascript"))
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		var o schema.Order
		if err := httpx.DecodeJSON(r, &o); err != nil {
			httpx.Error(w, http.StatusBadRequest, err.Error())
			return
		}
		total, err := pricing.Total(o)
		if err != nil {
			httpx.Error(w, http.StatusUnprocessableEntity, err.Error())
			return
		}
		httpx.JSON(w, http.StatusCreated, map[string]string{"id": o.ID, "total": total.String()})
	})
	return mux
}

func static(name, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := fs.ReadFile(web.Files, name)
		if err != nil {
			httpx.Error(w, http.StatusInternalServerError, err.Error())
			return
		}
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write(b)
	}
}
