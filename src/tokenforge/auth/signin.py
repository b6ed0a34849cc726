"""Wallet sign-in: server-issued nonces, EIP-4361 / Sign-In with Solana messages checked
against this deployment, signatures verified, a session issued.

A sign-in succeeds when, in this order:

1. the message parses (:mod:`.messages`) and is of the family the endpoint serves;
2. ``domain`` is the host[:port] of ``settings.resolved_public_url`` (letter case aside)
   and a scheme, when the message names one, is that URL's; ``URI`` is on that origin;
3. ``Chain ID`` names a chain this deployment runs: an EVM chain id of a configured EVM
   chain (``ChainSettings.chain_id`` or the registry's id for its network), or, for
   Solana, the configured network's cluster name (:data:`SOLANA_CHAIN_IDS`:
   ``localnet`` for the embedded and local networks, ``devnet`` for testnet, ``mainnet``),
   ``solana:`` prefix allowed;
4. ``Issued At`` is at most :data:`MAX_CLOCK_SKEW_S` ahead and at most
   ``signin_nonce_ttl_s`` old; ``Expiration Time`` has not passed; ``Not Before`` is
   reached;
5. the signature is the address's (:mod:`.signatures`): EIP-191 recovery, else EIP-1271
   through the chain the chain id names (``eth_call`` through its deployer's node);
   ed25519 for Solana;
6. the nonce is a live one this server issued: it is deleted in the transaction that
   issues the session, so a message signs in once (a replay is refused).

Any failure raises :class:`SigninFailed` (HTTP 401 ``signin_failed``) naming the field and
the reason, after recording ``signin.failed`` in the audit log in a transaction of its own
(actor ``anonymous``, subject the claimed address; never the signature). The session gets
the operator role when the wallet is in ``settings.operator_wallets``, else creator.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenforge.audit import Action, AuditEvent
from tokenforge.audit import log as audit_log
from tokenforge.auth import sessions as auth_sessions
from tokenforge.auth.messages import MessageError, SignInMessage, format_message, parse_message, timestamp
from tokenforge.auth.principal import CredentialKind, Principal, Role
from tokenforge.auth.signatures import ContractCaller, eip1271_valid, recover_evm, verify_solana
from tokenforge.chains.registry import DeployerRegistry
from tokenforge.config import Settings
from tokenforge.domain.chains import CHAINS, Family, Network
from tokenforge.errors import ErrorCode, PermanentError, Unauthenticated
from tokenforge.observability.metrics import SIGNIN_FAILURES_UNAUDITED
from tokenforge.store.db import utcnow
from tokenforge.store.models import AuthSessionRow
from tokenforge.store.repositories import credentials as credentials_repo
from tokenforge.store.repositories import signin_nonces

#: How far ahead of this server's clock a message's ``Issued At`` may be.
MAX_CLOCK_SKEW_S = 60.0
#: The Sign-In with Solana chain id each network answers to.
SOLANA_CHAIN_IDS: dict[Network, str] = {
    Network.EMBEDDED: "localnet",
    Network.LOCAL: "localnet",
    Network.TESTNET: "devnet",
    Network.MAINNET: "mainnet",
}
#: The statement :func:`suggested_message` writes.
STATEMENT = "Sign in to TokenForge to launch tokens with this wallet."


class SigninFailed(Unauthenticated):
    """A sign-in that did not verify. ``reason`` is a short code (``bad_signature``,
    ``expired``, ``wrong_domain``, ``nonce_unknown``, ...), ``field`` the message part at
    fault, ``wallet`` the claimed address when the message named one."""

    def __init__(self, reason: str, field: str, message: str, wallet: str | None = None) -> None:
        super().__init__(f"{field}: {message}", code=ErrorCode.SIGNIN_FAILED)
        self.reason = reason
        self.field = field
        self.detail = message
        self.wallet = wallet


@dataclass(frozen=True, slots=True)
class SigninPolicy:
    """What this deployment accepts in a sign-in message (from :class:`Settings`)."""

    scheme: str
    domain: str
    #: EVM chain id -> the first configured chain with that id
    evm_chains: dict[int, str]
    #: configured chain -> the ``Chain ID`` to sign for on it
    chain_ids: dict[str, int | str]
    #: the Solana cluster name, None when no Solana chain is configured
    solana_chain_id: str | None
    nonce_ttl_s: float
    session_ttl_s: float
    #: operator wallets, EVM ones in lower case
    operator_wallets: frozenset[str]

    @classmethod
    def from_settings(cls, settings: Settings) -> SigninPolicy:
        public = urlsplit(settings.resolved_public_url)
        evm: dict[int, str] = {}
        ids: dict[str, int | str] = {}
        solana: str | None = None
        for name, cs in settings.chains.items():
            spec = CHAINS[name]
            if spec.family is Family.EVM:
                ids[name] = chain_id = cs.chain_id or spec.evm_chain_id(cs.network)
                evm.setdefault(chain_id, name)
            else:
                ids[name] = SOLANA_CHAIN_IDS[cs.network]
                solana = solana or SOLANA_CHAIN_IDS[cs.network]
        return cls(
            scheme=public.scheme.lower(),
            domain=public.netloc.lower(),
            evm_chains=evm,
            chain_ids=ids,
            solana_chain_id=solana,
            nonce_ttl_s=settings.signin_nonce_ttl_s,
            session_ttl_s=settings.session_ttl_s,
            operator_wallets=frozenset(_wallet_key(w) for w in settings.operator_wallets),
        )

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.domain}"

    def role_of(self, wallet: str) -> Role:
        return Role.OPERATOR if _wallet_key(wallet) in self.operator_wallets else Role.CREATOR


def _wallet_key(wallet: str) -> str:
    wallet = wallet.strip()
    return wallet.lower() if wallet.startswith("0x") else wallet


@dataclass(frozen=True, slots=True)
class IssuedNonce:
    nonce: str
    issued_at: datetime
    expires_at: datetime


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def issue_nonce(sessions: async_sessionmaker[AsyncSession], policy: SigninPolicy) -> IssuedNonce:
    """A new single-use nonce (32 hex digits), live for ``signin_nonce_ttl_s``; expired
    unused ones are deleted in the same transaction."""
    now = utcnow()
    nonce = secrets.token_hex(16)
    expires_at = now + timedelta(seconds=policy.nonce_ttl_s)
    async with sessions() as session:
        await signin_nonces.purge_expired(session, now)
        await signin_nonces.add(session, nonce, now, expires_at)
        await session.commit()
    return IssuedNonce(nonce, now, expires_at)


def suggested_message(policy: SigninPolicy, issued: IssuedNonce, family: Family, address: str, chain_id: str) -> str:
    """A message this server accepts for ``address``, to show the wallet as is."""
    message = SignInMessage(
        family=family,
        domain=policy.domain,
        address=address,
        uri=policy.origin + "/",
        chain_id=chain_id,
        nonce=issued.nonce,
        issued_at=_iso(issued.issued_at),
        expiration_time=_iso(issued.expires_at),
        statement=STATEMENT,
    )
    return format_message(message)


def check_message(policy: SigninPolicy, message: SignInMessage, family: Family, now: datetime) -> str | None:
    """Steps 1-4 of the module docstring; the EVM chain's name for EIP-1271 (None for
    Solana). Raises :class:`SigninFailed`."""
    wallet = message.address

    def fail(reason: str, field: str, why: str) -> SigninFailed:
        return SigninFailed(reason, field, why, wallet)

    if message.family is not family:
        other = "siws" if message.family is Family.SOLANA else "siwe"
        raise fail("wrong_family", "message", f"this is a {message.family.value} sign-in; use /v1/auth/{other}")
    if message.domain.lower() != policy.domain:
        raise fail("wrong_domain", "domain", f"must be {policy.domain}, the host this server is reached at")
    if message.scheme is not None and message.scheme.lower() != policy.scheme:
        raise fail("wrong_domain", "scheme", f"must be {policy.scheme}")
    uri = urlsplit(message.uri)
    if uri.scheme.lower() != policy.scheme or uri.netloc.lower() != policy.domain:
        raise fail("wrong_uri", "URI", f"must be under {policy.origin}")
    chain: str | None = None
    if family is Family.EVM:
        chain = policy.evm_chains.get(int(message.chain_id))
        if chain is None:
            ids = ", ".join(str(i) for i in sorted(policy.evm_chains)) or "none"
            raise fail("wrong_chain", "Chain ID", f"is not a chain this server runs (EVM chain ids: {ids})")
    else:
        name = message.chain_id.removeprefix("solana:")
        if policy.solana_chain_id is None or name != policy.solana_chain_id:
            raise fail("wrong_chain", "Chain ID", f"must be {policy.solana_chain_id or 'a configured Solana network'}")
    issued_at = timestamp(message.issued_at, "Issued At")
    if issued_at > now + timedelta(seconds=MAX_CLOCK_SKEW_S):
        raise fail("issued_in_future", "Issued At", "is in the future")
    if issued_at < now - timedelta(seconds=policy.nonce_ttl_s):
        raise fail("too_old", "Issued At", f"is more than {policy.nonce_ttl_s:g} s ago: ask for a new nonce")
    if message.expiration_time is not None and timestamp(message.expiration_time, "Expiration Time") <= now:
        raise fail("expired", "Expiration Time", "the message has expired")
    if message.not_before is not None and timestamp(message.not_before, "Not Before") > now:
        raise fail("not_yet_valid", "Not Before", "the message is not valid yet")
    return chain


async def _contract_caller(deployers: DeployerRegistry, chain: str) -> ContractCaller | None:
    """The chain's JSON-RPC node through its deployer (EVM deployers expose ``node``)."""
    try:
        deployer = await deployers.get(chain)
    except PermanentError:
        return None
    node = getattr(deployer, "node", None)
    return node if callable(getattr(node, "call", None)) else None


