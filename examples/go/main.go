// Seal a document's SM3 digest with seald, verify the seal through the API, sign and verify locally
// with P-256 (the standard library has no SM2), compute SM2's Z and sign in "e" mode, and print what
// a business system would store. Standard library only.
//
//	go run . -dir ../../dev -url https://localhost:8443 [-document FILE]
package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// SM2 curve parameters (GB/T 32918.5), for Z.
const sm2Params = "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC" + // a
	"28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93" + // b
	"32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7" + // xG
	"BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0" // yG

// sm2Z is Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA); ENTL is the ID's length in bits.
func sm2Z(publicXY []byte, id []byte) [32]byte {
	params, _ := hex.DecodeString(sm2Params)
	var in bytes.Buffer
	in.Write([]byte{byte(len(id) * 8 >> 8), byte(len(id) * 8)})
	in.Write(id)
	in.Write(params)
	in.Write(publicXY)
	return sm3Sum(in.Bytes())
}

type client struct {
	http *http.Client
	url  string
}

func (c *client) call(method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.url+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("content-type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.Unmarshal(data, &e)
		return fmt.Errorf("%s %s: %d %s: %s", method, path, resp.StatusCode, e.Error.Code, e.Error.Message)
	}
	return json.Unmarshal(data, out)
}

type signReply struct {
	Signature  string `json:"signature"`
	KeyVersion int    `json:"key_version"`
	Cert       string `json:"cert"`
	AuditSeq   uint64 `json:"audit_seq"`
}

type verdict struct {
	Valid   bool     `json:"valid"`
	Reasons []string `json:"reasons"`
}

type keyDetail struct {
	PublicKeyPEM string `json:"public_key_pem"`
	Z            string `json:"sm2_z_default_id"`
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func main() {
	dir := flag.String("dir", "", "a `seald dev` directory (ca.pem, app.pem, app.key)")
	url := flag.String("url", "https://localhost:8443", "seald's address")
	document := flag.String("document", "", "the file to seal (default: a sample text)")
	flag.Parse()
	if err := run(*dir, *url, *document); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(2)
	}
}

func run(dir, url, document string) error {
	if got := hex.EncodeToString(func() []byte { s := sm3Sum([]byte("abc")); return s[:] }()); got != "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0" {
		return fmt.Errorf("SM3 self-test failed: %s", got)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "app.pem"), filepath.Join(dir, "app.key"))
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	c := &client{url: url, http: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots}},
	}}
	name, doc := "notice.txt", []byte("关于启用电子印章的通知 (seald example)\n")
	if document != "" {
		if doc, err = os.ReadFile(document); err != nil {
			return err
		}
		name = filepath.Base(document)
	}

	var seals struct {
		Seals []struct{ ID, Name string } `json:"seals"`
	}
	if err := c.call("GET", "/v1/seals?state=active", nil, &seals); err != nil {
		return err
	}
	if len(seals.Seals) == 0 {
		return fmt.Errorf("this application is granted no active seal")
	}
	seal := seals.Seals[0]

	// 1. Seal the document's SM3 digest (input "digest": the seal's key signs SM3(Z || D)).
	digest := sm3Sum(doc)
	var sealed signReply
	if err := c.call("POST", "/v1/sign", map[string]any{"seal": seal.ID, "input": "digest", "data": b64(digest[:])}, &sealed); err != nil {
		return err
	}
	// 2. Verify it through the API, against the certificate the answer carries.
	var byServer verdict
	if err := c.call("POST", "/v1/verify", map[string]any{"certificate": sealed.Cert, "input": "digest", "data": b64(digest[:]), "signature": sealed.Signature}, &byServer); err != nil {
		return err
	}

	// 3. Local verification where the standard library can: P-256 with SHA-256.
	sha := sha256.Sum256(doc)
	var p256 signReply
	if err := c.call("POST", "/v1/sign", map[string]any{"key": "dev-p256", "input": "digest", "data": b64(sha[:])}, &p256); err != nil {
		return err
	}
	var p256Key keyDetail
	if err := c.call("GET", "/v1/keys/dev-p256", nil, &p256Key); err != nil {
		return err
	}
	block, _ := pem.Decode([]byte(p256Key.PublicKeyPEM))
	if block == nil {
		return fmt.Errorf("dev-p256: no PEM public key")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return err
	}
	ecPub, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return fmt.Errorf("dev-p256 is not an EC key")
	}
	sig, err := base64.StdEncoding.DecodeString(p256.Signature)
	if err != nil {
		return err
	}
	locally := ecdsa.VerifyASN1(ecPub, sha[:], sig)

	// 4. SM2's Z, computed here and compared with the server's; then "e" mode: e = SM3(Z || M).
	var sm2Key keyDetail
	if err := c.call("GET", "/v1/keys/dev-sm2", nil, &sm2Key); err != nil {
		return err
	}
	block, _ = pem.Decode([]byte(sm2Key.PublicKeyPEM))
	if block == nil {
		return fmt.Errorf("dev-sm2: no PEM public key")
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		Key       asn1.BitString
	}
	if _, err := asn1.Unmarshal(block.Bytes, &spki); err != nil || len(spki.Key.Bytes) != 65 {
		return fmt.Errorf("dev-sm2: not an uncompressed SM2 point (%v)", err)
	}
	z := sm2Z(spki.Key.Bytes[1:], []byte("1234567812345678"))
	e := sm3Sum(append(z[:], doc...))
	var eSigned signReply
	if err := c.call("POST", "/v1/sign", map[string]any{"key": "dev-sm2", "input": "e", "data": b64(e[:])}, &eSigned); err != nil {
		return err
	}
	var eVerdict verdict
	if err := c.call("POST", "/v1/verify", map[string]any{"key": "dev-sm2", "input": "message", "data": b64(doc), "signature": eSigned.Signature}, &eVerdict); err != nil {
		return err
	}

	record := map[string]any{
		"document":                  name,
		"document_sm3":              hex.EncodeToString(digest[:]),
		"seal":                      seal.ID,
		"seal_name":                 seal.Name,
		"key_version":               sealed.KeyVersion,
		"signature":                 sealed.Signature,
		"certificate":               sealed.Cert,
		"audit_seq":                 sealed.AuditSeq,
		"sealed_at":                 time.Now().UTC().Format(time.RFC3339),
		"verified_by_server":        byServer.Valid,
		"p256_verified_locally":     locally,
		"z_matches_server":          hex.EncodeToString(z[:]) == sm2Key.Z,
		"e_mode_verified_by_server": eVerdict.Valid,
	}
	out, _ := json.MarshalIndent(record, "", "  ")
	fmt.Println(string(out))
	if !(byServer.Valid && locally && record["z_matches_server"].(bool) && eVerdict.Valid) {
		os.Exit(1)
	}
	return nil
}
