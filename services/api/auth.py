"""Bearer tokens from the settings: ``api_token`` has every scope; ``api_tokens`` entries have their scopes
and optionally a rep, who then sees and changes only their own tasks."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from fastapi import HTTPException

from services.common.settings import Settings

ALL_SCOPES = frozenset({"read", "write", "admin"})


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[str]
    rep: str | None = None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class TokenBook:
    def __init__(self, settings: Settings) -> None:
        entries: list[tuple[bytes, Principal]] = []
        if settings.api_token and settings.api_token.get_secret_value():
            entries.append(
                (_digest(settings.api_token.get_secret_value()), Principal("api_token", ALL_SCOPES))
            )
        for t in settings.api_tokens:
            if t.token.get_secret_value():
                entries.append(
                    (_digest(t.token.get_secret_value()), Principal(t.name, frozenset(t.scopes), t.rep))
                )
        self._entries = entries

    def find(self, presented: str) -> Principal | None:
        """Compares with every token in constant time, whichever matches."""
        digest = _digest(presented)
        found: Principal | None = None
        for expected, principal in self._entries:
            if hmac.compare_digest(digest, expected) and found is None:
                found = principal
        return found


def unauthorized(error: str | None = None) -> HTTPException:
    challenge = "Bearer" if error is None else f'Bearer error="{error}"'
    return HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": challenge})
