"""Reputation: a score per username and per client address, from the outcome of logins.

Each failed password (or second-factor) attempt lowers both scores by one, each successful login
raises them by one, within [`LOWER`, `UPPER`]. The scores live in the cache for `WINDOW` seconds
from their first change and then start again from zero: a score recovers within the window. The
`reputation` policy kind (authentik's fields `check_ip`, `check_username`, `threshold`) fails
while a checked score is at or below its threshold; bound to a flow, it denies the flow, and
bound to the password stage's binding it ends the login (no stage authenticates the user).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from tessera.core import crypto
from tessera.core.policies import kinds

if TYPE_CHECKING:
    from tessera.core.policies.engine import Request

LOWER, UPPER = -20, 5
WINDOW = 3600.0


def _keys(username: str, client_ip: str) -> list[str]:
    keys = []
    if username:
        keys.append(f"reputation:user:{crypto.secrets.sha256_hex(username.casefold())}")
    if client_ip:
        keys.append(f"reputation:ip:{client_ip}")
    return keys


async def record(cache: Any, username: str, client_ip: str, delta: int) -> None:
    """Move the username's and the address's scores by `delta`, within [LOWER, UPPER]."""
    for key in _keys(username, client_ip):
        score = await cache.incr(key, WINDOW, by=delta)
        if score > UPPER or score < LOWER:  # take the step back: the score stays at its bound
            await cache.incr(key, WINDOW, by=-delta)


async def score(cache: Any, username: str, client_ip: str) -> tuple[int, int]:
    """(username score, address score); 0 when nothing is known."""
    user_key = _keys(username, "")
    ip_key = _keys("", client_ip)
    user = int(await cache.get(user_key[0]) or 0) if user_key else 0
    ip = int(await cache.get(ip_key[0]) or 0) if ip_key else 0
    return user, ip


class ReputationConfig(kinds.PolicyConfig):
    check_ip: bool = True
    check_username: bool = True
    threshold: Annotated[int, Field(ge=LOWER, le=UPPER)] = -5


class Reputation(kinds.Kind):
    kind = "reputation"
    Config = ReputationConfig
    cacheable = False  # the scores change with every login

    async def evaluate(self, request: Request) -> kinds.Verdict:
        assert isinstance(self.config, ReputationConfig)
        if request.cache is None:
            raise kinds.PolicyError("the reputation policy needs the cache")
        username = str(
            request.context.get("pending_user_identifier")
            or (request.user["username"] if request.user else "")
        )
        user_score, ip_score = await score(request.cache, username, request.client_ip)
        low = (self.config.check_username and user_score <= self.config.threshold) or (
            self.config.check_ip and ip_score <= self.config.threshold
        )
        if low:
            return kinds.Verdict(False, ["Too many failed logins; try again later."])
        return kinds.Verdict(True)
