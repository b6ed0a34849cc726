"""The SSRF guard refuses every non-public address, however it is spelled or resolved."""

from __future__ import annotations

import pytest

from tokenforge.errors import ErrorCode, ValidationFailed
from tokenforge.net import ssrf
from tokenforge.net.ssrf import UnresolvableHost, UnsafeUrl, check_link, check_links, resolve_public

REFUSED_LITERALS = [
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("127.1", "loopback"),  # short form inet_aton accepts
    ("2130706433", "loopback"),  # 127.0.0.1 as one integer
    ("0x7f.0.0.1", "loopback"),
    ("0.0.0.0", "unspecified"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "cloud metadata"),
    ("169.254.10.1", "link-local"),
    ("100.64.0.1", "CGNAT"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("198.18.0.1", "private"),
    ("[::1]", "loopback"),
    ("[::]", "unspecified"),
    ("[fe80::1]", "link-local"),
    ("[fc00::1]", "unique local"),
    ("[fd12:3456::1]", "unique local"),
    ("[ff02::1]", "multicast"),
    ("[::ffff:127.0.0.1]", "loopback, inside an IPv6 address"),
    ("[::ffff:169.254.169.254]", "cloud metadata, inside an IPv6 address"),
    ("[::ffff:10.0.0.1]", "private, inside an IPv6 address"),
    ("[::127.0.0.1]", "loopback, inside an IPv6 address"),
    ("[64:ff9b::7f00:1]", "loopback, inside an IPv6 address"),
    ("[2002:7f00:1::1]", "loopback, inside an IPv6 address"),
    ("[2001:db8::1]", "private"),
]


@pytest.mark.parametrize(("host", "why"), REFUSED_LITERALS)
async def test_non_public_literals_are_refused_naming_the_field_and_why(host, why):
    with pytest.raises(UnsafeUrl) as info:
        await resolve_public(f"http://{host}/hook", field="url")
    assert info.value.field == "url" and info.value.code is ErrorCode.UNSAFE_URL
    assert why in info.value.detail, info.value.detail


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "api.localhost", "metadata.google.internal", "metadata"])
async def test_names_of_this_machine_and_metadata_are_refused_without_a_lookup(host, monkeypatch):
    async def must_not_resolve(host, port):
        raise AssertionError("looked up")

    monkeypatch.setattr(ssrf, "resolver", must_not_resolve)
    with pytest.raises(UnsafeUrl, match="not on the public internet"):
        await resolve_public(f"https://{host}/", field="url")


async def test_a_name_resolving_to_loopback_is_refused(monkeypatch):
    async def fake(host, port):
        return ["127.0.0.1"]

    monkeypatch.setattr(ssrf, "resolver", fake)
    with pytest.raises(UnsafeUrl) as info:
        await resolve_public("https://hooks.example.org/x", field="url")
    assert "hooks.example.org resolves to 127.0.0.1" in info.value.detail and "loopback" in info.value.detail


async def test_every_address_must_be_public(monkeypatch):
    async def fake(host, port):
        return ["93.184.216.34", "::ffff:192.168.0.5"]

    monkeypatch.setattr(ssrf, "resolver", fake)
    with pytest.raises(UnsafeUrl, match=r"192\.168\.0\.5"):
        await resolve_public("https://mixed.example.org/", field="url")


async def test_a_public_name_resolves_to_its_checked_addresses(monkeypatch):
    seen = []

    async def fake(host, port):
        seen.append((host, port))
        return ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]

    monkeypatch.setattr(ssrf, "resolver", fake)
    target = await resolve_public("https://Hooks.Example.org:8443/in?x=1", field="url")
    assert seen == [("hooks.example.org", 8443)]
    assert target.addresses == ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946")
    assert target.url_for(target.addresses[1]) == "https://[2606:2800:220:1:248:1893:25c8:1946]:8443/in?x=1"
    assert target.host_header == "hooks.example.org:8443"


async def test_the_allow_list_lets_a_local_receiver_through():
    target = await resolve_public("http://127.0.0.1:9000/", field="url", allowed_networks=["127.0.0.1/32"])
    assert target.addresses == ("127.0.0.1",) and target.host_header == "127.0.0.1:9000"
    # the allow-list also covers the IPv4-mapped spelling, and only the networks named
    await resolve_public("http://[::ffff:127.0.0.1]/", field="url", allowed_networks=["127.0.0.1/32"])
    with pytest.raises(UnsafeUrl):
        await resolve_public("http://127.0.0.2/", field="url", allowed_networks=["127.0.0.1/32"])


@pytest.mark.parametrize("url", ["http://user:pass@example.org/", "https://token@example.org/", "http://a@127.0.0.1/"])
async def test_userinfo_is_refused(url):
    with pytest.raises(UnsafeUrl, match="user name or password"):
        await resolve_public(url, field="url")


@pytest.mark.parametrize("url", ["ftp://example.org/", "http:///path", "http://example.org:99999/", "javascript:x"])
async def test_malformed_urls_are_refused(url):
    with pytest.raises(ValidationFailed) as info:
        await resolve_public(url, field="url")
    assert info.value.field == "url"


async def test_a_name_that_does_not_resolve_is_reported_as_such(monkeypatch):
    async def fake(host, port):
        raise OSError("Name or service not known")

    monkeypatch.setattr(ssrf, "resolver", fake)
    with pytest.raises(UnresolvableHost):
        await resolve_public("https://nowhere.example/", field="url")


async def test_launch_links_refuse_non_public_but_accept_unresolvable(monkeypatch):
    async def fake(host, port):
        if host == "internal.example":
            return ["10.0.0.7"]
        raise OSError("no DNS")

    monkeypatch.setattr(ssrf, "resolver", fake)
    await check_link("https://offline.example/x.png", field="image_url")  # no DNS: accepted
    await check_link(None, field="image_url")
    with pytest.raises(UnsafeUrl) as info:
        await check_links(
            {"image_url": "https://offline.example/a.png", "website": "https://internal.example/"},
        )
    assert info.value.field == "website"
    with pytest.raises(UnsafeUrl) as info:
        await check_links({"image_url": "http://169.254.169.254/latest/meta-data/", "website": None})
    assert info.value.field == "image_url"


async def test_launch_link_hosts_are_looked_up_once_a_minute_answered_or_not(monkeypatch):
    asked: list[str] = []

    async def fake(host, port):
        asked.append(host)
        if host == "internal.example":
            return ["10.0.0.7"]
        raise OSError("no DNS")

    monkeypatch.setattr(ssrf, "resolver", fake)
    for _ in range(3):
        await check_link("https://offline.example/x.png", field="image_url")
        with pytest.raises(UnsafeUrl):
            await check_link("https://internal.example/", field="website")
    assert sorted(asked) == ["internal.example", "offline.example"], "one lookup per host, refusals included"
    clock = ssrf.time.monotonic() + 61
    monkeypatch.setattr(ssrf.time, "monotonic", lambda: clock)
    await check_link("https://offline.example/x.png", field="image_url")
    assert asked.count("offline.example") == 2, "after a minute the host is asked again"
    await resolve_public("https://offline.example/", field="url", resolve=lambda h, p: _public())
    assert asked.count("offline.example") == 2, "a delivery check never uses the launch links' memory"


async def _public():
    return ["93.184.216.34"]
