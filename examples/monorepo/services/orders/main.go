// Command orders prices orders and serves the web front end.
package main

import (
	"flag"
	"log"
	"net/http"
	"time"
)

func main() {
	addr := flag.String("addr", ":8080", "listen address")
	flag.Parse()
	srv := &http.Server{Addr: *addr, Handler: newHandler(), ReadHeaderTimeout: 10 * time.Second}
	log.Printf("orders %s listening on %s", Version, *addr)
	log.Fatal(srv.ListenAndServe())
}
