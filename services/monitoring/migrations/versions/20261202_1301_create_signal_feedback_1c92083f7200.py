"""create signal_feedback

Revision ID: 1c92083f7200
Revises: 0198f5eb67b6
Create Date: 2026-12-02 12:45:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = '1c92083f7200'
down_revision: Union[str, Sequence[str], None] = '0198f5eb67b6'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('signal_feedback',
    sa.Column('id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('signal_fingerprint', sa.CHAR(length=32), nullable=False),
    sa.Column('run_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('signal_type', sa.String(length=30), nullable=False),
    sa.Column('feedback_state', sa.String(length=20), nullable=False),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('comment', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("(feedback_state = 'SUPPRESSED') = (expires_at IS NOT NULL)", name=op.f('ck_signal_feedback_expires_at')),
    sa.CheckConstraint("feedback_state IN ('ACKNOWLEDGED', 'SUPPRESSED')", name=op.f('ck_signal_feedback_feedback_state')),
    sa.CheckConstraint("signal_type IN ('cost_risk', 'token_risk', 'time_risk', 'execution_failure', 'rate_risk', 'policy_breach', 'evidence_degraded')", name=op.f('ck_signal_feedback_signal_type')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_signal_feedback'))
    )
    op.create_index('ix_signal_feedback_tenant_suppressed', 'signal_feedback', ['tenant_id', 'signal_fingerprint', 'expires_at'], unique=False, postgresql_where=sa.text("feedback_state = 'SUPPRESSED'"))
    op.create_index('uq_signal_feedback_tenant_acknowledged', 'signal_feedback', ['tenant_id', 'signal_fingerprint'], unique=True, postgresql_where=sa.text("feedback_state = 'ACKNOWLEDGED'"))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('uq_signal_feedback_tenant_acknowledged', table_name='signal_feedback', postgresql_where=sa.text("feedback_state = 'ACKNOWLEDGED'"))
    op.drop_index('ix_signal_feedback_tenant_suppressed', table_name='signal_feedback', postgresql_where=sa.text("feedback_state = 'SUPPRESSED'"))
    op.drop_table('signal_feedback')
