package wechatpay

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/services/refunddomestic"
)

type billAnswer struct {
	HashType    string `json:"hash_type"`
	HashValue   string `json:"hash_value"`
	DownloadURL string `json:"download_url"`
}

// requestBill asks for a bill through the SDK (validated answer) and downloads the file unvalidated.
func requestBill(t *testing.T, e *testEnv, query string) (billAnswer, []byte) {
	t.Helper()
	ctx := context.Background()
	result, err := e.pubKeyClient().Get(ctx, "https://api.mch.weixin.qq.com/v3/bill/tradebill?"+query)
	if err != nil {
		t.Fatalf("tradebill: %v", err)
	}
	var b billAnswer
	if err := core.UnMarshalResponse(result.Response, &b); err != nil {
		t.Fatal(err)
	}
	if b.HashType != "SHA1" || !strings.HasPrefix(b.DownloadURL, e.srv.URL+"/v3/billdownload/file?token=") {
		t.Fatalf("bill answer = %+v", b)
	}
	file, err := e.unvalidatedClient().Get(ctx, b.DownloadURL)
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	defer file.Response.Body.Close()
	if file.Response.Header.Get("Wechatpay-Signature") != "" {
		t.Error("the bill file is signed; WeChat's is not")
	}
	content, _ := io.ReadAll(file.Response.Body)
	return b, content
}

func checkHash(t *testing.T, b billAnswer, content []byte) {
	t.Helper()
	sum := sha1.Sum(content)
	if hex.EncodeToString(sum[:]) != b.HashValue {
		t.Fatalf("hash_value %s does not match the file", b.HashValue)
	}
}

