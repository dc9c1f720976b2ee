package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/hutong-pay/hutong/internal/payment"
)

// RegisterAPI mounts the merchant API's customer routes on mux:
//
//	POST /v1/customers/login   {provider, code, customer?} → the customer
//	GET  /v1/customers/{id}    the customer
//
// merchant names the authenticated caller of a request (httpapi.Merchant; ok false answers
// 401); writeErr answers an error through the API's one error table. Mount it with
// httpapi.Config.ExtraAPI, which authenticates every /v1/ route before it runs.
func (s *Service) RegisterAPI(mux *http.ServeMux, merchant func(*http.Request) (merchantID string, livemode bool, ok bool),
	writeErr func(http.ResponseWriter, *http.Request, error)) {
	wrap := func(f func(w http.ResponseWriter, r *http.Request, merchantID string, livemode bool) error) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, live, ok := merchant(r)
			if !ok || id == "" {
				writeErr(w, r, &payment.Error{Kind: payment.Unauthorized, Code: "unauthorized", Message: "a valid API key is required"})
				return
			}
			if err := f(w, r, id, live); err != nil {
				writeErr(w, r, err)
			}
		})
	}
	for _, rt := range s.routes() {
		mux.Handle(rt.pattern, wrap(rt.handler))
	}
}

type route struct {
	pattern string
	handler func(w http.ResponseWriter, r *http.Request, merchantID string, livemode bool) error
}

func (s *Service) routes() []route {
	return []route{
		{"POST /v1/customers/login", s.serveLogin},
		{"GET /v1/customers/{id}", s.serveCustomer},
	}
}

// Routes lists the patterns RegisterAPI mounts, for the API's OpenAPI document and its tests.
func Routes() []string {
	var out []string
	for _, rt := range (&Service{}).routes() {
		out = append(out, rt.pattern)
	}
	return out
}

// LoginRequest is POST /v1/customers/login's body.
type LoginRequest struct {
	Provider string `json:"provider"`           // wechatpay | alipay
	Code     string `json:"code"`               // wx.login's code / my.getAuthCode's auth code
	Customer string `json:"customer,omitempty"` // link the identity to this customer
}

func (s *Service) serveLogin(w http.ResponseWriter, r *http.Request, merchantID string, livemode bool) error {
	var in LoginRequest
	if err := decodeRequest(w, r, map[string]param{
		"provider": {&in.Provider, "a string"},
		"code":     {&in.Code, "a string"},
		"customer": {&in.Customer, "a string"},
	}); err != nil {
		return err
	}
	c, err := s.Login(r.Context(), merchantID, livemode, LoginParams{Provider: payment.Provider(in.Provider), Code: in.Code, CustomerID: in.Customer})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, view(c))
}

func (s *Service) serveCustomer(w http.ResponseWriter, r *http.Request, merchantID string, livemode bool) error {
	c, err := s.Customer(r.Context(), merchantID, livemode, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, view(c))
}

// view is c as the API shows it: identities always a list.
func view(c *Customer) *Customer {
	v := *c
	v.Object = "customer"
	if v.Identities == nil {
		v.Identities = []Identity{}
	}
	return &v
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("identity: encode response: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return nil
}

// maxBody bounds a request body; a login is a provider, a code and a customer id.
const maxBody = 8 << 10

// param is a request parameter: where to decode it, and its type for error messages.
type param struct {
	dst  any
	want string
}

// decodeRequest reads the (size-limited) body and decodes it strictly into params.
func decodeRequest(w http.ResponseWriter, r *http.Request, params map[string]param) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return &payment.Error{Kind: payment.Invalid, Code: "body_too_large", Param: "body",
				Message: fmt.Sprintf("the request body must be at most %d bytes", maxBody)}
		}
		return &payment.Error{Kind: payment.Invalid, Code: "body_unreadable", Param: "body", Message: "the request body could not be read", Err: err}
	}
	return decodeStrict(body, params)
}

// decodeStrict decodes body, one JSON object, into params: keys must match exactly (encoding/json
// alone ignores case), be known and appear once; values must have the parameter's type; nothing
// may follow the object. null leaves a parameter unset.
func decodeStrict(body []byte, params map[string]param) error {
	bad := func(msg string) error {
		return &payment.Error{Kind: payment.Invalid, Code: "body_invalid", Param: "body", Message: msg}
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return bad("the request body must be a JSON object")
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
			return &payment.Error{Kind: payment.Invalid, Code: "parameter_unknown", Param: name, Message: "unknown parameter: " + name}
		}
		if seen[key] {
			return payment.InvalidParam(key, "%s is given more than once", key)
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return bad("the request body is not valid JSON")
		}
		if err := json.Unmarshal(raw, p.dst); err != nil {
			return payment.InvalidParam(key, "%s must be %s", key, p.want)
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
