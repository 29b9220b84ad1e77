"""Have I Been Pwned's k-anonymity range check, for the password policy
(`check_have_i_been_pwned`).

Called by `policies.checks.Password`. Only the first five hex digits of the password's SHA-1 leave
this server: `GET <outbound.pwned_passwords_url>/range/<prefix>` with `Add-Padding: true`, which
answers every suffix of that prefix it knows as `SUFFIX:COUNT` lines, padded with made-up
suffixes of count 0 (so that the answer's size tells an observer nothing). The password's count
is that of its own suffix, 0 when absent.

# SECURITY: the password and the rest of its digest never leave the process, nor reach a log.
A service that cannot be reached, answers with another status, too much or what is not the range
format raises `Unavailable`: the caller fails the check rather than passing it.
"""

from __future__ import annotations

import aiohttp

from tessera.core import config, crypto, errors

PREFIX_LENGTH = 5
MAX_BODY = 4 * 1024 * 1024  # a padded answer is about 40 kB
USER_AGENT = "Tessera password policy"


class Unavailable(errors.TesseraError):
    """The range service could not give an answer."""


def split(password: str) -> tuple[str, str]:
    """The digest's prefix (sent) and suffix (kept)."""
    digest = crypto.passwords.breach_digest(password)
    return digest[:PREFIX_LENGTH], digest[PREFIX_LENGTH:]


async def count(settings: config.Outbound, password: str) -> int:
    """How many times the range service has seen `password` in breaches."""
    prefix, suffix = split(password)
    url = f"{settings.pwned_passwords_url.rstrip('/')}/range/{prefix}"
    timeout = aiohttp.ClientTimeout(total=settings.timeout)
    headers = {"Add-Padding": "true", "User-Agent": USER_AGENT}
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, headers=headers, allow_redirects=False) as response,
        ):
            if response.status != 200:
                raise Unavailable(f"the range service answered {response.status}")
            body = await response.content.read(MAX_BODY + 1)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise Unavailable(f"the range service cannot be reached ({type(exc).__name__})") from None
    if len(body) > MAX_BODY:
        raise Unavailable("the range service's answer is too large")
    return found(body, suffix)


def found(body: bytes, suffix: str) -> int:
    """The count of `suffix` in a range answer; padding lines (count 0) count for nothing."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise Unavailable("the range service's answer is not the range format") from None
    seen = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        other, sep, times = line.strip().partition(":")
        if not sep or len(other) != 40 - PREFIX_LENGTH or not times.isdigit():
            raise Unavailable("the range service's answer is not the range format")
        if int(times) > 0 and other.upper() == suffix:
            seen = int(times)
    return seen
