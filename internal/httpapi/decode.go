package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"

	"github.com/hutong-pay/hutong/internal/payment"
)

// maxBody is the largest request body accepted. Merchant requests are small; anything larger is
// a mistake or an attack.
const maxBody = 64 << 10

// readBody reads the whole (size-limited) request body.
func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, &payment.Error{Kind: payment.Invalid, Code: "body_too_large", Param: "body",
				Message: fmt.Sprintf("the request body must be at most %d bytes", maxBody)}
		}
		return nil, &payment.Error{Kind: payment.Invalid, Code: "body_unreadable", Param: "body",
			Message: "the request body could not be read", Err: err}
	}
	return body, nil
}

// decodeJSON strictly decodes body, a single JSON object, into dst, a pointer to a struct.
// Field names must match exactly (encoding/json alone would accept any case), appear once, and
// be known; values must have the field's type (so "100" and 1.5 are not amounts); nothing may
// follow the object. Errors are 400s naming the offending parameter.
func decodeJSON(body []byte, dst any) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		if len(trimmed) > 0 && !json.Valid(trimmed) {
			return invalidJSON(trimmed)
		}
		return &payment.Error{Kind: payment.Invalid, Code: "body_invalid", Param: "body", Message: "the request body must be a JSON object"}
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return invalidJSON(trimmed)
	}
	if rest := bytes.TrimSpace(trimmed[dec.InputOffset():]); len(rest) > 0 {
		return &payment.Error{Kind: payment.Invalid, Code: "body_invalid", Param: "body", Message: "the request body has data after the JSON object"}
	}
	t := reflect.TypeOf(dst)
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("httpapi: decode into %s: want a pointer to a struct", t)
	}
	walker := json.NewDecoder(bytes.NewReader(raw))
	walker.UseNumber()
	if err := checkKeys(walker, t.Elem(), ""); err != nil {
		return err
	}
	dec = json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			param := typeErr.Field
			if head, _, ok := strings.Cut(param, "."); ok && head == "metadata" {
				param = head // metadata keys are the merchant's; the parameter is the map
			}
			if param == "" {
				param = "body"
			}
			return payment.InvalidParam(param, "%s must be %s", param, describeType(typeErr.Type))
		}
		return &payment.Error{Kind: payment.Invalid, Code: "body_invalid", Param: "body", Message: "the request body could not be decoded", Err: err}
	}
	return nil
}

func invalidJSON(body []byte) error {
	var syn *json.SyntaxError
	msg := "the request body is not valid JSON"
	if err := json.Unmarshal(body, new(any)); errors.As(err, &syn) {
		msg = fmt.Sprintf("the request body is not valid JSON (at byte %d)", syn.Offset)
	}
	return &payment.Error{Kind: payment.Invalid, Code: "body_invalid", Param: "body", Message: msg}
}

func describeType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "of type " + t.String()
}

// checkKeys reads one JSON value from dec and checks the object keys within it against t:
// struct fields by their exact json names, each at most once. A nil t (inside a value whose
// type is wrong, which the decoder reports) accepts anything.
func checkKeys(dec *json.Decoder, t reflect.Type, path string) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		return &payment.Error{Kind: payment.Invalid, Code: "body_invalid", Param: "body", Message: "the request body is not valid JSON"}
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch delim {
	case '{':
		var fields map[string]reflect.Type
		var elem reflect.Type
		if t != nil && t.Kind() == reflect.Struct {
			fields = jsonFields(t)
		} else if t != nil && t.Kind() == reflect.Map {
			elem = t.Elem()
		}
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return &payment.Error{Kind: payment.Invalid, Code: "body_invalid", Param: "body", Message: "the request body is not valid JSON"}
			}
			key, _ := kt.(string)
			if key == "" && fields != nil {
				return &payment.Error{Kind: payment.Invalid, Code: "parameter_unknown", Param: joinPath(path, `""`),
					Message: "parameter names must not be empty"}
			}
			param := joinPath(path, key)
			if t != nil && t.Kind() == reflect.Map {
				param = path // the keys of a map are data, not parameter names
			}
			if seen[key] {
				return payment.InvalidParam(param, "%s is given more than once", param)
			}
			seen[key] = true
			next := elem
			if fields != nil {
				ft, ok := fields[key]
				if !ok {
					return &payment.Error{Kind: payment.Invalid, Code: "parameter_unknown", Param: param,
						Message: fmt.Sprintf("unknown parameter: %s", param)}
				}
				next = ft
			}
			if err := checkKeys(dec, next, param); err != nil {
				return err
			}
		}
		_, err := dec.Token() // '}'
		if err != nil {
			return &payment.Error{Kind: payment.Invalid, Code: "body_invalid", Param: "body", Message: "the request body is not valid JSON"}
		}
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for dec.More() {
			if err := checkKeys(dec, elem, path); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil { // ']'
			return &payment.Error{Kind: payment.Invalid, Code: "body_invalid", Param: "body", Message: "the request body is not valid JSON"}
		}
	}
	return nil
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var fieldCache sync.Map // reflect.Type → map[string]reflect.Type

// jsonFields returns t's fields by their exact json names.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := map[string]reflect.Type{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f.Type
	}
	fieldCache.Store(t, m)
	return m
}
