"""Pydantic models of Tessera's custom resources (group `tessera.dev`, version `v1alpha1`).

The operator runtime parses every resource's spec with these models and writes statuses with them;
`tessera.operator.crds` generates the CustomResourceDefinitions in `crds/` from them. Stable names:

- `common`: `GROUP`, `VERSION`, `API_VERSION`, `READY` (the condition type), `Reason` (the
  `Ready` reasons), `Condition`, `Status`, `SecretRef`, `SecretKeyRef`, `Kind`, `managed_value`.
- `oauth2provider`: `OAuth2ProviderSpec`, `OAuth2ProviderStatus` (`providerPk`, `clientID`), `KIND`.
- `application`: `ApplicationSpec`, `ApplicationStatus` (`applicationUID`), `KIND`.
- `proxyprovider`: `ProxyProviderSpec`, `ProxyProviderStatus` (`providerPk`, `clientID`), `KIND`.
- `samlprovider`: `SAMLProviderSpec`, `SAMLProviderStatus` (`providerPk`, `entityID`,
  `metadataURL`), `KIND`.
- `ldapprovider`: `LDAPProviderSpec`, `LDAPProviderStatus` (`providerPk`, `baseDN`), `KIND`.
- `outpost`: `OutpostSpec`, `OutpostStatus` (`outpostUID`, `readyReplicas`,
  `connectedInstances`), `Component`, `KIND`.
- `KINDS`: every kind, in the order the CRDs are written.

`Model.to_kube()` gives a model's value with Kubernetes field names (camelCase), for status patches.
"""

from tessera.operator.resources import (
    application,
    common,
    ldapprovider,
    oauth2provider,
    outpost,
    proxyprovider,
    samlprovider,
)
from tessera.operator.resources.common import READY, Reason

KINDS = (
    oauth2provider.KIND,
    application.KIND,
    proxyprovider.KIND,
    outpost.KIND,
    samlprovider.KIND,
    ldapprovider.KIND,
)

__all__ = [
    "KINDS",
    "READY",
    "Reason",
    "application",
    "common",
    "ldapprovider",
    "oauth2provider",
    "outpost",
    "proxyprovider",
    "samlprovider",
]
