package reqbody

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/hutong-pay/hutong/internal/payment"
)

func TestDecode(t *testing.T) {
	var in struct {
		URL    string
		Events []string
	}
	params := map[string]Param{"url": {Dst: &in.URL, Want: "a string"}, "events": {Dst: &in.Events, Want: "an array of strings"}}
	if err := Decode([]byte(` {"url":"https://x","events":["a"]} `), params); err != nil || in.URL != "https://x" || len(in.Events) != 1 {
		t.Fatalf("valid body: %v %+v", err, in)
	}
	for body, param := range map[string]string{
		`{"url":1}`: "url", `{"URL":"x"}`: "URL", `{"url":"a","url":"b"}`: "url", `{"x":1}`: "x",
		`[]`: "body", `{} {}`: "body", `{"url":`: "body",
	} {
		err := Decode([]byte(body), params)
		var pe *payment.Error
		if !errors.As(err, &pe) || pe.Kind != payment.Invalid || pe.Param != param {
			t.Errorf("%q: %v, want a 400 naming %s", body, err, param)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"url":"https://x","events":["payment.succeeded"]}`, `{"url":1}`, `{"url":null}`,
		`{"url":"a","url":"b"}`, `{"URL":"a"}`, `{} x`, `[`, `{"events":[1,2]}`, "{\"url\":\"\\ud800\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var in struct {
			URL    string
			Events []string
		}
		err := Decode(body, map[string]Param{"url": {Dst: &in.URL, Want: "a string"}, "events": {Dst: &in.Events, Want: "an array of strings"}})
		if err != nil {
			var pe *payment.Error
			if !errors.As(err, &pe) || pe.Kind != payment.Invalid || pe.Param == "" {
				t.Fatalf("error %v is not a 400 naming a parameter", err)
			}
			return
		}
		// Accepted bodies are empty or one JSON object with only known keys.
		if trimmed := strings.TrimSpace(string(body)); trimmed != "" {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatalf("accepted %q, which is not a JSON object: %v", body, err)
			}
			for k := range m {
				if k != "url" && k != "events" {
					t.Fatalf("accepted unknown key %q", k)
				}
			}
		}
	})
}
