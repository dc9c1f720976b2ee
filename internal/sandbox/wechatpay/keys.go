package wechatpay

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"time"
)

// merchantDoc is the sandbox merchant as persisted (one JSON document): its identity, the keys the
// merchant holds, and the keys WeChat Pay holds on its side (public key pair, platform certificates).
type merchantDoc struct {
	MchID              string         `json:"mchid"`
	AppID              string         `json:"appid"`
	AppSecret          string         `json:"app_secret"`
	MerchantSerialNo   string         `json:"merchant_serial_no"`
	MerchantPrivateKey string         `json:"merchant_private_key"`
	PublicKeyID        string         `json:"public_key_id"`
	PublicKey          string         `json:"public_key"`
	PublicKeyPrivate   string         `json:"public_key_private"` // WeChat Pay's side of the public key
	APIv3Key           string         `json:"apiv3_key"`
	PlatformCerts      []platformCert `json:"platform_certificates"` // oldest first
}

type platformCert struct {
	SerialNo string `json:"serial_no"`
	CertPEM  string `json:"certificate"`
	KeyPEM   string `json:"private_key"`
}

// signingKey is one of WeChat Pay's keys, named on the wire by its serial (a PUB_KEY_ID_… or a certificate serial).
type signingKey struct {
	serial string
	key    *rsa.PrivateKey
}

// loadedCert is a platform certificate ready for use.
type loadedCert struct {
	signingKey
	cert    *x509.Certificate
	certPEM string
}

// keyring is the merchant with its keys parsed.
type keyring struct {
	doc         merchantDoc
	merchantPub *rsa.PublicKey
	publicKey   signingKey
	certs       []loadedCert // oldest first; the last is the newest
}

func (k *keyring) newestCert() loadedCert { return k.certs[len(k.certs)-1] }

// certBySerial finds a platform certificate by the serial a client names.
func (k *keyring) certBySerial(serial string) (loadedCert, bool) {
	for _, c := range k.certs {
		if c.serial == serial {
			return c, true
		}
	}
	return loadedCert{}, false
}

const merchantSchema = `CREATE TABLE IF NOT EXISTS wx_merchant (
	id                   INTEGER PRIMARY KEY CHECK (id = 1),
	doc                  TEXT NOT NULL,
	notification_signing TEXT NOT NULL DEFAULT 'public_key',
	created_at           INTEGER NOT NULL,
	next_refund_outcome  TEXT NOT NULL DEFAULT 'SUCCESS'
)`

// nextRefundOutcomeColumn is next_refund_outcome for tables an earlier version created.
var nextRefundOutcomeColumn = column{"wx_merchant", "next_refund_outcome", "TEXT NOT NULL DEFAULT 'SUCCESS'"}

// loadOrCreateMerchant returns the persisted merchant, generating it (and all its keys) on first start.
func loadOrCreateMerchant(ctx context.Context, db *sql.DB, now time.Time) (*keyring, string, error) {
	doc, signing, err := readMerchant(ctx, db)
	if errors.Is(err, sql.ErrNoRows) {
		fresh, gerr := generateMerchant(now)
		if gerr != nil {
			return nil, "", gerr
		}
		raw, merr := json.Marshal(fresh)
		if merr != nil {
			return nil, "", fmt.Errorf("wechatpay sandbox: encode merchant: %w", merr)
		}
		// Two sandboxes starting on a fresh database at once: the first insert wins, both read it back.
		if _, err := db.ExecContext(ctx, `INSERT INTO wx_merchant (id, doc, created_at) VALUES (1, ?, ?) ON CONFLICT (id) DO NOTHING`,
			string(raw), now.UnixNano()); err != nil {
			return nil, "", fmt.Errorf("wechatpay sandbox: store merchant: %w", err)
		}
		doc, signing, err = readMerchant(ctx, db)
	}
	if err != nil {
		return nil, "", err
	}
	k, err := parseKeyring(doc)
	if err != nil {
		return nil, "", err
	}
	return k, signing, nil
}

func readMerchant(ctx context.Context, db *sql.DB) (merchantDoc, string, error) {
	var raw, signing string
	err := db.QueryRowContext(ctx, `SELECT doc, notification_signing FROM wx_merchant WHERE id = 1`).Scan(&raw, &signing)
	if errors.Is(err, sql.ErrNoRows) {
		return merchantDoc{}, "", err
	}
	if err != nil {
		return merchantDoc{}, "", fmt.Errorf("wechatpay sandbox: load merchant: %w", err)
	}
	var doc merchantDoc
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		return merchantDoc{}, "", fmt.Errorf("wechatpay sandbox: decode merchant: %w", err)
	}
	return doc, signing, nil
}

