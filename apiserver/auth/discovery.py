"""Service-account issuer discovery: the OpenID Connect documents that let anyone verify cluster tokens.

`GET /.well-known/openid-configuration` names the issuer and where its keys are; `GET /openid/v1/jwks` lists
the public verification keys. Both are public, as kube-apiserver serves them to unauthenticated callers
through the system:service-account-issuer-discovery role.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response

from skiff.pki.tokens import ServiceAccountKeys, algorithm_for

OPENID_CONFIGURATION_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"
CACHE_CONTROL = "public, max-age=3600"


def openid_configuration(issuer: str, jwks_uri: str, keys: ServiceAccountKeys) -> dict[str, object]:
    algorithms = sorted({algorithm_for(k) for k in keys.verification_keys})
    return {
        "issuer": issuer,
        "jwks_uri": jwks_uri or f"{issuer.rstrip('/')}{JWKS_PATH}",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algorithms,
    }


def discovery_handlers(
    issuer: str, jwks_uri: str, keys: ServiceAccountKeys
) -> dict[str, Callable[[Request], Awaitable[Response]]]:
    """Path → handler for both documents; the bodies are computed once, since the keys change only at start."""
    configuration = orjson.dumps(openid_configuration(issuer, jwks_uri, keys))
    jwks = orjson.dumps(keys.jwks())
    headers = {"Cache-Control": CACHE_CONTROL}

    async def serve_configuration(_request: Request) -> Response:
        return Response(configuration, media_type="application/json", headers=headers)

    async def serve_jwks(_request: Request) -> Response:
        return Response(jwks, media_type="application/jwk-set+json", headers=headers)

    return {OPENID_CONFIGURATION_PATH: serve_configuration, JWKS_PATH: serve_jwks}
