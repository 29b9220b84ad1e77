"""The proxy outpost: forward auth for Traefik, nginx, Caddy and Envoy, and a reverse proxy.

`Outpost` holds the state (providers, sessions, the core client); `create_app` is the standalone
application; the core's embedded outpost mounts `endpoints` at `PREFIX` and adds
`proxy_middleware`. `main.run` is `tessera outpost proxy`.
"""

from tessera.outposts.proxy.app import create_app, endpoints, proxy_middleware
from tessera.outposts.proxy.outpost import Options, Outpost
from tessera.outposts.proxy.providers import PREFIX

__all__ = ["PREFIX", "Options", "Outpost", "create_app", "endpoints", "proxy_middleware"]