async def _signature_ok(
    family: Family, message: SignInMessage, text: str, signature: str, deployers: DeployerRegistry, chain: str | None
) -> str | None:
    """How the signature verified (``eip191``, ``eip1271``, ``ed25519``), or None."""
    if family is Family.SOLANA:
        return "ed25519" if verify_solana(text, message.address, signature) else None
    raw = bytes.fromhex(signature.removeprefix("0x"))
    if recover_evm(text, raw) == message.address:
        return "eip191"
    caller = await _contract_caller(deployers, chain) if chain else None
    if caller is not None and await eip1271_valid(caller, message.address, text, raw):
        return "eip1271"
    return None


async def sign_in(
    sessions: async_sessionmaker[AsyncSession],
    deployers: DeployerRegistry,
    policy: SigninPolicy,
    family: Family,
    text: str,
    signature: str,
) -> auth_sessions.IssuedSession:
    """Verify a signed message (module docstring) and issue its session. ``signature`` is
    0x-hex for EVM, base58 for Solana (the request schema checks the alphabet)."""
    try:
        return await _sign_in(sessions, deployers, policy, family, text, signature)
    except SigninFailed as failed:
        if _FAILURES.take():
            details = {"family": family.value, "reason": failed.reason, "field": failed.field, "message": failed.detail}
            await audit_log.record(
                sessions, AuditEvent("anonymous", Action.SIGNIN_FAILED, failed.wallet or "unknown", details)
            )
        else:  # a flood from many addresses: counted, not chained one by one
            SIGNIN_FAILURES_UNAUDITED.inc()
        raise


