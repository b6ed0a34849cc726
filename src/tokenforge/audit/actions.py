"""Every action the audit log records (``audit_log.action``)."""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    # -- keys (deployer keys, payer keys, platform secrets, the master key) --------------
    KEY_CREATED = "key.created"
    KEY_IMPORTED = "key.imported"
    KEY_USED_FOR_LAUNCH = "key.used_for_launch"
    KEY_RETIRED = "key.retired"
    MASTER_KEY_ROTATED = "key.master_rotated"
    # -- sign-in and credentials ----------------------------------------------------------
    SIGNIN_SUCCEEDED = "signin.succeeded"
    SIGNIN_FAILED = "signin.failed"
    SESSION_ISSUED = "session.issued"
    SESSION_REVOKED = "session.revoked"
    API_KEY_ISSUED = "api_key.issued"
    API_KEY_REVOKED = "api_key.revoked"
    # -- launches and jobs ---------------------------------------------------------------
    LAUNCH_REQUESTED = "launch.requested"
    JOB_DEAD_LETTERED = "job.dead_lettered"
    JOB_REQUEUED = "job.requeued"
    # -- webhooks ---------------------------------------------------------------------------
    WEBHOOK_REGISTERED = "webhook.registered"
    WEBHOOK_DELETED = "webhook.deleted"
    WEBHOOK_RESENT = "webhook.resent"
    # -- operators ---------------------------------------------------------------------------
    AUDIT_EXPORTED = "audit.exported"
