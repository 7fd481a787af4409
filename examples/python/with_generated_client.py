#!/usr/bin/env python3
"""Use a client generated from seald's served contract: list the granted seals, then sign a batch in
which one item is bad, and read each result by its type.

    curl --cacert dev/ca.pem --cert dev/app.pem --key dev/app.key https://localhost:8443/v1/openapi.yaml -o seald.yaml
    pip install openapi-python-client
    openapi-python-client generate --path seald.yaml --meta none --output-path seald_client
    python3 with_generated_client.py --client-dir . --dir ../../dev --url https://localhost:8443
"""
import argparse
import base64
import hashlib
import json
import os
import ssl
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--client-dir", required=True, help="the directory holding the generated seald_client package")
    ap.add_argument("--dir", required=True, help="a `seald dev` directory (ca.pem, app.pem, app.key)")
    ap.add_argument("--url", default="https://localhost:8443")
    a = ap.parse_args()
    sys.path.insert(0, a.client_dir)
    from seald_client import Client
    from seald_client.api.seals import list_seals
    from seald_client.api.signing import sign_batch
    from seald_client.models import BatchSignBody, InputMode, SignBody, SignReply

    tls = ssl.create_default_context(cafile=os.path.join(a.dir, "ca.pem"))
    tls.load_cert_chain(os.path.join(a.dir, "app.pem"), os.path.join(a.dir, "app.key"))
    client = Client(base_url=a.url, verify_ssl=tls, raise_on_unexpected_status=True)

    seals = list_seals.sync(client=client).seals
    seal = next(s for s in seals if s.state == "active")
    digest = base64.b64encode(hashlib.sha256(b"not SM3, but 32 bytes all the same").digest()).decode()
    batch = BatchSignBody(items=[
        SignBody(seal=seal.id, input_=InputMode.DIGEST, data=digest),
        SignBody(key="no-such-key", input_=InputMode.DIGEST, data=digest),
    ])
    good, bad = sign_batch.sync(client=client, body=batch).results
    report = {
        "seal": seal.id,
        "first_is_a_signature": isinstance(good, SignReply) and len(good.signature) > 60,
        "second_is_an_error": not isinstance(bad, SignReply) and bad.error.code == "unknown_key",
        "second_error_code": getattr(getattr(bad, "error", None), "code", None),
    }
    print(json.dumps(report, indent=2))
    sys.exit(0 if report["first_is_a_signature"] and report["second_is_an_error"] else 1)


if __name__ == "__main__":
    main()
