"""The LDAP outpost's engine without a network: DNs, the DIT as authentik lays it out, RFC 4515
filters over the indexed directory, scopes, attribute selection, providers' views, the bind
cache. Filters are written as RFC 4515 text, encoded by ldaptor and decoded by ours, so the
decoder is checked against another implementation on every case."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from ldapkit import BASE, WHEN, config, group_uuid, parse_filter, records, user_dn
from ldaptor.protocols import pureldap

from tessera.core.wire import ldap as wire
from tessera.outposts.ldap import ber, bindcache, dit, dn, filters
from tessera.outposts.ldap import directory as directory_
from tessera.outposts.ldap import messages as m
from tessera.outposts.ldap.outpost import Outpost
from tessera.outposts.ldap.provider import Provider, Session

LAYOUT = dit.Layout(BASE, 2000, 4000)
RECORDS = records(20)
DIRECTORY = directory_.Directory(dit.build(LAYOUT, RECORDS.users, RECORDS.groups))
STAFF = f"cn=staff,ou=groups,{BASE}"
EVERYONE = f"cn=everyone,ou=groups,{BASE}"


def search_op(
    text: str, base: str = BASE, scope: int = 2, attributes: tuple[str, ...] = ()
) -> m.Search:
    request = pureldap.LDAPSearchRequest(
        baseObject=base, scope=scope, filter=parse_filter(text), attributes=list(attributes)
    )
    message = m.decode_message(pureldap.LDAPMessage(request, id=7).toWire())
    assert message.id == 7
    assert isinstance(message.op, m.Search)
    return message.op


def cns(text: str, base: str = BASE, scope: int = 2) -> list[str]:
    op = search_op(text, base, scope)
    found = DIRECTORY.search(dn.normalize(base), scope, op.filter)
    return [e.dn.split(",", 1)[0] + "," + e.dn.split(",")[1] for e in found]


# DNs -----------------------------------------------------------------------------------------


def test_dn_normal_form() -> None:
    assert dn.normalize("CN=Alice , OU=Users,DC=Ldap") == "cn=alice,ou=users,dc=ldap"
    assert dn.normalize("") == ""
    assert dn.normalize(r"cn=a\,b,dc=x") == r"cn=a\,b,dc=x"
    assert dn.normalize(r"cn=a\2Cb,dc=x") == r"cn=a\,b,dc=x"
    assert dn.normalize("uid=x+cn=y,dc=z") == "cn=y+uid=x,dc=z"
    for bad in ("cn", "=x", "cn=a,,dc=b"):
        with pytest.raises(dn.DNError):
            dn.normalize(bad)


def test_dn_escape_round_trip() -> None:
    for value in ("plain", "a,b", " lead", "trail ", "#hash", 'q"uote', "semi;colon", "a+b=c"):
        built = f"cn={dn.escape(value)},dc=x"
        atype, got, parent = dn.first_rdn(dn.normalize(built))
        assert (atype, got, parent) == ("cn", value.lower(), "dc=x")


# The DIT -------------------------------------------------------------------------------------


def test_user_entry_as_authentik_lays_it_out() -> None:
    entry = DIRECTORY.get(dn.normalize(user_dn("alice")))
    assert entry is not None
    assert entry.dn == user_dn("alice")
    assert entry.values("objectclass") == dit.USER_CLASSES
    alice = next(u for u in RECORDS.users if u.username == "alice")
    assert entry.values("uidnumber") == (str(2000 + alice.pk),)
    assert entry.values("gidnumber") == (str(2000 + alice.pk),)
    for name in ("cn", "uid", "samaccountname"):
        assert entry.values(name) == ("alice",)
    assert entry.values("mail") == ("alice@example.com",)
    assert entry.values("displayname") == ("Alice Example",)
    assert entry.values("memberof") == (STAFF,)
    assert entry.values("entryuuid") == (alice.uuid,)
    assert entry.values("ak-active") == ("TRUE",)
    assert entry.values("ak-superuser") == ("FALSE",)
    assert entry.values("createtimestamp") == ("20260102030405Z",)
    assert entry.values("homedirectory") == ("/home/alice",)
    assert entry.values("settings-locale") == ("de_CH",)  # flattened, key sanitised
    assert entry.attrs["settings-locale"][0] == "settings-locale"


def test_custom_attributes_flattened_and_sanitised() -> None:
    user = RECORDS.users[0].model_copy(
        update={
            "attributes": {
                "uidNumber": "7777",
                "cn": "not-the-dn",
                "home.dir/x": "/srv/%s",
                "tags": ["a", 1, True, {"nested": "no"}],
                "1st": "x",
                "none": None,
            }
        }
    )
    entry, uid_number = dit.user_entry(LAYOUT, user, [])
    assert uid_number == 7777 and entry.values("uidnumber") == ("7777",)
    assert entry.values("gidnumber") == ("7777",)
    assert entry.values("cn") == (user.username,)  # the DN's attribute is not replaced
    assert entry.values("home-dir-x") == (f"/srv/{user.username}",)
    assert entry.values("tags") == ("a", "1", "TRUE")
    assert entry.values("ak-1st") == ("x",)
    assert "none" not in entry.attrs


def test_groups_members_and_virtual_groups() -> None:
    staff = DIRECTORY.get(dn.normalize(STAFF))
    everyone = DIRECTORY.get(dn.normalize(EVERYONE))
    assert staff is not None and everyone is not None
    assert staff.values("objectclass") == dit.GROUP_CLASSES
    assert staff.values("gidnumber") == ("4001",)
    assert user_dn("alice") in staff.values("member")
    assert STAFF in everyone.values("member")  # child groups are members
    assert staff.values("memberof") == (EVERYONE,)
    assert staff.values("entryuuid") == (group_uuid("staff"),)
    assert everyone.values("description") == ("all of us",)
    virtual = DIRECTORY.get(dn.normalize(f"cn=alice,ou=virtual-groups,{BASE}"))
    alice = DIRECTORY.get(dn.normalize(user_dn("alice")))
    assert virtual is not None and alice is not None
    assert virtual.values("gidnumber") == alice.values("uidnumber")
    assert virtual.values("member") == (user_dn("alice"),)
    assert "goauthentik.io/ldap/virtual-group" in virtual.values("objectclass")


def test_containers_and_root_dse() -> None:
    root = DIRECTORY.get(dn.normalize(BASE))
    assert root is not None and root.values("objectclass") == ("top", "domain")
    assert root.values("dc") == ("ldap",)
    for ou in ("users", "groups", "virtual-groups"):
        assert DIRECTORY.get(f"ou={ou},{BASE}") is not None
    dse = dit.root_dse([BASE, "dc=other"])
    assert dse.values("namingcontexts") == (BASE, "dc=other")
    assert dit.START_TLS in dse.values("supportedextension")
    assert dit.WHO_AM_I in dse.values("supportedextension")
    assert dit.PAGED_RESULTS in dse.values("supportedcontrol")


def test_generalized_time_is_utc() -> None:
    cest = dt.timezone(dt.timedelta(hours=2))
    assert dit.generalized_time(dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=cest)) == "20260601100000Z"


# Filters -------------------------------------------------------------------------------------

CASES = [
    ("(uid=alice)", ["cn=alice,ou=users", "cn=alice,ou=virtual-groups"]),
    ("(UID=ALICE)", ["cn=alice,ou=users", "cn=alice,ou=virtual-groups"]),
    ("(&(objectClass=user)(uid=alice))", ["cn=alice,ou=users"]),
    ("(&(objectClass=inetOrgPerson)(mail=admin@example.com))", ["cn=admin,ou=users"]),
    ("(|(cn=alice)(cn=admin))", None),  # users and virtual groups of both
    ("(&(objectClass=posixGroup)(cn=staff))", ["cn=staff,ou=groups"]),
    (
        "(&(objectClass=group)(member=cn=alice,ou=users,dc=ldap,dc=goauthentik,dc=io))",
        ["cn=staff,ou=groups", "cn=alice,ou=virtual-groups"],
    ),
    (
        "(&(objectClass=user)(memberOf=CN=Admins,OU=Groups,DC=ldap,DC=goauthentik,DC=io))",
        ["cn=admin,ou=users"],
    ),
    (
        "(&(objectClass=user)(memberOf:1.2.840.113556.1.4.1941:=cn=everyone,ou=groups,dc=ldap,dc=goauthentik,dc=io)(cn=a*))",
        ["cn=admin,ou=users", "cn=alice,ou=users"],
    ),
    ("(&(objectClass=user)(cn=*l*ce))", ["cn=alice,ou=users"]),
    (
        "(&(objectClass=user)(cn=user1*))",
        ["cn=user1,ou=users"] + [f"cn=user{i},ou=users" for i in range(10, 20)],
    ),
    ("(&(objectClass=user)(displayName=*example))", None),
    ("(&(objectClass=user)(uidNumber>=2023))", ["cn=user19,ou=users", "cn=user20,ou=users"]),
    ("(&(objectClass=user)(uidNumber<=2002))", ["cn=admin,ou=users", "cn=alice,ou=users"]),
    ("(&(objectClass=user)(cn~=ALICE))", ["cn=alice,ou=users"]),
    ("(&(objectClass=user)(!(ak-active=TRUE)))", ["cn=blocked,ou=users"]),
    ("(&(objectClass=user)(ak-superuser=TRUE))", ["cn=admin,ou=users"]),
    ("(&(objectClass=user)(cn:caseIgnoreMatch:=Alice))", ["cn=alice,ou=users"]),
    ("(&(objectClass=user)(cn:1.2.3.4.5:=alice))", []),  # an unknown rule is Undefined
    ("(!(cn:1.2.3.4.5:=alice))", []),  # and NOT Undefined is Undefined
    ("(&(objectClass=user)(uidNumber:1.2.840.113556.1.4.803:=2))", None),
    ("(&(ou:dn:=users)(cn=alice))", ["cn=alice,ou=users"]),
    ("(&(objectClass=user)(nosuchattribute=*))", []),
    ("(&(objectClass=user)(entryUUID=*))", None),
    ("(commonName=alice)", ["cn=alice,ou=users", "cn=alice,ou=virtual-groups"]),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_filter(text: str, expected: list[str] | None) -> None:
    found = cns(text)
    if expected is not None:
        assert found == expected
    # the index never changes the answer: compare with a full scan
    op = search_op(text)
    match = filters.compile_filter(op.filter, DIRECTORY.by_dn.get)
    scanned = [e for e in DIRECTORY.entries if dn.is_under(e.ndn, BASE) and match(e) is True]
    assert [e.dn for e in DIRECTORY.search(BASE, 2, op.filter)] == [e.dn for e in scanned]


def test_bit_and_rule() -> None:
    admin_number = int(DIRECTORY.get(dn.normalize(user_dn("admin"))).values("uidnumber")[0])  # type: ignore[union-attr]
    assert admin_number & 1  # 2001
    found = cns("(&(objectClass=user)(uidNumber:1.2.840.113556.1.4.803:=1))")
    assert "cn=admin,ou=users" in found and "cn=alice,ou=users" not in found
    found = cns("(&(objectClass=user)(uidNumber:1.2.840.113556.1.4.804:=3))")
    assert "cn=alice,ou=users" in found


def test_filter_text_round_trips_through_ldaptor() -> None:
    for text, _ in CASES:
        op = search_op(text)
        again = parse_filter(filters.to_text(op.filter))
        assert search_op(again.asText()).filter == op.filter


def test_filter_escapes() -> None:
    f = m.Equal("cn", "a*(b)\\c\x00")
    assert filters.to_text(f) == r"(cn=a\2a\28b\29\5cc\00)"


# Scopes, selection ---------------------------------------------------------------------------


def test_scopes() -> None:
    users = f"ou=users,{BASE}"
    assert cns("(objectClass=*)", BASE, 0) == ["dc=ldap,dc=goauthentik"]
    one = DIRECTORY.search(dn.normalize(BASE), 1, search_op("(objectClass=*)").filter)
    assert [e.dn for e in one] == [
        f"ou={ou},{BASE}" for ou in ("users", "groups", "virtual-groups")
    ]
    sub = DIRECTORY.search(users, 2, search_op("(objectClass=*)").filter)
    assert len(sub) == 1 + len(RECORDS.users)
    below = DIRECTORY.search(users, 1, search_op("(objectClass=*)").filter)
    assert len(below) == len(RECORDS.users)
    with pytest.raises(directory_.NoSuchObject):
        DIRECTORY.search(f"ou=nothing,{BASE}", 2, search_op("(objectClass=*)").filter)


def _attributes(encoded: bytes) -> dict[str, list[str]]:
    _s, stop = ber.expect(encoded, 0, len(encoded), 0x64)
    name_start, name_stop = ber.expect(encoded, _s, stop, ber.OCTET_STRING)
    list_start, list_stop = ber.expect(encoded, name_stop, stop, ber.SEQUENCE)
    out: dict[str, list[str]] = {}
    for _tag, s, e in ber.children(encoded, list_start, list_stop):
        (_, ts, te), (_, vs, ve) = ber.children(encoded, s, e)
        out[encoded[ts:te].decode()] = [
            encoded[a:b].decode() for _t, a, b in ber.children(encoded, vs, ve)
        ]
    return out


def test_attribute_selection() -> None:
    entry = DIRECTORY.get(dn.normalize(user_dn("alice")))
    assert entry is not None
    everything = _attributes(directory_.select(entry, directory_.selection(())))
    assert "cn" in everything and "memberOf" in everything
    assert "entryUUID" not in everything and "createTimestamp" not in everything
    operational = _attributes(directory_.select(entry, directory_.selection(("+",))))
    assert set(operational) == {"entryUUID", "createTimestamp", "modifyTimestamp"}
    both = _attributes(directory_.select(entry, directory_.selection(("*", "+"))))
    assert set(both) == set(everything) | set(operational)
    named = _attributes(
        directory_.select(entry, directory_.selection(("MAIL", "commonName", "entryuuid", "nope")))
    )
    assert named == {
        "cn": ["alice"],
        "mail": ["alice@example.com"],
        "entryUUID": [entry.values("entryuuid")[0]],
    }
    assert _attributes(directory_.select(entry, directory_.selection(("1.1",)))) == {}
    types = _attributes(
        directory_.select(entry, directory_.selection(("cn", "uid")), types_only=True)
    )
    assert types == {"cn": [], "uid": []}


# Providers and sessions ----------------------------------------------------------------------


def _session(provider: Provider, username: str, can_search: bool) -> Session:
    user = next(u for u in RECORDS.users if u.username == username)
    groups = [g for g in RECORDS.groups if g.pk in user.groups]
    result = wire.BindResult(
        user=user,
        groups=groups,
        has_search_permission=can_search,
        session_id="a" * 64,
        expires=None,
    )
    return Session(provider.pk, user_dn(username), dn.normalize(user_dn(username)), result)


def test_restricted_view_shows_only_the_user_and_their_groups() -> None:
    provider = Provider(config(1, BASE, "cached"))
    provider.apply(RECORDS)
    view = provider.view(_session(provider, "alice", can_search=False))
    every = view.search(BASE, 2, m.Present("objectclass"))
    names = {e.dn for e in every}
    assert user_dn("alice") in names and user_dn("admin") not in names
    assert STAFF in names and EVERYONE in names  # her group and its parent
    staff = view.get(dn.normalize(STAFF))
    assert staff is not None and staff.values("member") == (user_dn("alice"),)
    assert not view.search(BASE, 2, m.Equal("member", user_dn("admin")))  # no existence leak
    full = provider.view(_session(provider, "admin", can_search=True))
    assert full is provider.directory


def test_partial_directory_applies_on_top() -> None:
    provider = Provider(config(1, BASE, "cached"))
    provider.apply(RECORDS)
    alice = next(u for u in RECORDS.users if u.username == "alice")
    renamed = alice.model_copy(update={"email": "alice@new.example"})
    gone = next(u for u in RECORDS.users if u.username == "user3")
    provider.apply(
        wire.Directory(
            generation=2, partial=True, users=[renamed], groups=[], deleted_users=[gone.pk]
        )
    )
    assert provider.generation == 2
    entry = provider.directory.get(dn.normalize(user_dn("alice")))
    assert entry is not None and entry.values("mail") == ("alice@new.example",)
    assert provider.directory.get(dn.normalize(user_dn("user3"))) is None
    assert provider.directory.get(dn.normalize(user_dn("user4"))) is not None


def test_bind_cache_keys_by_dn_and_password_hash() -> None:
    provider = Provider(config(1, BASE, "cached"))
    cache = bindcache.BindCache()
    session = _session(provider, "alice", can_search=False)
    cache.put(1, session.ndn, b"correct horse", session)
    assert cache.get(1, session.ndn, b"correct horse") is session
    assert cache.get(1, session.ndn, b"wrong") is None
    assert cache.get(2, session.ndn, b"correct horse") is None
    stored = next(iter(cache._entries.values()))
    assert b"correct horse" not in stored.digest and len(stored.digest) == 32
    assert cache.drop_users(1, {session.user_pk}) == 1
    assert cache.get(1, session.ndn, b"correct horse") is None
    cache.put(1, session.ndn, b"correct horse", session)
    assert cache.drop_session("a" * 64) == 1
    short = bindcache.BindCache(max_age=0.01)
    short.put(1, session.ndn, b"pw", session)
    time.sleep(0.02)
    assert short.get(1, session.ndn, b"pw") is None


def test_bind_cache_honours_the_session_expiry() -> None:
    provider = Provider(config(1, BASE, "cached"))
    session = _session(provider, "alice", can_search=False)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    expired = Session(
        session.provider,
        session.dn,
        session.ndn,
        session.result.model_copy(update={"expires": past}),
    )
    cache = bindcache.BindCache()
    cache.put(1, session.ndn, b"pw", expired)
    assert cache.get(1, session.ndn, b"pw") is None
    assert dt.datetime.now(dt.UTC) > WHEN


def test_a_new_configuration_keeps_a_providers_records_unless_its_layout_changes() -> None:
    outpost = Outpost(None)
    first = config(1, BASE, "cached")
    outpost.update([first], {"1": RECORDS.model_dump(mode="json")})
    provider = outpost.providers[1]
    session = Session(
        1,
        user_dn("alice"),
        dn.normalize(user_dn("alice")),
        _session(provider, "alice", False).result,
    )
    outpost.cache.put(1, session.ndn, b"pw", session)
    outpost.update([first.model_copy(update={"name": "renamed"})])
    assert outpost.providers[1] is provider and len(provider.directory) == len(DIRECTORY)
    assert outpost.cache.get(1, session.ndn, b"pw") is session
    older = RECORDS.model_copy(update={"generation": 0})
    outpost.update([first], {"1": older.model_dump(mode="json")})  # never back in time
    assert provider.generation == RECORDS.generation
    outpost.update([first.model_copy(update={"uid_start_number": 5000})])
    assert outpost.providers[1] is not provider
    assert outpost.cache.get(1, session.ndn, b"pw") is None
    outpost.update([first.model_copy(update={"base_dn": "not a dn"})])
    assert outpost.providers == {}


def test_attack_huge_dns_and_filters_are_not_remembered() -> None:
    with pytest.raises(dn.DNError):
        dn.normalize("cn=" + "a" * 10_000)
    before = dn._remembered.cache_info().currsize
    long_dn = "cn=" + "b" * 1000 + ",dc=x"
    assert dn.normalize(long_dn) == long_dn  # normalized, not remembered
    assert dn._remembered.cache_info().currsize == before
    big = search_op("(|" + "".join(f"(cn=user{i})" for i in range(200)) + ")")
    small = search_op("(cn=user1)")
    assert small.small and not big.small
    assert DIRECTORY.search(BASE, 2, big.filter, remember=big.small)
    assert big.filter not in DIRECTORY._compiled
