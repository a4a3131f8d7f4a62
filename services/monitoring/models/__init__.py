"""Monitoring's own tables (MONITORING.md section 1). Every time is timestamptz; lists scan the
(tenant_id, time, id) indexes backwards for newest first, so they need no DESC. llm_run_record,
usage_record and founder_access_audit are write-once: the migrations add a trigger refusing UPDATE and
DELETE, and revoke them.
Tables live in one module per domain; this package imports them all so Base.metadata (Alembic's
target) holds every table."""

from services.monitoring.models.base import CURSORS, Base
from services.monitoring.models.founder import FounderAccessAudit
from services.monitoring.models.incidents import Incident
from services.monitoring.models.runs import LlmRunRecord, MonitoringThreshold, Run
from services.monitoring.models.signals import SignalFeedback
from services.monitoring.models.tenants import TenantLifecycle
from services.monitoring.models.traces import Trace, TraceStep
from services.monitoring.models.usage import UsageDaily, UsageRecord

__all__ = [
    "CURSORS",
    "Base",
    "FounderAccessAudit",
    "Incident",
    "LlmRunRecord",
    "MonitoringThreshold",
    "Run",
    "SignalFeedback",
    "TenantLifecycle",
    "Trace",
    "TraceStep",
    "UsageDaily",
    "UsageRecord",
]
