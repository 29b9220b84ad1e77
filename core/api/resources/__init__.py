"""The admin API's model resources, one module per object kind."""

from tessera.core.api.resources import applications, events, groups, keypairs, tokens, users

ALL = (
    users.Users(),
    groups.Groups(),
    applications.Applications(),
    tokens.Tokens(),
    keypairs.CertificateKeyPairs(),
    events.Events(),
)

__all__ = ["ALL"]
