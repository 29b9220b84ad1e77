"""`/api/v3/core/applications/`: slugs, lookup by slug, provider references, launch URLs."""

from __future__ import annotations

from typing import Any

import oauth2kit

API = Any


async def test_crud_and_lookup_by_slug(api: API) -> None:
    status, app = await api(
        "POST",
        "core/applications/",
        json={
            "name": "Grafana",
            "slug": "grafana",
            "meta_launch_url": "https://grafana.example.com",
            "group": "Monitoring",
        },
    )
    assert status == 201, app
    assert app["launch_url"] == "https://grafana.example.com" and app["policy_engine_mode"] == "any"
    status, by_slug = await api("GET", "core/applications/grafana/")
    assert status == 200 and by_slug["pk"] == app["pk"]
    status, by_pk = await api("GET", f"core/applications/{app['pk']}/")
    assert status == 200 and by_pk == by_slug
    status, patched = await api(
        "PATCH", "core/applications/grafana/", json={"policy_engine_mode": "all"}
    )
    assert status == 200 and patched["policy_engine_mode"] == "all"
    status, _ = await api("DELETE", "core/applications/grafana/")
    assert status == 204


async def test_invalid_and_duplicate_slugs(api: API) -> None:
    status, body = await api("POST", "core/applications/", json={"name": "A", "slug": "not a slug"})
    assert status == 400 and "slug" in body
    status, body = await api("POST", "core/applications/", json={"name": "A", "slug": "a" * 51})
    assert status == 400 and "slug" in body
    await api("POST", "core/applications/", json={"name": "A", "slug": "same"})
    status, body = await api("POST", "core/applications/", json={"name": "B", "slug": "same"})
    assert status == 400 and "slug" in body


async def test_dangling_provider_is_400(api: API) -> None:
    status, body = await api(
        "POST", "core/applications/", json={"name": "A", "slug": "a", "provider": 12345}
    )
    assert status == 400 and "provider" in body


async def test_javascript_launch_url_is_refused(api: API) -> None:
    status, body = await api(
        "POST",
        "core/applications/",
        json={"name": "X", "slug": "x", "meta_launch_url": "javascript:alert(1)"},
    )
    assert status == 400 and "meta_launch_url" in body


async def test_policy_engine_mode_enum(api: API) -> None:
    status, body = await api(
        "POST", "core/applications/", json={"name": "A", "slug": "a", "policy_engine_mode": "some"}
    )
    assert status == 400 and "policy_engine_mode" in body


async def test_deleting_an_application_removes_its_policy_bindings(
    api: API, make_group: Any
) -> None:
    group = await make_group("app-users")
    _, app = await api("POST", "core/applications/", json={"name": "B", "slug": "b"})
    status, binding = await api(
        "POST", "policies/bindings/", json={"target": app["pk"], "group": group["pk"], "order": 0}
    )
    assert status == 201, binding
    await api("DELETE", "core/applications/b/")
    _, left = await api("GET", f"policies/bindings/?target={app['pk']}")
    assert left["pagination"]["count"] == 0


async def test_provider_obj_is_the_provider_as_providers_all_shows_it(api: API) -> None:
    provider = await oauth2kit.make_provider(api, "billing")
    status, app = await api("GET", "core/applications/billing/")
    assert status == 200 and app["provider"] == provider["pk"]
    _, listed = await api("GET", f"providers/all/{provider['pk']}/")
    assert app["provider_obj"] == listed
    assert app["provider_obj"]["assigned_application_slug"] == "billing"
    # Policy bindings name the application itself; no backchannel providers.
    assert app["pbm_uuid"] == app["pk"]
    assert app["backchannel_providers"] == [] and app["backchannel_providers_obj"] == []
    _, bare = await api("POST", "core/applications/", json={"name": "Bare", "slug": "bare"})
    assert bare["provider"] is None and bare["provider_obj"] is None


async def test_backchannel_providers_are_refused_naming_the_field(api: API) -> None:
    provider = await oauth2kit.make_provider(api, "front")
    status, body = await api(
        "POST",
        "core/applications/",
        json={"name": "C", "slug": "c", "backchannel_providers": [provider["pk"]]},
    )
    assert status == 400 and "backchannel_providers" in body, body
    _, left = await api("GET", "core/applications/?slug=c")
    assert left["pagination"]["count"] == 0
    status, app = await api(
        "POST", "core/applications/", json={"name": "C", "slug": "c", "backchannel_providers": []}
    )
    assert status == 201 and app["backchannel_providers"] == []


