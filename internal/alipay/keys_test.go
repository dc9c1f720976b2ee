package alipay

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/url"
	"sync"
	"testing"
	"time"
)

// testKeys are generated once per test binary: an app key pair (ours) and an "Alipay" key pair
// standing in for the wallet's, plus a stranger's key for forgeries.
type testKeys struct {
	app, alipay, stranger *rsa.PrivateKey
	appPEM                string // PKCS#8 PEM
	alipayPubPEM          string // PKIX PEM
}

var keysOnce = sync.OnceValue(func() *testKeys {
	gen := func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	}
	k := &testKeys{app: gen(), alipay: gen(), stranger: gen()}
	der, err := x509.MarshalPKCS8PrivateKey(k.app)
	if err != nil {
		panic(err)
	}
	k.appPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	pub, err := x509.MarshalPKIXPublicKey(&k.alipay.PublicKey)
	if err != nil {
		panic(err)
	}
	k.alipayPubPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	return k
})

const testAppID = "2021000000000001"

// fixedNow is the tests' clock.
var fixedNow = time.Date(2026, 11, 25, 5, 32, 11, 0, time.UTC)

func newTestConnector(t testing.TB, gatewayURL string) *Connector {
	t.Helper()
	k := keysOnce()
	c, err := New(Config{
		AppID: testAppID, AppPrivateKey: k.appPEM, AlipayPublicKey: k.alipayPubPEM,
		GatewayURL: gatewayURL, Timeout: 2 * time.Second, Now: func() time.Time { return fixedNow },
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// signForm signs form as Alipay signs a notification with key: over every field but sign and,
// unless withSignType, sign_type. It builds the signing string independently of the code under
// test: sorted keys, raw key=value, '&'-joined.
func signForm(t testing.TB, key *rsa.PrivateKey, form url.Values, withSignType bool) url.Values {
	t.Helper()
	out := url.Values{}
	for k, v := range form {
		out[k] = append([]string(nil), v...)
	}
	out.Del("sign")
	skip := map[string]bool{"sign": true}
	if !withSignType {
		skip["sign_type"] = true
	}
	var keys []string
	for k := range out {
		if !skip[k] {
			keys = append(keys, k)
		}
	}
	sortStrings(keys)
	text := ""
	for i, k := range keys {
		if i > 0 {
			text += "&"
		}
		text += k + "=" + out.Get(k)
	}
	sum := sha256.Sum256([]byte(text))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	out.Set("sign", base64.StdEncoding.EncodeToString(sig))
	return out
}

// sortStrings is an insertion sort, so that the test does not share sort code with notify.go.
func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
