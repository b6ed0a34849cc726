"""Search everything TokenForge wrote or answered for secrets, in every encoding they
could leak in.

    scan = SecretScan()
    scan.add_secret("deployer key", key_bytes)      # bytes, or str for tokens
    scan.add_file(path) / scan.add_tree(data_dir, exclude=[keyfile]) / scan.add_source(label, blob)
    scan.assert_clean()                             # names secret, encoding and source

Each secret is searched raw, as hex (both cases), standard and URL-safe base64 (with and
without padding) and base58. A token ``tfk_<body>`` is also searched by its body alone.
"""

from __future__ import annotations

import base64
import pathlib
from collections.abc import Iterable
from dataclasses import dataclass, field

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
#: shorter needles would match by chance in megabytes of data
MIN_NEEDLE_BYTES = 12


def base58(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def encodings(secret: bytes) -> dict[str, bytes]:
    """Every form of ``secret`` searched for, by name."""
    forms = {
        "raw": secret,
        "hex": secret.hex().encode(),
        "HEX": secret.hex().upper().encode(),
        "base64": base64.b64encode(secret),
        "base64 unpadded": base64.b64encode(secret).rstrip(b"="),
        "base64url": base64.urlsafe_b64encode(secret),
        "base64url unpadded": base64.urlsafe_b64encode(secret).rstrip(b"="),
        "base58": base58(secret).encode(),
    }
    return {name: form for name, form in forms.items() if len(form) >= MIN_NEEDLE_BYTES}


@dataclass
class SecretScan:
    secrets: dict[str, bytes] = field(default_factory=dict)
    sources: dict[str, bytes] = field(default_factory=dict)

    def add_secret(self, label: str, value: bytes | str) -> None:
        if isinstance(value, str):
            _prefix, sep, body = value.partition("_")
            if sep and body:
                self.secrets[f"{label} (body)"] = body.encode()
            value = value.encode()
        assert len(value) >= 16, f"{label} is too short to scan for"
        self.secrets[label] = bytes(value)

    def add_source(self, label: str, blob: bytes | str) -> None:
        data = blob.encode() if isinstance(blob, str) else bytes(blob)
        self.sources[label] = self.sources.get(label, b"") + data

    def add_file(self, path: pathlib.Path, label: str | None = None) -> None:
        self.add_source(label or str(path), path.read_bytes())

    def add_tree(self, root: pathlib.Path, *, exclude: Iterable[pathlib.Path] = ()) -> list[pathlib.Path]:
        """Every file under ``root`` but ``exclude``; returns the files added."""
        skip = {p.resolve() for p in exclude}
        files = [p for p in sorted(root.rglob("*")) if p.is_file() and p.resolve() not in skip]
        for path in files:
            self.add_file(path, str(path.relative_to(root)))
        return files

    def findings(self) -> list[tuple[str, str, str]]:
        """``(secret, encoding, source)`` for every secret found somewhere."""
        found = []
        for secret_label, secret in self.secrets.items():
            for form_label, form in encodings(secret).items():
                for source_label, blob in self.sources.items():
                    if form in blob:
                        found.append((secret_label, form_label, source_label))
        return found

    def assert_clean(self) -> None:
        found = self.findings()
        assert not found, "secrets found: " + "; ".join(f"{s} ({e}) in {src}" for s, e, src in found)
