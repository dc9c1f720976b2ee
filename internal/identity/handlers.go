package identity

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/hutong-pay/hutong/internal/payment"
	"github.com/hutong-pay/hutong/internal/reqbody"
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
	if err := reqbody.Read(w, r, maxBody, map[string]reqbody.Param{
		"provider": {Dst: &in.Provider, Want: "a string"},
		"code":     {Dst: &in.Code, Want: "a string"},
		"customer": {Dst: &in.Customer, Want: "a string"},
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
