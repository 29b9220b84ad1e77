"""Front-channel logout steps, which no flow binds: a provider inserts them into a logout flow
while it runs (`FlowState.insert_provided`, from an `Executor.before_logout` hook), as
authentik's providers inject their in-memory logout stages.

`IframeLogout` (`ak-provider-iframe-logout`) lists the messages of every service provider to
tell at once; the page loads each in a hidden frame and answers when they loaded (or gave up).
`NativeLogout` (`ak-provider-saml-native-logout`) sends the browser itself to one service
provider after another; each sends it back to the flow, which shows the next one. What they show
is what the hook left in the flow's context (`IFRAME_URLS`, `NATIVE_STEPS`), built and signed by
the provider; these stages only hand it out, once.
"""

from __future__ import annotations

from typing import Any

from tessera.core.stages import base

IFRAME_URLS = "logout_iframe_urls"  # list of LogoutURL objects
NATIVE_STEPS = "logout_native_steps"  # list of NativeLogoutChallenge fields, one per SP


class IframeLogout(base.Stage):
    kind = "provider_iframe_logout"
    component = "ak-provider-iframe-logout"

    async def before(self, run: base.Run) -> base.Outcome | None:
        return None if run.state.context.get(IFRAME_URLS) else base.Outcome.next()

    async def challenge(self, run: base.Run) -> dict[str, Any]:
        return {"logout_urls": list(run.state.context.get(IFRAME_URLS, []))}

    async def on_valid(self, run: base.Run, response: base.ChallengeResponse) -> base.Outcome:
        run.state.context.pop(IFRAME_URLS, None)  # the frames loaded, or the page gave up
        return base.Outcome.next()


class NativeLogout(base.Stage):
    kind = "provider_native_logout"
    component = "ak-provider-saml-native-logout"

    async def before(self, run: base.Run) -> base.Outcome | None:
        """Back from the last service provider: go on without a page."""
        return None if run.state.context.get(NATIVE_STEPS) else base.Outcome.next()

    async def challenge(self, run: base.Run) -> dict[str, Any]:
        """The next service provider, taken off the list (the executor saves the state after
        rendering, so each is shown once); `is_complete` when none is left."""
        pending = list(run.state.context.get(NATIVE_STEPS, []))
        if not pending:
            return {"is_complete": True}
        step = pending.pop(0)
        run.state.context[NATIVE_STEPS] = pending
        return dict(step)

    async def on_valid(self, run: base.Run, response: base.ChallengeResponse) -> base.Outcome:
        """A client that answers instead of following the step: the next one, or done."""
        if run.state.context.get(NATIVE_STEPS):
            return base.Outcome("retry")
        run.state.context.pop(NATIVE_STEPS, None)
        return base.Outcome.next()


KINDS: tuple[type[base.Stage], ...] = (IframeLogout, NativeLogout)
