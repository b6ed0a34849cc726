"""Bearer credentials: the public part never carries any of the secret."""

from tokenforge.auth.credentials import API_KEY_PREFIX, SESSION_PREFIX, hash_token, new_credential, parse


def test_the_display_form_is_the_prefix_and_id_only_whatever_the_secret_holds():
    for _ in range(200):  # secrets are base64url: some contain "_"
        cred = new_credential(API_KEY_PREFIX)
        secret = cred.token.removeprefix(f"{cred.display}_")
        assert cred.display == f"tfk_{cred.id}" and len(secret) == 43
        assert secret not in repr(cred) and secret not in cred.display
        assert parse(cred.token) == ("tfk", cred.id)
        assert cred.token_hash == hash_token(cred.token) != cred.token


def test_malformed_credentials_are_not_looked_up():
    cred = new_credential(SESSION_PREFIX)
    for bad in ("", "tfk_", cred.token + "x", cred.token[:-1], "Bearer " + cred.token, cred.token.upper()):
        assert parse(bad) is None


def test_failed_sign_ins_beyond_the_audit_budget_are_counted_not_chained(monkeypatch):
    from tokenforge.auth import signin

    clock = iter([0.0, 1.0, 2.0, 61.0])
    monkeypatch.setattr(signin.time, "monotonic", lambda: next(clock))
    budget = signin._FailureBudget(per_minute=2)
    assert [budget.take() for _ in range(4)] == [True, True, False, True], "a new minute, a new budget"


def test_a_checked_credential_is_trusted_for_its_window_and_never_past_its_expiry(monkeypatch):
    from datetime import UTC, datetime, timedelta

    from tokenforge.auth import sessions
    from tokenforge.auth.principal import CredentialKind, Principal, Role

    clock = [100.0]
    monkeypatch.setattr(sessions.time, "monotonic", lambda: clock[0])
    cache = sessions.CheckedCredentials(ttl_s=2.0)
    who = Principal(CredentialKind.API_KEY, "0123456789abcdef", Role.CREATOR, "0x" + "ab" * 20, "evm")
    now = datetime.now(UTC)
    cache.put("h1", who, expires_at=None)
    cache.put("h2", who, expires_at=now + timedelta(seconds=1))
    assert cache.get("h1", now) is who and cache.get("h2", now) is who
    assert cache.get("h2", now + timedelta(seconds=1)) is None, "an expired credential is looked up again"
    clock[0] += 2.5
    assert cache.get("h1", now) is None, "after the window another process's revocation counts"
    cache.put("h1", who, expires_at=None)
    cache.clear()
    assert cache.get("h1", now) is None
