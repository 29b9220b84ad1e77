"""`identity.avatars`: a user's avatar as authentik computes it under its `avatars` modes."""

from __future__ import annotations

import base64

from tessera.core.identity import avatars


def _svg(uri: str) -> str:
    prefix = "data:image/svg+xml;base64,"
    assert uri.startswith(prefix)
    return base64.b64decode(uri.removeprefix(prefix)).decode()


def test_initials_of_first_and_last_word_or_first_two_letters() -> None:
    assert avatars.initials("Ada Lovelace") == "AL"
    assert avatars.initials("Ada King Lovelace") == "AL"
    assert avatars.initials("grace") == "GR"
    assert avatars.initials("x") == "X"


def test_initials_come_from_the_name_else_the_username_else_a_k() -> None:
    assert ">AL</text>" in _svg(avatars.avatar({"name": "Ada Lovelace", "username": "ada"}))
    assert ">BO</text>" in _svg(avatars.avatar({"name": "  ", "username": "bob"}))
    assert ">AK</text>" in _svg(avatars.avatar({"name": "", "username": ""}))


def test_the_colour_follows_the_name_and_the_text_contrasts() -> None:
    background, text = avatars.colours("Ada Lovelace")
    assert avatars.colours("ada lovelace") == (background, text)  # case does not matter
    channels = [int(background[i : i + 2], 16) for i in (0, 2, 4)]
    assert all(55 <= c <= 200 for c in channels)
    assert text in {"000", "fff"}
    assert avatars.colours("Grace Hopper") != (background, text)


def test_markup_in_a_name_is_escaped() -> None:
    svg = _svg(avatars.avatar({"name": "<script> &", "username": "x"}))
    assert "<script>" not in svg and "&lt;&amp;" in svg


def test_modes_are_tried_in_order() -> None:
    row = {
        "name": "Ada",
        "username": "ada",
        "attributes": {"profile": {"picture": "https://p/a.png"}},
    }
    assert avatars.avatar(row, "attributes.profile.picture,initials") == "https://p/a.png"
    assert avatars.avatar(row, "attributes.missing,initials").startswith("data:image/svg+xml")
    assert avatars.avatar(row, "none") == avatars.DEFAULT_PICTURE
    # Tessera fetches nothing from Gravatar: the mode gives nothing and the next one answers.
    assert avatars.avatar(row, "gravatar,initials").startswith("data:image/svg+xml")
    assert avatars.avatar(row, "attributes.missing") == avatars.DEFAULT_PICTURE
