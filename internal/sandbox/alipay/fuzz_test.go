package alipay

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseYuan(t *testing.T) {
	good := map[string]int64{"0.01": 1, "1": 100, "1.5": 150, "12.34": 1234, "100000000": 10_000_000_000, "99999999.99": 9_999_999_999, "0.10": 10, "10": 1000}
	for s, want := range good {
		if got, err := parseYuan(s); err != nil || got != want {
			t.Errorf("parseYuan(%q): got %d %v, want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "0", "0.0", "0.00", "00.01", "01", "1.", ".1", "1.001", "-1", "+1", " 1", "1 ", "1e2", "1,00",
		"100000000.01", "999999999", "1000000000", "0x10", "１", "1.2.3", "NaN", "Inf", "1_000"} {
		if got, err := parseYuan(s); err == nil {
			t.Errorf("parseYuan(%q): got %d, want an error", s, got)
		}
	}
	for fen, want := range map[int64]string{1: "0.01", 10: "0.10", 100: "1.00", 1234: "12.34", -250: "-2.50", 0: "0.00", -5: "-0.05"} {
		if got := formatYuan(fen); got != want {
			t.Errorf("formatYuan(%d): got %q, want %q", fen, got, want)
		}
	}
}

func FuzzParseYuan(f *testing.F) {
	for _, s := range []string{"0.01", "1", "12.3", "100000000", "100000000.01", "01", "1.", "-1", "1e3", "9.999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fen, err := parseYuan(s)
		if err != nil {
			return
		}
		if fen < 1 || fen > maxAmountFen {
			t.Fatalf("parseYuan(%q) = %d, out of range", s, fen)
		}
		canonical := s
		switch i := strings.IndexByte(s, '.'); {
		case i < 0:
			canonical += ".00"
		case len(s)-i == 2:
			canonical += "0"
		}
		if got := formatYuan(fen); got != canonical {
			t.Fatalf("parseYuan(%q) = %d, formats back as %q, want %q", s, fen, got, canonical)
		}
		if back, err := parseYuan(formatYuan(fen)); err != nil || back != fen {
			t.Fatalf("round trip of %d: got %d %v", fen, back, err)
		}
	})
}

func FuzzFormatYuanRoundTrip(f *testing.F) {
	for _, v := range []int64{1, 99, 100, 12345, maxAmountFen} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, fen int64) {
		if fen < 1 || fen > maxAmountFen {
			return
		}
		if back, err := parseYuan(formatYuan(fen)); err != nil || back != fen {
			t.Fatalf("round trip of %d via %q: got %d %v", fen, formatYuan(fen), back, err)
		}
	})
}

func FuzzExpiryTime(f *testing.F) {
	for _, s := range [][2]string{{"5m", ""}, {"1c", ""}, {"15d", ""}, {"", "2030-01-01 10:00:00"}, {"", "2030-01-01 10:00"}, {"0m", ""}, {"99999999d", ""}} {
		f.Add(s[0], s[1])
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, shanghai)
	f.Fuzz(func(t *testing.T, timeoutExpress, timeExpire string) {
		got, err := expiryTime(now, timeoutExpress, timeExpire, time.Hour)
		if err != nil || timeExpire != "" {
			return
		}
		if timeoutExpress == "" {
			if !got.Equal(now.Add(time.Hour)) {
				t.Fatalf("default: got %v", got)
			}
			return
		}
		if got.Before(now.Add(time.Minute)) || got.After(now.Add(15*24*time.Hour)) {
			t.Fatalf("timeout_express %q: got %v, outside 1m–15d", timeoutExpress, got)
		}
	})
}

func FuzzParseBillDate(f *testing.F) {
	for _, s := range []string{"2026-01-02", "2026-01", "2026-1-2", "20260102", "2026-13-01", "2026-02-30"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseBillDate(s)
		if err != nil {
			return
		}
		if !p.start.Before(p.end) || (len(p.text) != 8 && len(p.text) != 6) {
			t.Fatalf("parseBillDate(%q): got %+v", s, p)
		}
		back, err := parseBillDates(p.text)
		if err != nil || !back.start.Equal(p.start) || !back.end.Equal(p.end) {
			t.Fatalf("bizDates %q does not round-trip: %v %+v", p.text, err, back)
		}
	})
}

