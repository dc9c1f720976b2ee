package alipay

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/csv"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	sdk "github.com/smartwalle/alipay/v3"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// downloadBill fetches the link and returns the zip's files, names and contents decoded from GBK.
func downloadBill(t *testing.T, link string) map[string]string {
	t.Helper()
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("download: got %d", resp.StatusCode)
	}
	body, _ := io.ReadAll(resp.Body)
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatalf("not a zip: %v", err)
	}
	files := map[string]string{}
	dec := simplifiedchinese.GBK.NewDecoder()
	for _, f := range zr.File {
		if f.Flags&0x800 != 0 {
			t.Errorf("%q is flagged UTF-8; Alipay's names are GBK", f.Name)
		}
		name, err := dec.String(f.Name)
		if err != nil {
			t.Fatalf("name not GBK: %v", err)
		}
		rc, _ := f.Open()
		raw, _ := io.ReadAll(rc)
		rc.Close()
		text, err := dec.Bytes(raw)
		if err != nil {
			t.Fatalf("content not GBK: %v", err)
		}
		files[name] = string(text)
	}
	return files
}

// billRows splits a bill file into its comment lines and CSV rows.
func billRows(t *testing.T, text string) (comments []string, rows [][]string) {
	t.Helper()
	var data []string
	for _, line := range strings.Split(strings.TrimRight(text, "\r\n"), "\r\n") {
		if strings.HasPrefix(line, "#") {
			comments = append(comments, line)
		} else {
			data = append(data, line)
		}
	}
	r := csv.NewReader(strings.NewReader(strings.Join(data, "\n")))
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatalf("bill rows: %v\n%s", err, text)
	}
	return comments, rows
}

func TestTradeBillDownload(t *testing.T) {
	clk := newClock()
	e := newEnv(t, envOptions{clock: clk})
	ctx := context.Background()
	e.precreate("b-1", "10.00", "")
	e.pay("b-1")
	if _, err := e.client.TradeCreate(ctx, sdk.TradeCreate{Trade: sdk.Trade{Subject: "逗号,商品", OutTradeNo: "b-2", TotalAmount: "0.50"}, BuyerId: "2088000000001234"}); err != nil {
		t.Fatal(err)
	}
	e.pay("b-2")
	if r, err := e.client.TradeRefund(ctx, sdk.TradeRefund{OutTradeNo: "b-1", RefundAmount: "2.50", OutRequestNo: "br-1"}); err != nil || !r.IsSuccess() {
		t.Fatalf("refund: %v %+v", err, r)
	}
	e.precreate("b-unpaid", "7.00", "") // never paid: not on the bill

	today := clk.Now().In(shanghai)
	rsp, err := e.client.BillDownloadURLQuery(ctx, sdk.BillDownloadURLQuery{BillType: "trade", BillDate: today.Format("2006-01-02")})
	if err != nil || !rsp.IsSuccess() || !strings.HasPrefix(rsp.BillDownloadURL, e.srv.URL+"/") {
		t.Fatalf("bill url: %v %+v", err, rsp)
	}
	files := downloadBill(t, rsp.BillDownloadURL)
	prefix := e.sb.app.sellerID + "0156_" + today.Format("20060102") + "_"
	detail, ok := files[prefix+"业务明细.csv"]
	if !ok {
		t.Fatalf("zip files: got %v", keys(files))
	}
	if _, ok := files[prefix+"业务明细(汇总).csv"]; !ok {
		t.Fatalf("no summary file: got %v", keys(files))
	}
	comments, rows := billRows(t, detail)
	if comments[0] != "#支付宝业务明细查询" || !strings.HasPrefix(comments[1], "#账号：[") || !strings.Contains(comments[2], "终止日期：") {
		t.Fatalf("header comments: %q", comments[:3])
	}
	if len(rows) != 4 || len(rows[0]) != 25 || rows[0][0] != "支付宝交易号" || rows[0][24] != "备注" {
		t.Fatalf("rows: got %d rows, header %q", len(rows), rows[0])
	}
	byKey := map[string][]string{}
	for _, r := range rows[1:] {
		if len(r) != 25 || !strings.HasSuffix(r[0], "\t") || !strings.HasSuffix(r[1], "\t") {
			t.Fatalf("row %q: want 25 cells with tab-terminated ids", r)
		}
		byKey[strings.TrimSuffix(r[1], "\t")+"/"+r[2]] = r
	}
	if r := byKey["b-1/交易"]; r == nil || r[11] != "10.00" || r[12] != "10.00" || r[10] == "" {
		t.Fatalf("payment row b-1: %q", r)
	}
	if r := byKey["b-2/交易"]; r == nil || r[3] != "逗号,商品" || r[12] != "0.50" {
		t.Fatalf("payment row b-2: %q", r)
	}
	if r := byKey["b-1/退款"]; r == nil || r[12] != "-2.50" || r[21] != "br-1\t" {
		t.Fatalf("refund row: %q", r)
	}
	footer := strings.Join(comments[4:], "\n")
	if !strings.Contains(footer, "#交易合计：2笔，商家实收共10.50元") || !strings.Contains(footer, "#退款合计：1笔，商家实收共-2.50元") || !strings.Contains(footer, "#导出时间：[") {
		t.Fatalf("footer: %s", footer)
	}
	_, sum := billRows(t, files[prefix+"业务明细(汇总).csv"])
	if last := sum[len(sum)-1]; last[0] != "合计" || last[2] != "2" || last[3] != "1" || last[5] != "8.00" {
		t.Fatalf("summary: %q", sum)
	}

	// The month's bill has the same movements.
	month, err := e.client.BillDownloadURLQuery(ctx, sdk.BillDownloadURLQuery{BillType: "trade", BillDate: today.Format("2006-01")})
	if err != nil || !month.IsSuccess() {
		t.Fatalf("month bill: %v %+v", err, month)
	}
	mfiles := downloadBill(t, month.BillDownloadURL)
	if _, mrows := billRows(t, mfiles[e.sb.app.sellerID+"0156_"+today.Format("200601")+"_业务明细.csv"]); len(mrows) != 4 {
		t.Fatalf("month bill rows: got %d, want 4", len(mrows))
	}

	// Links expire after about 30 seconds, and cannot be forged.
	clk.Add(31 * time.Second)
	if resp, _ := http.Get(rsp.BillDownloadURL); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("expired link: got %d, want 403", resp.StatusCode)
	}
	fresh, _ := e.client.BillDownloadURLQuery(ctx, sdk.BillDownloadURLQuery{BillType: "trade", BillDate: today.Format("2006-01-02")})
	forged := strings.Replace(fresh.BillDownloadURL, "bizType=trade", "bizType=signcustomer", 1)
	if resp, _ := http.Get(forged); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("forged link: got %d, want 403", resp.StatusCode)
	}
}

