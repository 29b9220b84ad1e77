"""The admin API's model resources, one module per object kind."""

from tessera.core.api.resources import (
    applications,
    authenticators,
    events,
    flows,
    groups,
    invitations,
    keypairs,
    outposts,
    policies,
    policy_bindings,
    sessions,
    stages,
    tokens,
    users,
)

ALL = (
    users.Users(),
    groups.Groups(),
    applications.Applications(),
    tokens.Tokens(),
    sessions.AuthenticatedSessions(),
    keypairs.CertificateKeyPairs(),
    events.Events(),
    flows.FlowInstances(),
    flows.FlowStageBindings(),
    *stages.all_resources(),
    invitations.Invitations(),
    *policies.all_resources(),
    policy_bindings.PolicyBindings(),
    *authenticators.all_resources(),
    outposts.Outposts(),
)

__all__ = ["ALL"]