func parseKeyring(doc merchantDoc) (*keyring, error) {
	k := &keyring{doc: doc}
	mchKey, err := parsePrivateKey(doc.MerchantPrivateKey)
	if err != nil {
		return nil, fmt.Errorf("wechatpay sandbox: merchant key: %w", err)
	}
	k.merchantPub = &mchKey.PublicKey
	wxKey, err := parsePrivateKey(doc.PublicKeyPrivate)
	if err != nil {
		return nil, fmt.Errorf("wechatpay sandbox: wechat pay public key: %w", err)
	}
	k.publicKey = signingKey{serial: doc.PublicKeyID, key: wxKey}
	if len(doc.PlatformCerts) == 0 {
		return nil, errors.New("wechatpay sandbox: merchant has no platform certificate")
	}
	for _, pc := range doc.PlatformCerts {
		key, err := parsePrivateKey(pc.KeyPEM)
		if err != nil {
			return nil, fmt.Errorf("wechatpay sandbox: platform certificate %s key: %w", pc.SerialNo, err)
		}
		block, _ := pem.Decode([]byte(pc.CertPEM))
		if block == nil {
			return nil, fmt.Errorf("wechatpay sandbox: platform certificate %s: no PEM block", pc.SerialNo)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("wechatpay sandbox: platform certificate %s: %w", pc.SerialNo, err)
		}
		k.certs = append(k.certs, loadedCert{signingKey: signingKey{serial: pc.SerialNo, key: key}, cert: cert, certPEM: pc.CertPEM})
	}
	return k, nil
}

func parsePrivateKey(p string) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode([]byte(p))
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an RSA key")
	}
	return rk, nil
}

// generateMerchant makes a new sandbox merchant with identifiers shaped like real ones.
func generateMerchant(now time.Time) (merchantDoc, error) {
	keys := make([]*rsa.PrivateKey, 3)
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return merchantDoc{}, fmt.Errorf("wechatpay sandbox: generate key: %w", err)
		}
		keys[i] = k
	}
	mchKeyPEM, err := privateKeyPEM(keys[0])
	if err != nil {
		return merchantDoc{}, err
	}
	wxKeyPEM, err := privateKeyPEM(keys[1])
	if err != nil {
		return merchantDoc{}, err
	}
	wxPubDER, err := x509.MarshalPKIXPublicKey(&keys[1].PublicKey)
	if err != nil {
		return merchantDoc{}, fmt.Errorf("wechatpay sandbox: encode public key: %w", err)
	}
	cert, err := newPlatformCert(keys[2], now)
	if err != nil {
		return merchantDoc{}, err
	}
	mchid := "19" + randomString(digits, 8)
	return merchantDoc{
		MchID:              mchid,
		AppID:              "wx" + randomString(hexLower, 16),
		AppSecret:          randomString(hexLower, 32),
		MerchantSerialNo:   certSerial(),
		MerchantPrivateKey: mchKeyPEM,
		PublicKeyID:        "PUB_KEY_ID_01" + mchid + now.In(cst).Format("2006010215") + randomString(digits, 12),
		PublicKey:          string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: wxPubDER})),
		PublicKeyPrivate:   wxKeyPEM,
		APIv3Key:           randomString(alnum, 32),
		PlatformCerts:      []platformCert{cert},
	}, nil
}

// certSerial is a 40-hex-digit serial like WeChat's certificate serials.
func certSerial() string { return "5" + randomString(hexUpper, 39) }

// newPlatformCert self-signs a platform certificate valid for five years, as WeChat's are.
func newPlatformCert(key *rsa.PrivateKey, now time.Time) (platformCert, error) {
	serialHex := certSerial()
	serial, _ := new(big.Int).SetString(serialHex, 16)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Country: []string{"CN"}, Organization: []string{"Tenpay.com"},
			OrganizationalUnit: []string{"Tenpay.com Sandbox"}, CommonName: "Tenpay.com Sandbox Platform Certificate",
		},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.AddDate(5, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return platformCert{}, fmt.Errorf("wechatpay sandbox: create platform certificate: %w", err)
	}
	keyPEM, err := privateKeyPEM(key)
	if err != nil {
		return platformCert{}, err
	}
	return platformCert{
		SerialNo: serialHex,
		CertPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		KeyPEM:   keyPEM,
	}, nil
}

func privateKeyPEM(k *rsa.PrivateKey) (string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return "", fmt.Errorf("wechatpay sandbox: encode private key: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
}

// certificates answers GET /v3/certificates: every platform certificate, encrypted with the APIv3 key,
// the answer signed with the newest of them whatever the request's Wechatpay-Serial says.
func (s *Sandbox) certificates(ctx context.Context, c *apiCall) (reply, error) {
	type encrypted struct {
		Algorithm      string `json:"algorithm"`
		Nonce          string `json:"nonce"`
		AssociatedData string `json:"associated_data"`
		Ciphertext     string `json:"ciphertext"`
	}
	type item struct {
		SerialNo           string    `json:"serial_no"`
		EffectiveTime      string    `json:"effective_time"`
		ExpireTime         string    `json:"expire_time"`
		EncryptCertificate encrypted `json:"encrypt_certificate"`
	}
	var out struct {
		Data []item `json:"data"`
	}
	for _, pc := range s.keys.certs {
		nonce := randomString(alnum, 12)
		ct, err := encryptResource(s.keys.doc.APIv3Key, nonce, "certificate", []byte(pc.certPEM))
		if err != nil {
			return reply{}, err
		}
		out.Data = append(out.Data, item{
			SerialNo: pc.serial, EffectiveTime: formatTime(pc.cert.NotBefore), ExpireTime: formatTime(pc.cert.NotAfter),
			EncryptCertificate: encrypted{Algorithm: "AEAD_AES_256_GCM", Nonce: nonce, AssociatedData: "certificate", Ciphertext: ct},
		})
	}
	rep, err := jsonReply(http.StatusOK, out)
	newest := s.keys.newestCert().signingKey
	rep.key = &newest
	return rep, err
}
