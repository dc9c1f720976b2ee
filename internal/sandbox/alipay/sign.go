package alipay

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// signContent is Alipay's signing string: every key=value except the ignored keys and empty values,
// sorted by key, joined with "&". Values are raw, never URL-encoded.
func signContent(v url.Values, skipEmpty bool, ignore ...string) string {
	keys := make([]string, 0, len(v))
	for k := range v {
		if !slices.Contains(ignore, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		for _, val := range v[k] {
			if skipEmpty && val == "" {
				continue
			}
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(k)
			b.WriteByte('=')
			b.WriteString(val)
		}
	}
	return b.String()
}

// pairSortedContent sorts whole "k=v" pairs rather than keys, as the smartwalle SDK does. It differs
// from signContent only when one key is a prefix of another followed by a byte below '=', so it is
// only tried when the canonical string fails.
func pairSortedContent(v url.Values, ignore ...string) string {
	var pairs []string
	for k, vals := range v {
		if slices.Contains(ignore, k) {
			continue
		}
		for _, val := range vals {
			pairs = append(pairs, k+"="+val)
		}
	}
	slices.Sort(pairs)
	return strings.Join(pairs, "&")
}

// requestSignCandidates are the signing strings a real client may have signed for the request params:
// Alipay's canonical one first (empty values skipped, as the Java and Go SDKs skip them), then the
// variants other clients produce.
func requestSignCandidates(v url.Values) []string {
	out := []string{signContent(v, true, "sign")}
	// A key sent both in the query and in the body was signed once by the client.
	first := url.Values{}
	for k, vs := range v {
		first[k] = vs[:1]
	}
	for _, c := range []string{signContent(v, false, "sign"), pairSortedContent(v, "sign"), signContent(first, true, "sign")} {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

var errBadSignature = errors.New("alipay: signature does not verify")

// verifyRSA2 checks a standard-base64 SHA256withRSA signature.
func verifyRSA2(pub *rsa.PublicKey, content, sig string) error {
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return fmt.Errorf("%w: %v", errBadSignature, err)
	}
	sum := sha256.Sum256([]byte(content))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], raw); err != nil {
		return errBadSignature
	}
	return nil
}

// signRSA2 signs content with SHA256withRSA and returns standard base64.
func signRSA2(key *rsa.PrivateKey, content []byte) (string, error) {
	sum := sha256.Sum256(content)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("alipay: sign: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// generateKey makes an RSA key; tests replace it to avoid generating keys for every sandbox.
var generateKey = func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) }

// privateKeyPEM encodes key as PKCS#8 "PRIVATE KEY" PEM, the form clients can load by label.
func privateKeyPEM(key *rsa.PrivateKey) (string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("alipay: encode private key: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
}

// publicKeyPEM encodes a public key as PKIX "PUBLIC KEY" PEM, the only form Alipay hands out.
func publicKeyPEM(pub *rsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("alipay: encode public key: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}

func parsePrivateKeyPEM(s string) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("alipay: private key: no PEM block")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("alipay: private key: %w", err)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("alipay: private key: not RSA")
	}
	return rk, nil
}