func TestTradeBill(t *testing.T) {
	e := newEnv(t, "")
	c := e.pubKeyClient()
	nativePrepay(t, e, c, "bill_00001", "http://127.0.0.1:1/n", 1)
	nativePrepay(t, e, c, "bill_00002", "http://127.0.0.1:1/n", 12345)
	nativePrepay(t, e, c, "bill_00003", "http://127.0.0.1:1/n", 999) // never paid: not in the bill
	var paid map[string]any
	_ = json.Unmarshal(e.pay("bill_00001", "").body, &paid)
	e.pay("bill_00002", "")
	rs := refunddomestic.RefundsApiService{Client: c}
	if _, _, err := rs.Create(context.Background(), refunddomestic.CreateRequest{
		OutTradeNo: core.String("bill_00002"), OutRefundNo: core.String("BR1"),
		Amount: &refunddomestic.AmountReq{Refund: core.Int64(345), Total: core.Int64(12345), Currency: core.String("CNY")},
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "refund success", func() bool {
		var st string
		_ = e.db.QueryRow(`SELECT status FROM wx_refunds WHERE out_refund_no = 'BR1'`).Scan(&st)
		return st == refundSuccess
	})
	today := e.now().In(cst).Format(time.DateOnly)

	b, content := requestBill(t, e, "bill_date="+today+"&bill_type=ALL")
	checkHash(t, b, content)
	lines := strings.Split(strings.TrimSuffix(string(content), "\r\n"), "\r\n")
	if len(lines) != 6 || lines[0] != billHeader || lines[4] != billSummaryHeader {
		t.Fatalf("bill lines:\n%s", content)
	}
	first := strings.Split(lines[1], ",")
	if len(first) != 27 {
		t.Fatalf("detail row has %d fields, want 27: %s", len(first), lines[1])
	}
	for _, f := range first {
		if !strings.HasPrefix(f, "`") {
			t.Fatalf("field %q lacks the backtick", f)
		}
	}
	if first[5] != "`"+paid["transaction_id"].(string) || first[6] != "`bill_00001" || first[9] != "`SUCCESS" || first[12] != "`0.01" || first[8] != "`NATIVE" {
		t.Errorf("payment row = %s", lines[1])
	}
	if !strings.Contains(lines[2], "`bill_00002,") || !strings.Contains(lines[2], "`123.45,") {
		t.Errorf("second payment row = %s", lines[2])
	}
	refundRow := strings.Split(lines[3], ",")
	if refundRow[9] != "`REFUND" || refundRow[15] != "`BR1" || refundRow[16] != "`3.45" || refundRow[19] != "`SUCCESS" {
		t.Errorf("refund row = %s", lines[3])
	}
	summary := strings.Split(lines[5], ",")
	// 3 rows; settled 0.01+123.45; refunded 3.45; fee round(0.6% of each): 0+74-2 fen.
	want := []string{"`3", "`123.46", "`3.45", "`0.00", "`0.72", "`123.46", "`3.45"}
	for i := range want {
		if summary[i] != want[i] {
			t.Errorf("summary = %s, want %s", lines[5], strings.Join(want, ","))
			break
		}
	}

	_, content = requestBill(t, e, "bill_date="+today+"&bill_type=SUCCESS")
	if n := strings.Count(string(content), "\r\n"); n != 5 || strings.Contains(string(content), "`REFUND") {
		t.Errorf("SUCCESS bill:\n%s", content)
	}
	_, content = requestBill(t, e, "bill_date="+today+"&bill_type=REFUND")
	if n := strings.Count(string(content), "\r\n"); n != 4 || !strings.Contains(string(content), "`BR1") {
		t.Errorf("REFUND bill:\n%s", content)
	}

	// GZIP: the hash is of the uncompressed file.
	b, gz := requestBill(t, e, "bill_date="+today+"&tar_type=GZIP")
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	plain, _ := io.ReadAll(zr)
	checkHash(t, b, plain)

	// Another day has an empty bill.
	b, content = requestBill(t, e, "bill_date=2024-01-02")
	checkHash(t, b, content)
	if !strings.HasSuffix(string(content), billSummaryHeader+"\r\n`0,`0.00,`0.00,`0.00,`0.00,`0.00,`0.00\r\n") {
		t.Errorf("empty bill:\n%s", content)
	}
}

func TestTradeBillErrors(t *testing.T) {
	e := newEnv(t, "")
	tomorrow := e.now().In(cst).AddDate(0, 0, 1).Format(time.DateOnly)
	for _, c := range []struct {
		query, code, msg string
	}{
		{"", "PARAM_ERROR", "bill_date"},
		{"bill_date=2024/01/02", "PARAM_ERROR", "bill_date"},
		{"bill_date=2024-01-02&bill_type=ODD", "PARAM_ERROR", "bill_type"},
		{"bill_date=2024-01-02&tar_type=ZIP", "PARAM_ERROR", "tar_type"},
		{"bill_date=" + tomorrow, "NO_STATEMENT_EXIST", ""},
	} {
		a := e.raw(rawCall{method: "GET", uri: "/v3/bill/tradebill?" + c.query})
		expectError(t, a, http.StatusBadRequest, c.code, c.msg)
	}
	a := e.raw(rawCall{method: "GET", uri: "/v3/billdownload/file?token=nope"})
	expectError(t, a, http.StatusBadRequest, "INVALID_REQUEST", "")
	// The download needs a signed request like every /v3 call.
	req, _ := http.NewRequest("GET", e.srv.URL+"/v3/billdownload/file?token=nope", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unsigned download: %d, want 401", resp.StatusCode)
	}
}

func TestYuan(t *testing.T) {
	for fen, want := range map[int64]string{0: "0.00", 1: "0.01", 99: "0.99", 100: "1.00", 12345: "123.45", -2: "-0.02", -12345: "-123.45"} {
		if got := yuan(fen); got != want {
			t.Errorf("yuan(%d) = %q, want %q", fen, got, want)
		}
	}
	for amount, want := range map[int64]int64{1: 0, 83: 0, 84: 1, 12345: 74, 345: 2, 100000: 600} {
		if got := fee(amount); got != want {
			t.Errorf("fee(%d) = %d, want %d", amount, got, want)
		}
	}
}
