package checkout

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// The benchmarks call the mux directly (no sockets) on a real SQLite store.
func benchmarkGet(b *testing.B, path, ua string) {
	f := newFixture(b)
	p := f.create()
	if _, st := f.chooseJSON(p.ID, "wechatpay", "qr"); st == nil {
		b.Fatal("choose failed")
	}
	mux := http.NewServeMux()
	f.co.Register(mux)
	url := "/checkout/" + p.ID + path
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest("GET", url, nil)
		req.Header.Set("User-Agent", ua)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("GET %s: %d", url, rec.Code)
		}
	}
}

func BenchmarkPage(b *testing.B)   { benchmarkGet(b, "", uaDesktopChrome) }
func BenchmarkStatus(b *testing.B) { benchmarkGet(b, "/status", uaDesktopChrome) }
func BenchmarkQRCode(b *testing.B) { benchmarkGet(b, "/qr/wechatpay.png", uaDesktopChrome) }
