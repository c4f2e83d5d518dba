// Command ledger books what customers were invoiced.
package main

import (
	"flag"
	"log"
	"net/http"
	"time"
)

func main() {
	addr := flag.String("addr", ":8081", "listen address")
	flag.Parse()
	srv := &http.Server{Addr: *addr, Handler: newLedger().handler(), ReadHeaderTimeout: 10 * time.Second}
	log.Printf("ledger listening on %s", *addr)
	log.Fatal(srv.ListenAndServe())
}
