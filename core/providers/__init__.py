"""Protocol providers: how applications sign users in (OAuth2 / OpenID Connect first)."""
