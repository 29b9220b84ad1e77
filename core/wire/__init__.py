"""Wire types: pydantic models of the `/api/v3` objects, shared by the core, operator and outposts.

Request models validate hostile input at the edge (unknown fields, wrong types, sizes, NUL bytes,
lone surrogates); response models describe what the API returns. The OpenAPI document is generated
from these same models.
"""

from tessera.core.wire import (
    admin,
    applications,
    authenticators,
    challenges,
    common,
    core,
    crypto,
    durations,
    events,
    flows,
    kinds,
    oauth2,
    outposts,
    policies,
    root,
)

__all__ = [
    "admin",
    "applications",
    "authenticators",
    "challenges",
    "common",
    "core",
    "crypto",
    "durations",
    "events",
    "flows",
    "kinds",
    "oauth2",
    "outposts",
    "policies",
    "root",
]
