#!/usr/bin/env python3
"""Seal a document's SM3 digest with seald, verify the seal through the API and locally, and print
what a business system would store.

Standard library for HTTPS and mutual TLS; gmssl (pip install gmssl) for SM3 and SM2.

    python3 seal_and_verify.py --dir ../../dev --url https://localhost:8443 [--document FILE]

`--dir` is a directory made by `seald dev` (ca.pem, app.pem, app.key); or give --ca, --cert and
--key yourself.
"""
import argparse
import base64
import binascii
import datetime
import http.client
import json
import os
import ssl
import sys
import urllib.parse

from gmssl import func, sm2, sm3

# SM2 curve parameters (GB/T 32918.5), for Z.
SM2_A = "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC"
SM2_B = "28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93"
SM2_GX = "32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7"
SM2_GY = "BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0"
DEFAULT_ID = b"1234567812345678"


def sm3_digest(data: bytes) -> bytes:
    return bytes.fromhex(sm3.sm3_hash(func.bytes_to_list(data)))


def sm2_z(public_xy: bytes, user_id: bytes = DEFAULT_ID) -> bytes:
    """Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA); ENTL is the ID's length in bits, 2 bytes."""
    entl = (len(user_id) * 8).to_bytes(2, "big")
    return sm3_digest(entl + user_id + bytes.fromhex(SM2_A + SM2_B + SM2_GX + SM2_GY) + public_xy)


class Seald:
    """A client of seald over mutual TLS."""

    def __init__(self, url, ca, cert, key, timeout=10):
        u = urllib.parse.urlparse(url)
        ctx = ssl.create_default_context(cafile=ca)
        ctx.load_cert_chain(cert, key)
        self.conn = http.client.HTTPSConnection(u.hostname, u.port or 443, context=ctx, timeout=timeout)

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"content-type": "application/json"} if data else {}
        self.conn.request(method, path, body=data, headers=headers)
        r = self.conn.getresponse()
        reply = json.loads(r.read() or b"{}")
        if r.status >= 300:
            err = reply.get("error", {})
            raise SystemExit(f"{method} {path}: {r.status} {err.get('code')}: {err.get('message')}")
        return reply


def der_children(der: bytes, at: int = 0):
    """The (tag, start of content, end) of each DER element inside the constructed element at `at`."""
    def header(i):
        tag, n = der[i], der[i + 1]
        i += 2
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(der[i:i + k], "big")
            i += k
        return tag, i, i + n
    _, i, end = header(at)
    out = []
    while i < end:
        tag, start, stop = header(i)
        out.append((tag, i, start, stop))
        i = stop
    return out


def public_key_of(cert_pem: str) -> bytes:
    """x || y of the certificate's SM2 public key (tbsCertificate's subjectPublicKeyInfo)."""
    der = base64.b64decode("".join(l for l in cert_pem.splitlines() if "-----" not in l))
    tbs_at = der_children(der)[0][1]
    fields = der_children(der, tbs_at)
    if fields[0][0] == 0xA0:  # [0] version
        fields = fields[1:]
    spki_at = fields[5][1]
    _, _, start, stop = der_children(der, spki_at)[1]  # BIT STRING: 00 04 x y
    point = der[start + 1:stop]
    assert point[0] == 4 and len(point) == 65, "an uncompressed SM2 point"
    return point[1:]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default=os.environ.get("SEALD_URL", "https://localhost:8443"))
    ap.add_argument("--dir", help="a `seald dev` directory (ca.pem, app.pem, app.key)")
    ap.add_argument("--ca"), ap.add_argument("--cert"), ap.add_argument("--key")
    ap.add_argument("--document", help="the file to seal (default: a sample text)")
    a = ap.parse_args()
    ca = a.ca or os.path.join(a.dir, "ca.pem")
    cert = a.cert or os.path.join(a.dir, "app.pem")
    key = a.key or os.path.join(a.dir, "app.key")
    if a.document:
        name, document = os.path.basename(a.document), open(a.document, "rb").read()
    else:
        name, document = "notice.txt", "关于启用电子印章的通知 (seald example)\n".encode()

    seald = Seald(a.url, ca, cert, key)
    seals = seald.call("GET", "/v1/seals?state=active")["seals"]
    if not seals:
        raise SystemExit("this application is granted no active seal")
    seal = seals[0]

    # 1. Seal the document's SM3 digest (input "digest": the seal's key signs SM3(Z || D)).
    digest = sm3_digest(document)
    signed = seald.call("POST", "/v1/sign", {"seal": seal["id"], "input": "digest", "data": base64.b64encode(digest).decode()})

    # 2. Verify through the API, against the certificate the answer carries.
    verdict = seald.call("POST", "/v1/verify", {
        "certificate": signed["cert"], "input": "digest",
        "data": base64.b64encode(digest).decode(), "signature": signed["signature"],
    })

    # 3. Verify locally with gmssl: the signed message is D, with Z for the default ID.
    xy = public_key_of(signed["cert"])
    local = sm2.CryptSM2(private_key=None, public_key=xy.hex(), asn1=True)
    # gmssl 3.2.2's constructor does public_key.lstrip("04") when the hex starts with "04", which
    # also eats the leading '0' and '4' digits of x: a key whose x begins with byte 0x04 (one in 256)
    # then fails with a TypeError. Set the key after construction, as x || y unchanged.
    local.public_key = xy.hex()
    locally = local.verify_with_sm3(base64.b64decode(signed["signature"]).hex(), digest)

    # 4. The third mode, "e": compute Z and e = SM3(Z || M) here; seald signs e as it is. Z for a plain
    #    key is also in GET /v1/keys/{id}: compare, then let the server verify the message.
    key_info = seald.call("GET", "/v1/keys/dev-sm2")
    z = sm2_z(public_xy_from_spki(key_info["public_key_pem"]))
    z_agrees = z.hex() == key_info["sm2_z_default_id"]
    e = sm3_digest(z + document)
    signed_e = seald.call("POST", "/v1/sign", {"key": "dev-sm2", "input": "e", "data": base64.b64encode(e).decode()})
    e_verdict = seald.call("POST", "/v1/verify", {
        "key": "dev-sm2", "input": "message", "data": base64.b64encode(document).decode(),
        "signature": signed_e["signature"],
    })

    record = {
        "document": name,
        "document_sm3": digest.hex(),
        "seal": seal["id"],
        "seal_name": seal["name"],
        "key_version": signed["key_version"],
        "signature": signed["signature"],
        "certificate": signed["cert"],
        "audit_seq": signed["audit_seq"],
        "sealed_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "verified_by_server": verdict["valid"],
        "verified_locally": bool(locally),
        "z_matches_server": z_agrees,
        "e_mode_verified_by_server": e_verdict["valid"],
    }
    print(json.dumps(record, ensure_ascii=False, indent=2))
    checks = ("verified_by_server", "verified_locally", "z_matches_server", "e_mode_verified_by_server")
    sys.exit(0 if all(record[c] for c in checks) else 1)


def public_xy_from_spki(pem: str) -> bytes:
    """x || y of an SPKI PEM's uncompressed EC point."""
    der = base64.b64decode("".join(l for l in pem.splitlines() if "-----" not in l))
    _, _, start, stop = der_children(der)[1]
    point = der[start + 1:stop]
    assert point[0] == 4 and len(point) == 65, "an uncompressed SM2 point"
    return point[1:]


if __name__ == "__main__":
    main()
