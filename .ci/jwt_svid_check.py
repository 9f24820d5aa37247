#!/usr/bin/env python3
"""Checks Steward tokens with py-spiffe, a third-party JWT-SVID validator (PyPI `spiffe`).

Reads one JSON object on stdin:
  {"trust_domain": "...", "bundle": <the /.well-known/spiffe-bundle document>,
   "audience": "...", "token": "..."}
Prints the SPIFFE ID and exits 0 when py-spiffe accepts the token; prints the error and
exits 1 when it refuses it. Used by the Rust tests (crates/server/tests/api/tokens.rs).
"""
import json
import sys

from spiffe import JwtBundle, JwtSvid, TrustDomain


def main() -> int:
    req = json.load(sys.stdin)
    bundle = JwtBundle.parse(
        TrustDomain(req["trust_domain"]), json.dumps(req["bundle"]).encode()
    )
    try:
        svid = JwtSvid.parse_and_validate(req["token"], bundle, {req["audience"]})
    except Exception as e:  # every refusal, whatever py-spiffe calls it
        print(f"refused: {type(e).__name__}: {e}")
        return 1
    print(svid.spiffe_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
