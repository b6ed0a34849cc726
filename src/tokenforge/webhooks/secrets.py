"""Webhook signing secrets at rest: sealed under a key the key store keeps.

A secret is 32 random bytes (shown to its owner once as ``whsec_<hex>``). The database
holds it sealed (:func:`tokenforge.keys.envelope.seal`, its own AES-256-GCM data key,
record name ``webhook/<id>`` bound in) with the data key wrapped by the key store's
platform secret ``webhook-secrets``, which is itself sealed under the master key. So the
master key protects webhook secrets as it protects deployer keys, a master-key rotation
(which re-wraps the key store's records) leaves webhook rows untouched, and nothing here
depends on where the master key lives (local file or KMS). The wrapping key is opened for
each seal or open and not kept.
"""

from __future__ import annotations

from typing import Any

from tokenforge.keys.envelope import LocalMasterKey, open_sealed, seal
from tokenforge.keys.ports import KeyStore
from tokenforge.webhooks.signing import SECRET_BYTES, SECRET_PREFIX

#: The key store's platform secret that wraps webhook data keys.
PURPOSE = "webhook-secrets"


class _WebhookKek(LocalMasterKey):
    key_id = f"platform_secret/{PURPOSE}"


class SecretBox:
    def __init__(self, keystore: KeyStore) -> None:
        self._keystore = keystore

    def __repr__(self) -> str:
        return "SecretBox()"

    def _kek(self) -> _WebhookKek:
        return _WebhookKek(self._keystore.platform_secret(PURPOSE))

    def seal(self, webhook_id: str, secret: str) -> dict[str, Any]:
        """The record to store for ``secret`` (a ``whsec_`` string) of ``webhook_id``."""
        raw = bytes.fromhex(secret.removeprefix(SECRET_PREFIX))
        if len(raw) != SECRET_BYTES:
            raise ValueError("a webhook secret is 32 bytes")
        return seal(self._kek(), f"webhook/{webhook_id}", raw)

    def open(self, webhook_id: str, record: dict[str, Any]) -> str:
        """The ``whsec_`` secret of ``webhook_id`` (raises ``PermanentError`` if tampered)."""
        return SECRET_PREFIX + open_sealed(self._kek(), f"webhook/{webhook_id}", record).hex()
