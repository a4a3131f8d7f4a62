"""Monitoring's own tables (MONITORING.md section 1). Every time is timestamptz; lists scan the
(tenant_id, time, id) indexes backwards for newest first, so they need no DESC. llm_run_record and
usage_record are write-once: the migration adds a trigger refusing UPDATE and DELETE, and revokes them.
Tables live in one module per domain; this package imports them all so Base.metadata (Alembic's
target) holds every table."""

from services.monitoring.models.base import CURSORS, Base
from services.monitoring.models.incidents import Incident
from services.monitoring.models.runs import LlmRunRecord, MonitoringThreshold, Run
from services.monitoring.models.signals import SignalFeedback
from services.monitoring.models.tenants import TenantLifecycle
from services.monitoring.models.usage import UsageDaily, UsageRecord

__all__ = [
    "CURSORS",
    "Base",
    "Incident",
    "LlmRunRecord",
    "MonitoringThreshold",
    "Run",
    "SignalFeedback",
    "TenantLifecycle",
    "UsageDaily",
    "UsageRecord",
]
