"""The append-only, hash-chained audit log: :mod:`.log` appends and verifies entries;
:mod:`.actions` names every action that is recorded."""

from tokenforge.audit.actions import Action
from tokenforge.audit.log import AuditEvent, append, verify

__all__ = ["Action", "AuditEvent", "append", "verify"]