class _FailureBudget:
    """At most ``per_minute`` failed sign-ins per process go to the audit log each minute.

    Every audit append takes the chain's one lock, which launches need too: a flood of
    failures from many addresses (each within its own per-IP rate limit) must not slow
    every launch. Failures over the budget are counted in
    ``tokenforge_signin_failures_unaudited_total`` instead."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._minute = -1
        self._used = 0

    def take(self) -> bool:
        minute = int(time.monotonic() // 60)
        if minute != self._minute:
            self._minute, self._used = minute, 0
        self._used += 1
        return self._used <= self.per_minute


#: Failed sign-ins audited per process and minute (see :class:`_FailureBudget`).
AUDITED_FAILURES_PER_MINUTE = 600
_FAILURES = _FailureBudget(AUDITED_FAILURES_PER_MINUTE)


async def _sign_in(
    sessions: async_sessionmaker[AsyncSession],
    deployers: DeployerRegistry,
    policy: SigninPolicy,
    family: Family,
    text: str,
    signature: str,
) -> auth_sessions.IssuedSession:
    try:
        message = parse_message(text)
    except MessageError as exc:
        raise SigninFailed("malformed", exc.field, exc.reason) from None
    chain = check_message(policy, message, family, utcnow())
    method = await _signature_ok(family, message, text, signature, deployers, chain)
    if method is None:
        raise SigninFailed(
            "bad_signature", "signature", f"is not {message.address}'s signature of this message", message.address
        )
    async with sessions() as session:
        if not await signin_nonces.consume(session, message.nonce, utcnow()):
            raise SigninFailed(
                "nonce_unknown",
                "Nonce",
                "is unknown, used or expired: ask POST /v1/auth/nonce for a new one",
                message.address,
            )
        issued = await auth_sessions.issue(
            session,
            wallet=message.address,
            family=family.value,
            role=policy.role_of(message.address),
            ttl_s=policy.session_ttl_s,
            details={"chain_id": message.chain_id, "domain": message.domain, "method": method},
        )
        await session.commit()
    return issued


async def rotate(
    sessions: async_sessionmaker[AsyncSession], policy: SigninPolicy, principal: Principal
) -> auth_sessions.IssuedSession:
    """A new token for the caller's session, the old one revoked in the same transaction
    (a stolen old token stops working at once); it ends when the old one would have, so a
    held token cannot be kept alive without signing again, and the role is worked out
    again (a wallet taken off ``operator_wallets`` loses it). Only sessions rotate."""
    if principal.kind is not CredentialKind.SESSION or principal.wallet is None or principal.family is None:
        raise Unauthenticated("only a sign-in session can be refreshed", code=ErrorCode.CREDENTIAL_INVALID)
    auth_sessions.CHECKED.clear()
    async with sessions() as session:
        old = await session.get(AuthSessionRow, principal.credential_id)
        if old is None or not await credentials_repo.revoke_session(session, principal.credential_id, utcnow()):
            raise Unauthenticated("this session was revoked", code=ErrorCode.CREDENTIAL_REVOKED)
        issued = await auth_sessions.issue(
            session,
            wallet=principal.wallet,
            family=principal.family,
            role=policy.role_of(principal.wallet),
            ttl_s=policy.session_ttl_s,
            details={"rotated_from": f"session:{principal.credential_id}"},
            expires_at=old.expires_at,  # a refresh never extends a sign-in
        )
        await audit_log.append(
            session,
            [
                AuditEvent(
                    principal.actor,
                    Action.SESSION_REVOKED,
                    f"session:{principal.credential_id}",
                    {"rotated_to": f"session:{issued.row.id}"},
                )
            ],
        )
        await session.commit()
    return issued