async def test_meta_icon_is_stored_and_themed_urls_follow_authentiks_placeholder(
    api: API,
) -> None:
    icon = "https://cdn.example.com/wiki-%(theme)s.svg"
    status, app = await api(
        "POST", "core/applications/", json={"name": "W", "slug": "w", "meta_icon": icon}
    )
    assert status == 201, app
    assert app["meta_icon"] == icon and app["meta_icon_url"] == icon
    assert app["meta_icon_themed_urls"] == {
        "light": "https://cdn.example.com/wiki-light.svg",
        "dark": "https://cdn.example.com/wiki-dark.svg",
    }
    status, plain = await api("PATCH", "core/applications/w/", json={"meta_icon": "fa://fa-book"})
    assert status == 200 and plain["meta_icon_url"] == "fa://fa-book"
    assert plain["meta_icon_themed_urls"] is None
    status, none = await api("PATCH", "core/applications/w/", json={"meta_icon": ""})
    assert status == 200 and none["meta_icon_url"] is None


async def test_javascript_meta_icon_is_refused(api: API) -> None:
    for icon in ("javascript:alert(1)", "data:image/svg+xml,<svg onload=alert(1)>"):
        status, body = await api(
            "POST", "core/applications/", json={"name": "I", "slug": "i", "meta_icon": icon}
        )
        assert status == 400 and "meta_icon" in body, (icon, body)


async def test_meta_hide_is_stored_and_filtered(api: API) -> None:
    status, app = await api(
        "POST", "core/applications/", json={"name": "H", "slug": "h", "meta_hide": True}
    )
    assert status == 201 and app["meta_hide"] is True
    await api("POST", "core/applications/", json={"name": "S", "slug": "s"})
    _, hidden = await api("GET", "core/applications/?meta_hide=true&superuser_full_list=true")
    assert [a["slug"] for a in hidden["results"]] == ["h"]


async def test_launch_url_falls_back_to_the_providers_first_redirect_origin(api: API) -> None:
    await oauth2kit.make_provider(
        api,
        "notes",
        redirect_uris=[
            {"matching_mode": "regex", "url": "https://.*\\.example\\.org/cb"},
            {"matching_mode": "strict", "url": "https://notes.example.com:8443/oauth/cb?x=1"},
        ],
    )
    _, app = await api("GET", "core/applications/notes/")
    assert app["launch_url"] == "https://notes.example.com:8443"
    status, own = await api(
        "PATCH", "core/applications/notes/", json={"meta_launch_url": "https://notes.example.com/"}
    )
    assert status == 200 and own["launch_url"] == "https://notes.example.com/"
    _, bare = await api("POST", "core/applications/", json={"name": "Bare", "slug": "bare"})
    assert bare["launch_url"] is None


async def test_launch_url_placeholders_are_filled_for_the_caller(
    api: API, make_user: Any, make_token: Any
) -> None:
    """authentik's launch URL placeholders (`%(username)s`): filled with the caller's fields in
    `launch_url`, kept as written in `meta_launch_url`."""
    template = "https://wiki.example.com/u/%(username)s?id=%(id)d&mail=%(email)s"
    status, app = await api(
        "POST",
        "core/applications/",
        json={"name": "Wiki", "slug": "wiki-u", "meta_launch_url": template},
    )
    assert status == 201 and app["meta_launch_url"] == template
    _, me = await api("GET", "core/users/me/")
    admin = me["user"]["pk"]
    assert (
        app["launch_url"]
        == f"https://wiki.example.com/u/akadmin?id={admin}&mail=root%40example.com"
    )
    bob = await make_user("bob", email="bob@example.com")
    headers = {"Authorization": f"Bearer {await make_token('bob')}"}
    status, page = await api("GET", "core/applications/", headers=headers)
    assert status == 200, page
    (seen,) = [a for a in page["results"] if a["slug"] == "wiki-u"]
    assert (
        seen["launch_url"]
        == f"https://wiki.example.com/u/bob?id={bob['pk']}&mail=bob%40example.com"
    )


async def test_launch_url_placeholders_never_show_secrets_or_move_the_host(
    api: API, make_user: Any, make_token: Any
) -> None:
    """Only plain identity fields are filled, percent-encoded: `%(password)s` (authentik would
    show the hash), an unknown field or a stray `%` leave the URL as written, and a user's own
    name cannot turn the URL into one on another host."""
    cases = {
        "https://x.example.com/%(password)s": "https://x.example.com/%(password)s",
        "https://x.example.com/%(attributes)s": "https://x.example.com/%(attributes)s",
        "https://x.example.com/a%20b/%(username)s": "https://x.example.com/a%20b/%(username)s",
        "https://x.example.com/%(name)d": "https://x.example.com/%(name)d",
        "https://x.example.com/%%/%(username)s": "https://x.example.com/%/mallory",
        "https://%(name)s.corp.example.com/": "https://evil.example%2F%3F.corp.example.com/",
    }
    await make_user("mallory", name="evil.example/?")
    headers = {"Authorization": f"Bearer {await make_token('mallory')}"}
    for n, (template, expected) in enumerate(cases.items()):
        status, _ = await api(
            "POST",
            "core/applications/",
            json={"name": f"App {n}", "slug": f"app-{n}", "meta_launch_url": template},
        )
        assert status == 201
        status, app = await api("GET", f"core/applications/app-{n}/", headers=headers)
        assert status == 200 and app["launch_url"] == expected, (template, app["launch_url"])
