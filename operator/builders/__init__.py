"""Builders of the Kubernetes objects the operator writes: pure functions, no I/O.

- `outpost`: an `Outpost`'s token Secret, Deployment, Services, ServiceMonitor, Ingress and
  Traefik Middleware (`Plan`, `build`, `base_name`, `HEADERS`);
- `patches`: the resource's RFC 6902 patches applied to them (`apply`, `PatchError`).
"""

from tessera.operator.builders import outpost, patches

__all__ = ["outpost", "patches"]
