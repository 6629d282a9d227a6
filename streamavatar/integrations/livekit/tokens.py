"""Avatar join tokens: minting one on the agent side, reading (not verifying) one on the avatar side.

The avatar joins the agent's room as its own participant (kind ``agent``) whose token carries the attribute
``lk.publish_on_behalf = <agent identity>``: LiveKit clients then show the avatar's tracks as the agent's.
Only the agent needs the API secret; the dispatcher and the avatar worker only read the claims (LiveKit
verifies the signature when the worker joins).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import re
import time
from typing import Any

#: The token attribute LiveKit uses to attribute an avatar's tracks to an agent.
ATTRIBUTE_PUBLISH_ON_BEHALF = "lk.publish_on_behalf"

#: Room names the dispatcher accepts (LiveKit allows more; anything here is safe in logs and argv).
ROOM_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:=@+-]{0,127}$")


class TokenError(ValueError):
    """A token that cannot be used to join (malformed, expired, for another room, no agent attribute)."""


def mint_avatar_token(*, room_name: str, agent_identity: str, avatar_identity: str,
                      avatar_name: str = "streamavatar", api_key: str | None = None, api_secret: str | None = None,
                      ttl: datetime.timedelta = datetime.timedelta(hours=1)) -> str:
    """A join token for the avatar participant (``LIVEKIT_API_KEY`` / ``LIVEKIT_API_SECRET`` by default)."""
    from livekit import api

    return (api.AccessToken(api_key, api_secret)
            .with_identity(avatar_identity)
            .with_name(avatar_name)
            .with_kind("agent")
            .with_grants(api.VideoGrants(room_join=True, room=room_name))
            .with_attributes({ATTRIBUTE_PUBLISH_ON_BEHALF: agent_identity})
            .with_ttl(ttl)
            .to_jwt())


def token_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified; :class:`TokenError` if it is not a JWT with a JSON payload."""
    if not isinstance(token, str) or len(token) > 8192:
        raise TokenError("token must be a string of at most 8192 characters")
    parts = token.split(".")
    if len(parts) != 3 or not all(re.fullmatch(r"[A-Za-z0-9_-]+", p) for p in parts):
        raise TokenError("token is not a JWT (three base64url parts)")
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (binascii.Error, ValueError):
        raise TokenError("token payload is not base64url JSON") from None
    if not isinstance(claims, dict):
        raise TokenError("token payload is not a JSON object")
    return claims


def check_avatar_token(token: str, room_name: str, *, now: float | None = None) -> dict[str, Any]:
    """Claims of an avatar join token for ``room_name``; :class:`TokenError` says what is wrong with it."""
    claims = token_claims(token)
    video = claims.get("video")
    if not isinstance(video, dict) or not video.get("roomJoin"):
        raise TokenError("token does not grant roomJoin")
    if video.get("room") != room_name:
        raise TokenError("token is for another room")
    exp = claims.get("exp")
    if isinstance(exp, int | float) and exp < (time.time() if now is None else now):
        raise TokenError("token has expired")
    attrs = claims.get("attributes")
    if not isinstance(attrs, dict) or not attrs.get(ATTRIBUTE_PUBLISH_ON_BEHALF):
        raise TokenError(f"token has no {ATTRIBUTE_PUBLISH_ON_BEHALF} attribute (the agent's identity)")
    if not claims.get("sub"):
        raise TokenError("token has no identity (sub)")
    return claims