// FuzzGatewayForm throws arbitrary queries and bodies at gateway.do: the answer is always HTTP 200,
// and a JSON answer always carries one node whose signature verifies over its exact bytes.
func FuzzGatewayForm(f *testing.F) {
	e := newEnv(f)
	valid := e.signedParams("alipay.trade.query", `{"out_trade_no":"o1"}`, nil)
	f.Add("", valid.Encode(), false)
	f.Add(valid.Encode(), "", false)
	f.Add("method=alipay.trade.page.pay", "biz_content=%7B", false)
	f.Add("method=alipay.trade.query&sign=abc", "app_id=1&sign_type=RSA2", false)
	f.Add("method=x", "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b--\r\n", true)
	f.Add("%zz", "a=%", false)
	f.Fuzz(func(t *testing.T, rawQuery, body string, multipart bool) {
		req := httptest.NewRequest(http.MethodPost, "/gateway.do", strings.NewReader(body))
		req.URL.RawQuery = rawQuery
		if multipart {
			req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
		} else {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		rec := httptest.NewRecorder()
		e.mux.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d, want 200", rec.Code)
		}
		out := rec.Body.Bytes()
		if !bytes.HasPrefix(out, []byte(`{"`)) {
			if !bytes.Contains(out, []byte("<html")) {
				t.Fatalf("neither JSON nor the cashier: %q", out)
			}
			return
		}
		checkSignedAnswer(t, e, out)
	})
}

// checkSignedAnswer asserts an answer is {"<node>":{...},"sign":"…"} with a valid signature.
func checkSignedAnswer(t *testing.T, e *env, out []byte) (node map[string]any) {
	t.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(out, &raw); err != nil || len(raw) != 2 {
		t.Fatalf("answer is not a two-key JSON object: %v %s", err, out)
	}
	var sig string
	if err := json.Unmarshal(raw["sign"], &sig); err != nil {
		t.Fatalf("no sign: %s", out)
	}
	for k, v := range raw {
		if k == "sign" {
			continue
		}
		if !strings.HasSuffix(k, "_response") {
			t.Fatalf("node %q", k)
		}
		if err := verifyRSA2(&e.sb.app.alipayKey.PublicKey, string(v), sig); err != nil {
			t.Fatalf("node signature: %v", err)
		}
		if bytes.Contains(v, []byte(`\/`)) {
			t.Fatalf(`answer contains \/: %s`, v)
		}
		_ = json.Unmarshal(v, &node)
	}
	return node
}

// FuzzSignedRequest signs arbitrary biz_content and an extra parameter correctly: the gateway must
// never report a bad signature for a well-signed request of valid UTF-8.
func FuzzSignedRequest(f *testing.F) {
	e := newEnv(f)
	methods := []string{"alipay.trade.query", "alipay.trade.precreate", "alipay.trade.refund", "alipay.trade.close",
		"alipay.trade.fastpay.refund.query", "alipay.data.dataservice.bill.downloadurl.query", "alipay.trade.create"}
	f.Add(uint8(0), `{"out_trade_no":"o1"}`, "alipay_sdk", "alipay-sdk-nodejs-4.0.0")
	f.Add(uint8(1), `{"out_trade_no":"f1","total_amount":"0.01","subject":"a=b&c"}`, "notify_url", "http://127.0.0.1:1/n?x=1&y=2")
	f.Add(uint8(2), `{"out_trade_no":"f1","refund_amount":1e400}`, "x", "")
	f.Add(uint8(5), `{"bill_type":"trade","bill_date":"2026-01"}`, "app_auth_token", "t")
	f.Add(uint8(6), `{"out_trade_no":"f2","total_amount":"1","subject":"s","buyer_id":"2088"}`, "k", "v=w")
	f.Fuzz(func(t *testing.T, m uint8, biz, extraKey, extraVal string) {
		method := methods[int(m)%len(methods)]
		extra := url.Values{}
		reserved := map[string]bool{"sign": true, "app_id": true, "method": true, "charset": true, "sign_type": true,
			"timestamp": true, "version": true, "biz_content": true, "encrypt_type": true}
		if extraKey != "" && !reserved[extraKey] {
			extra.Set(extraKey, extraVal)
		}
		it := e.as(t)
		out := it.rawCall(nil, it.signedParams(method, biz, extra))
		node := checkSignedAnswer(t, e, out)
		allUTF8 := utf8.ValidString(biz) && utf8.ValidString(extraKey) && utf8.ValidString(extraVal)
		if allUTF8 && node["sub_code"] == "isv.invalid-signature" {
			t.Fatalf("a correctly signed request was refused: %s", out)
		}
	})
}
