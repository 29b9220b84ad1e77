"""Request and response models generated for a plug-in kind (stage or policy) from its `Config`.

`wire.flows` and `wire.policies` call `kind_models` with their base fields; the API calls those
for every registered kind, so a new kind gets its endpoints and OpenAPI schemas without wire code.
"""

from __future__ import annotations

from typing import Any

import pydantic

from tessera.core.wire.common import Request, Response


def kind_models(
    name: str,
    config: type[Request],
    request_fields: dict[str, Any],
    response_base: type[Response],
) -> tuple[type[Request], type[Response]]:
    """A kind's request model (`request_fields` plus its settings, unknown fields refused) and
    response model (`response_base` plus its settings, but those `config.write_only` names)."""
    reserved = set(request_fields) | set(response_base.model_fields)
    clash = reserved & set(config.model_fields)
    if clash:
        raise TypeError(f"{config.__qualname__} redefines {sorted(clash)}")
    request: type[Request] = pydantic.create_model(
        f"{name}Request", __base__=config, __module__=__name__, **request_fields
    )
    write_only: frozenset[str] = getattr(config, "write_only", frozenset())  # a ClassVar
    settings = {k: (f.annotation, f) for k, f in config.model_fields.items() if k not in write_only}
    response: type[Response] = pydantic.create_model(  # type: ignore[call-overload]
        name, __base__=response_base, __module__=__name__, **settings
    )
    return request, response
