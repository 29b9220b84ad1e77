"""Wire types: pydantic models of the `/api/v3` objects, shared by the core, operator and outposts.

Request models validate hostile input at the edge (unknown fields, wrong types, sizes, NUL bytes,
lone surrogates); response models describe what the API returns. The OpenAPI document is generated
from these same models.
"""

# The submodules load on first use (PEP 562): an outpost that reads `wire.outposts` does not pay
# for the models of every admin object (tens of MiB and a third of a second at start).
import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tessera.core.wire import (
        admin,
        applications,
        authenticators,
        challenges,
        common,
        core,
        crypto,
        durations,
        emails,
        events,
        flows,
        kinds,
        ldap,
        oauth2,
        outposts,
        policies,
        root,
        saml,
        sources,
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
    "emails",
    "events",
    "flows",
    "kinds",
    "ldap",
    "oauth2",
    "outposts",
    "policies",
    "root",
    "saml",
    "sources",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
