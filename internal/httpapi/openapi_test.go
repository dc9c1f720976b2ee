package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http/httptest"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/identity"
	"github.com/hutong-pay/hutong/internal/payment"
	"github.com/hutong-pay/hutong/internal/webhook"
)

// documentedRoutes is every route the node serves under the API's authentication: the API's own
// and the webhook routes the node mounts through Config.ExtraAPI.
func documentedRoutes() []route {
	rts := newAPI(Config{}).routes()
	for _, p := range append(webhook.Routes(), identity.Routes()...) {
		rts = append(rts, route{pattern: p, auth: true})
	}
	return rts
}

// openAPI is the embedded document with a validator for the JSON Schema subset it uses:
// type (with type arrays), enum, required, properties, additionalProperties (false or a
// schema), items, oneOf, $ref, format date-time, minimum, maximum, maxLength. Any other keyword
// is an error, so the document cannot drift outside what is checked.
type openAPI struct {
	root  map[string]any
	paths map[string]any
}

func loadOpenAPI(t testing.TB) *openAPI {
	t.Helper()
	var root map[string]any
	dec := json.NewDecoder(bytes.NewReader(openAPIDoc))
	dec.UseNumber()
	if err := dec.Decode(&root); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if root["openapi"] != "3.1.0" {
		t.Fatalf("openapi version %v, want 3.1.0", root["openapi"])
	}
	return &openAPI{root: root, paths: root["paths"].(map[string]any)}
}

// operation finds the documented operation for method and a concrete path.
func (d *openAPI) operation(method, path string) (string, map[string]any) {
	for tmpl, item := range d.paths {
		if !templateMatches(tmpl, path) {
			continue
		}
		if op, ok := item.(map[string]any)[strings.ToLower(method)].(map[string]any); ok {
			return tmpl, op
		}
	}
	return "", nil
}

func templateMatches(tmpl, path string) bool {
	ts, ps := strings.Split(tmpl, "/"), strings.Split(path, "/")
	if len(ts) != len(ps) {
		return false
	}
	for i := range ts {
		if strings.HasPrefix(ts[i], "{") && strings.HasSuffix(ts[i], "}") {
			if ps[i] == "" {
				return false
			}
			continue
		}
		if ts[i] != ps[i] {
			return false
		}
	}
	return true
}

// resolve follows a node's $ref chain.
func (d *openAPI) resolve(node map[string]any) (map[string]any, error) {
	for range 10 {
		ref, ok := node["$ref"].(string)
		if !ok {
			return node, nil
		}
		if !strings.HasPrefix(ref, "#/") {
			return nil, fmt.Errorf("unsupported $ref %q", ref)
		}
		var cur any = d.root
		for _, part := range strings.Split(ref[2:], "/") {
			m, ok := cur.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("dangling $ref %q", ref)
			}
			cur = m[part]
		}
		next, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("dangling $ref %q", ref)
		}
		node = next
	}
	return nil, fmt.Errorf("$ref loop")
}

func (d *openAPI) validateResponse(op map[string]any, status int, contentType string, body []byte) error {
	responses, _ := op["responses"].(map[string]any)
	r, ok := responses[strconv.Itoa(status)].(map[string]any)
	if !ok {
		return fmt.Errorf("status %d is not documented for %v", status, op["operationId"])
	}
	r, err := d.resolve(r)
	if err != nil {
		return err
	}
	content, _ := r["content"].(map[string]any)
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("content type %q: %v", contentType, err)
	}
	media, ok := content[mt].(map[string]any)
	if !ok {
		return fmt.Errorf("content type %s is not documented for status %d", mt, status)
	}
	schema, _ := media["schema"].(map[string]any)
	if mt != "application/json" {
		return nil
	}
	return d.validate(body, schema)
}

func (d *openAPI) validate(body []byte, schema map[string]any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("body is not JSON: %v", err)
	}
	return d.validateValue(v, schema, "$")
}

