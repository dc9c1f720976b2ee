// Package reqbody decodes the merchant API's JSON request bodies strictly: exact keys, known
// parameters, each once, of the right type, one object and nothing after it. Errors name the
// parameter, as the API's error envelope wants.
package reqbody

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/hutong-pay/hutong/internal/payment"
)

// Param is a request parameter: where to decode it, and its type for error messages.
type Param struct {
	Dst  any
	Want string
}

// Read reads the body (at most max bytes) and decodes it strictly into params.
func Read(w http.ResponseWriter, r *http.Request, max int64, params map[string]Param) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return &payment.Error{Kind: payment.Invalid, Code: "body_too_large", Param: "body",
				Message: fmt.Sprintf("the request body must be at most %d bytes", max)}
		}
		return &payment.Error{Kind: payment.Invalid, Code: "body_unreadable", Param: "body", Message: "the request body could not be read", Err: err}
	}
	return Decode(body, params)
}

// Decode decodes body, one JSON object, into params: keys must match exactly (encoding/json
// alone ignores case), be known and appear once; values must have the parameter's type; nothing
// may follow the object. An empty body means no parameters; null leaves a parameter unset.
func Decode(body []byte, params map[string]Param) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil
	}
	bad := func(msg string) error {
		return &payment.Error{Kind: payment.Invalid, Code: "body_invalid", Param: "body", Message: msg}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return bad("the request body is not valid JSON")
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return bad("the request body must be a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return bad("the request body is not valid JSON")
		}
		key, _ := tok.(string)
		p, known := params[key]
		if !known {
			name := truncate(key, 64)
			if name == "" {
				name = `""`
			}
			return &payment.Error{Kind: payment.Invalid, Code: "parameter_unknown", Param: name,
				Message: fmt.Sprintf("unknown parameter: %s", name)}
		}
		if seen[key] {
			return payment.InvalidParam(key, "%s is given more than once", key)
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return bad("the request body is not valid JSON")
		}
		if err := json.Unmarshal(raw, p.Dst); err != nil {
			return payment.InvalidParam(key, "%s must be %s", key, p.Want)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return bad("the request body is not valid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad("the request body has data after the JSON object")
	}
	return nil
}

// truncate shortens s to at most n bytes for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