func TestAccountBillAndBillErrors(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.precreate("ab-1", "4.00", "")
	e.pay("ab-1")
	if _, err := e.client.TradeRefund(ctx, sdk.TradeRefund{OutTradeNo: "ab-1", RefundAmount: "1.00", OutRequestNo: "x"}); err != nil {
		t.Fatal(err)
	}
	today := time.Now().In(shanghai)
	rsp, err := e.client.BillDownloadURLQuery(ctx, sdk.BillDownloadURLQuery{BillType: "signcustomer", BillDate: today.Format("2006-01-02")})
	if err != nil || !rsp.IsSuccess() {
		t.Fatalf("account bill: %v %+v", err, rsp)
	}
	files := downloadBill(t, rsp.BillDownloadURL)
	_, rows := billRows(t, files[e.sb.app.sellerID+"0156_"+today.Format("20060102")+"_账务明细.csv"])
	if len(rows) != 3 || rows[1][6] != "+4.00" || rows[1][8] != "4.00" || rows[2][7] != "-1.00" || rows[2][8] != "3.00" {
		t.Fatalf("account rows: %q", rows)
	}

	for _, c := range []struct{ billType, date, code, sub string }{
		{"trade", today.AddDate(0, 0, 2).Format("2006-01-02"), "40004", "isp.bill_not_exist"},
		{"trade", "2015-12-31", "40004", "isp.bill_not_exist"},
		{"trade", "2024/01/01", "40002", "isv.invalid-parameter"},
		{"trade", "2024-1-1", "40002", "isv.invalid-parameter"},
		{"other", "2024-01-01", "40002", "isv.invalid-parameter"},
		{"", "2024-01-01", "40001", "isv.missing-parameter"},
	} {
		rsp, err := e.client.BillDownloadURLQuery(ctx, sdk.BillDownloadURLQuery{BillType: c.billType, BillDate: c.date})
		if err != nil || string(rsp.Code) != c.code || rsp.SubCode != c.sub {
			t.Errorf("bill %q %q: got %v %+v, want %s %s", c.billType, c.date, err, rsp, c.code, c.sub)
		}
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