func (d *openAPI) validateValue(v any, schema map[string]any, at string) error {
	for kw, arg := range schema {
		var err error
		switch kw {
		case "description", "default", "title":
		case "$ref":
			var target map[string]any
			if target, err = d.resolve(map[string]any{"$ref": arg}); err == nil {
				err = d.validateValue(v, target, at)
			}
		case "type":
			err = checkType(v, arg, at)
		case "enum":
			if !slices.ContainsFunc(arg.([]any), func(e any) bool { return reflect.DeepEqual(e, v) }) {
				err = fmt.Errorf("%s: %v is not one of %v", at, v, arg)
			}
		case "required":
			if m, ok := v.(map[string]any); ok {
				for _, k := range arg.([]any) {
					if _, ok := m[k.(string)]; !ok {
						err = fmt.Errorf("%s: required property %s is missing", at, k)
						break
					}
				}
			}
		case "properties":
			if m, ok := v.(map[string]any); ok {
				for k, sub := range arg.(map[string]any) {
					if val, ok := m[k]; ok {
						if err = d.validateValue(val, sub.(map[string]any), at+"."+k); err != nil {
							break
						}
					}
				}
			}
		case "additionalProperties":
			if m, ok := v.(map[string]any); ok {
				props, _ := schema["properties"].(map[string]any)
				for k, val := range m {
					if _, known := props[k]; known {
						continue
					}
					if arg == false {
						err = fmt.Errorf("%s: property %s is not in the schema", at, k)
						break
					}
					if sub, ok := arg.(map[string]any); ok {
						if err = d.validateValue(val, sub, at+"."+k); err != nil {
							break
						}
					}
				}
			}
		case "items":
			if a, ok := v.([]any); ok {
				for i, item := range a {
					if err = d.validateValue(item, arg.(map[string]any), fmt.Sprintf("%s[%d]", at, i)); err != nil {
						break
					}
				}
			}
		case "oneOf":
			matched := 0
			var errs []string
			for _, alt := range arg.([]any) {
				if e := d.validateValue(v, alt.(map[string]any), at); e == nil {
					matched++
				} else {
					errs = append(errs, e.Error())
				}
			}
			if matched != 1 {
				err = fmt.Errorf("%s: matches %d of oneOf, want exactly 1 (%s)", at, matched, strings.Join(errs, "; "))
			}
		case "format":
			if s, ok := v.(string); ok && arg == "date-time" {
				if _, e := time.Parse(time.RFC3339Nano, s); e != nil {
					err = fmt.Errorf("%s: %q is not a date-time", at, s)
				}
			}
		case "minimum", "maximum":
			if n, ok := v.(json.Number); ok {
				x, _ := strconv.ParseFloat(n.String(), 64)
				lim, _ := strconv.ParseFloat(arg.(json.Number).String(), 64)
				if kw == "minimum" && x < lim || kw == "maximum" && x > lim {
					err = fmt.Errorf("%s: %v is outside %s %v", at, n, kw, lim)
				}
			}
		case "maxLength":
			if s, ok := v.(string); ok {
				lim, _ := arg.(json.Number).Int64()
				if int64(len([]rune(s))) > lim {
					err = fmt.Errorf("%s: longer than %d", at, lim)
				}
			}
		default:
			err = fmt.Errorf("%s: schema keyword %q is outside the validated subset", at, kw)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func checkType(v, want any, at string) error {
	var types []string
	switch w := want.(type) {
	case string:
		types = []string{w}
	case []any:
		for _, t := range w {
			types = append(types, t.(string))
		}
	}
	for _, t := range types {
		ok := false
		switch t {
		case "object":
			_, ok = v.(map[string]any)
		case "array":
			_, ok = v.([]any)
		case "string":
			_, ok = v.(string)
		case "boolean":
			_, ok = v.(bool)
		case "null":
			ok = v == nil
		case "number":
			_, ok = v.(json.Number)
		case "integer":
			if n, isNum := v.(json.Number); isNum {
				_, err := strconv.ParseInt(n.String(), 10, 64)
				ok = err == nil
			}
		}
		if ok {
			return nil
		}
	}
	return fmt.Errorf("%s: %v (%T) is not of type %v", at, v, v, want)
}

// TestValidatorRejects makes sure the validator can fail: the document's schemas refuse
// responses that break them.
func TestValidatorRejects(t *testing.T) {
	d := loadOpenAPI(t)
	errSchema := map[string]any{"$ref": "#/components/schemas/Error"}
	paySchema := map[string]any{"$ref": "#/components/schemas/Payment"}
	good := `{"id":"pay_1","object":"payment","livemode":false,"status":"pending","amount":100,"amount_refunded":0,"currency":"CNY",
		"description":"d","reference":"r","provider_ref":{"out_trade_no":"HT1"},"next_action":null,"checkout_url":"https://x/checkout/pay_1",
		"metadata":{},"created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:05.123456Z","expires_at":"2026-01-02T05:04:05Z"}`
	if err := d.validate([]byte(good), paySchema); err != nil {
		t.Fatalf("valid payment rejected: %v", err)
	}
	for name, bad := range map[string]string{
		"extra property":   strings.Replace(good, `"metadata":{}`, `"metadata":{},"secret":"x"`, 1),
		"missing required": strings.Replace(good, `"amount":100,`, ``, 1),
		"wrong enum":       strings.Replace(good, `"pending"`, `"paid"`, 1),
		"float amount":     strings.Replace(good, `"amount":100`, `"amount":1.5`, 1),
		"string amount":    strings.Replace(good, `"amount":100`, `"amount":"100"`, 1),
		"bad time":         strings.Replace(good, `"2026-01-02T03:04:05Z"`, `"yesterday"`, 1),
		"bad next_action":  strings.Replace(good, `"next_action":null`, `"next_action":{"type":"teleport"}`, 1),
		"metadata number":  strings.Replace(good, `"metadata":{}`, `"metadata":{"k":1}`, 1),
	} {
		if err := d.validate([]byte(bad), paySchema); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := d.validate([]byte(`{"error":{"type":"invalid_request_error","code":"x","message":"m"}}`), errSchema); err != nil {
		t.Fatalf("valid error rejected: %v", err)
	}
	if err := d.validate([]byte(`{"error":{"type":"oops","code":"x","message":"m"}}`), errSchema); err == nil {
		t.Fatal("unknown error type accepted")
	}
	if err := d.validateValue("x", map[string]any{"requried": []any{}}, "$"); err == nil {
		t.Fatal("unknown keyword accepted")
	}
}

// TestOpenAPIDocumentsEveryRoute checks the route table against the document, both ways.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	d := loadOpenAPI(t)
	registered := map[string]bool{}
	for _, rt := range documentedRoutes() {
		method, path, _ := strings.Cut(rt.pattern, " ")
		registered[strings.ToLower(method)+" "+path] = true
		item, ok := d.paths[path].(map[string]any)
		if !ok {
			t.Errorf("route %s is not documented", rt.pattern)
			continue
		}
		op, ok := item[strings.ToLower(method)].(map[string]any)
		if !ok {
			t.Errorf("route %s is not documented", rt.pattern)
			continue
		}
		// Path parameters are declared, security matches the route's auth.
		for _, seg := range strings.Split(path, "/") {
			if strings.HasPrefix(seg, "{") {
				name := strings.Trim(seg, "{}")
				found := false
				params, _ := op["parameters"].([]any)
				for _, p := range params {
					p, _ := d.resolve(p.(map[string]any))
					if p["in"] == "path" && p["name"] == name {
						found = true
					}
				}
				if !found {
					t.Errorf("%s: path parameter %s not documented", rt.pattern, name)
				}
			}
		}
		sec, hasSec := op["security"].([]any)
		if documentedAuth := !hasSec || len(sec) > 0; documentedAuth != rt.auth {
			t.Errorf("%s: documented auth %v, route auth %v", rt.pattern, documentedAuth, rt.auth)
		}
		hasKeyParam := false
		params, _ := op["parameters"].([]any)
		for _, p := range params {
			if p.(map[string]any)["$ref"] == "#/components/parameters/IdempotencyKey" {
				hasKeyParam = true
			}
		}
		if hasKeyParam != rt.idempotent {
			t.Errorf("%s: documented Idempotency-Key %v, route honours it %v", rt.pattern, hasKeyParam, rt.idempotent)
		}
	}
	for path, item := range d.paths {
		for method := range item.(map[string]any) {
			if !registered[method+" "+path] {
				t.Errorf("documented %s %s is not a route", strings.ToUpper(method), path)
			}
		}
	}
	if t.Failed() {
		return
	}
	for _, m := range []string{"get", "post"} {
		for path := range d.paths {
			if _, ok := d.paths[path].(map[string]any)[m]; ok && !registered[m+" "+path] {
				t.Errorf("%s %s documented but not registered", m, path)
			}
		}
	}
}

// TestOpenAPISchemasMatchTypes checks that every schema lists exactly the JSON fields of the
// Go type it describes, so a field added to the domain cannot go undocumented.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	d := loadOpenAPI(t)
	schemas := d.root["components"].(map[string]any)["schemas"].(map[string]any)
	for name, typ := range map[string]reflect.Type{
		"Payment":              reflect.TypeFor[payment.Payment](),
		"Refund":               reflect.TypeFor[payment.Refund](),
		"Event":                reflect.TypeFor[payment.Event](),
		"NextAction":           reflect.TypeFor[payment.NextAction](),
		"ProviderRef":          reflect.TypeFor[payment.ProviderRef](),
		"RefundRef":            reflect.TypeFor[payment.RefundRef](),
		"Payer":                reflect.TypeFor[payment.Payer](),
		"CreatePaymentRequest": reflect.TypeFor[createPaymentBody](),
		"CancelPaymentRequest": reflect.TypeFor[cancelPaymentBody](),
		"CreateRefundRequest":  reflect.TypeFor[createRefundBody](),
		"PaymentList":          reflect.TypeFor[list[*payment.Payment]](),
		"EventList":            reflect.TypeFor[list[*payment.Event]](),
		"Error":                reflect.TypeFor[errorEnvelope](),

		"WebhookEndpoint":              reflect.TypeFor[webhook.EndpointView](),
		"WebhookEndpointList":          reflect.TypeFor[webhook.ListView[webhook.EndpointView]](),
		"DeletedWebhookEndpoint":       reflect.TypeFor[webhook.DeletedView](),
		"WebhookAttempt":               reflect.TypeFor[webhook.AttemptView](),
		"WebhookAttemptList":           reflect.TypeFor[webhook.ListView[webhook.AttemptView]](),
		"Redelivery":                   reflect.TypeFor[webhook.RedeliveryView](),
		"CreateWebhookEndpointRequest": reflect.TypeFor[webhook.CreateEndpointRequest](),
		"RedeliverRequest":             reflect.TypeFor[webhook.RedeliverRequest](),

		"Customer":         reflect.TypeFor[identity.Customer](),
		"CustomerIdentity": reflect.TypeFor[identity.Identity](),
		"LoginRequest":     reflect.TypeFor[identity.LoginRequest](),
	} {
		s, ok := schemas[name].(map[string]any)
		if !ok {
			t.Errorf("schema %s missing", name)
			continue
		}
		var documented []string
		for k := range s["properties"].(map[string]any) {
			documented = append(documented, k)
		}
		var fields []string
		for k := range jsonFields(typ) {
			fields = append(fields, k)
		}
		sort.Strings(documented)
		sort.Strings(fields)
		if !slices.Equal(documented, fields) {
			t.Errorf("schema %s has %v, type %s has %v", name, documented, typ, fields)
		}
		if s["additionalProperties"] != false {
			t.Errorf("schema %s does not forbid additional properties", name)
		}
	}
	errProps := schemas["Error"].(map[string]any)["properties"].(map[string]any)["error"].(map[string]any)["properties"].(map[string]any)
	var documented, fields []string
	for k := range errProps {
		documented = append(documented, k)
	}
	for k := range jsonFields(reflect.TypeFor[errorBody]()) {
		fields = append(fields, k)
	}
	sort.Strings(documented)
	sort.Strings(fields)
	if !slices.Equal(documented, fields) {
		t.Errorf("error body schema has %v, type has %v", documented, fields)
	}
	// Every error type the table can produce is in the schema's enum.
	enum := errProps["type"].(map[string]any)["enum"].([]any)
	types := []string{internalClass.typ, "idempotency_error"}
	for _, c := range errorClasses {
		types = append(types, c.typ)
	}
	for _, typ := range types {
		if !slices.Contains(enum, any(typ)) {
			t.Errorf("error type %s is not in the schema's enum", typ)
		}
	}
}

// documentedStatuses lists "METHOD /template STATUS" for every documented response.
func (d *openAPI) documentedStatuses() []string {
	var out []string
	for path, item := range d.paths {
		for method, op := range item.(map[string]any) {
			for status := range op.(map[string]any)["responses"].(map[string]any) {
				out = append(out, strings.ToUpper(method)+" "+path+" "+status)
			}
		}
	}
	sort.Strings(out)
	return out
}

// The webhook routes the document lists are the ones the handlers mount: asking the node's mux
// (as newEnv builds it, like the node) which pattern serves each finds them all.
func TestWebhookRoutesAreMounted(t *testing.T) {
	e := newEnv(t)
	h := e.srv.Config.Handler.(*api)
	for _, p := range webhook.Routes() {
		method, path, _ := strings.Cut(p, " ")
		r := httptest.NewRequest(method, strings.ReplaceAll(path, "{id}", "x"), nil)
		if _, got := h.mux.Handler(r); got != p {
			t.Errorf("%s is served by %q", p, got)
		}
	}
}
