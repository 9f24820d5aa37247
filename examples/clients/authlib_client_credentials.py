#!/usr/bin/env python3
"""A workload token from Steward with Authlib, a common OAuth client library.

`client_credentials` authenticated by `private_key_jwt` (RFC 7523): the workload signs a
short-lived assertion with its own key (`steward identity key create ID --out key.pem`,
the public half saved in the governance repository) and gets a token for one audience.
The rules the assertion must follow are in docs/tokens.md, "Client assertions".

    pip install 'authlib==1.9.10' 'joserfc==1.8.0' 'requests==2.34.2'
    python3 authlib_client_credentials.py --server http://127.0.0.1:8080 \
        --spiffe-id spiffe://acme.example/ns/payments/sa/refund-batch \
        --key refund-batch.pem --audience spiffe://acme.example/ns/payments/sa/ledger

Each option can come from the environment instead: STEWARD_SERVER, STEWARD_SPIFFE_ID,
STEWARD_KEY_FILE, STEWARD_AUDIENCE. The access token is printed on stdout.
"""

import argparse
import os
import sys

import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from joserfc.jwk import ECKey

# Steward refuses client assertions valid for more than 300 s (`[tokens]
# assertion_max_lifetime_secs`), and Authlib signs them valid for 3600 s unless told
# otherwise: every assertion is made for one request, so a minute is plenty.
ASSERTION_LIFETIME_SECS = 60


class ShortLivedPrivateKeyJWT(PrivateKeyJWT):
    """Authlib's `private_key_jwt`, with assertions valid for ASSERTION_LIFETIME_SECS."""

    def sign(self, auth, token_endpoint):
        return private_key_jwt_sign(
            auth.client_secret,  # the ECKey given to OAuth2Session below
            client_id=auth.client_id,
            token_endpoint=token_endpoint,
            claims=self.claims,
            header=self.headers,
            alg=self.alg,
            expires_in=ASSERTION_LIFETIME_SECS,
        )


def main():
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default=env("STEWARD_SERVER"), help="Steward's URL")
    p.add_argument("--spiffe-id", default=env("STEWARD_SPIFFE_ID"), help="who asks")
    p.add_argument("--key", default=env("STEWARD_KEY_FILE"), help="its private key (PEM)")
    p.add_argument("--audience", default=env("STEWARD_AUDIENCE"), help="the API to call")
    p.add_argument(
        "--authlib-default-lifetime",
        action="store_true",
        help="sign with Authlib's default lifetime (3600 s) to see Steward refuse it",
    )
    args = p.parse_args()
    for name in ("server", "spiffe_id", "key", "audience"):
        if not getattr(args, name):
            p.error(f"--{name.replace('_', '-')} is required (or set its variable)")

    with open(args.key) as f:
        key = ECKey.import_key(f.read())  # P-256, PKCS#8 PEM

    # The assertion's aud is the token endpoint exactly as discovery names it.
    discovery_url = args.server.rstrip("/") + "/.well-known/openid-configuration"
    discovery = requests.get(discovery_url, timeout=10)
    discovery.raise_for_status()
    token_endpoint = discovery.json()["token_endpoint"]

    client_auth = ShortLivedPrivateKeyJWT
    if args.authlib_default_lifetime:
        client_auth = PrivateKeyJWT  # only to see the refusal
    with OAuth2Session(
        client_id=args.spiffe_id,  # the assertion's iss and sub
        client_secret=key,
        token_endpoint_auth_method="private_key_jwt",
    ) as session:
        # kid: the key's RFC 7638 thumbprint, which Steward accepts for a registered key.
        # Authlib puts a fresh random jti in every assertion (Steward accepts each once).
        session.register_client_auth_method(
            client_auth(token_endpoint, headers={"kid": key.thumbprint()}, alg="ES256")
        )
        try:
            token = session.fetch_token(
                token_endpoint,
                grant_type="client_credentials",
                audience=args.audience,  # required: the token's aud
                timeout=10,
            )
        except OAuthError as e:
            print(f"token request refused: {e.error}: {e.description}", file=sys.stderr)
            return 1
    print(token["access_token"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
