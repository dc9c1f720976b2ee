package httpapi

import (
	_ "embed"
	"net/http"
)

// openAPIDoc describes the API; tests check it against the route table and real responses.
//
//go:embed openapi.json
var openAPIDoc []byte

func (a *api) serveOpenAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(openAPIDoc)
	return nil
}
