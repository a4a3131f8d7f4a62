"""create trace tables

Revision ID: 5b1d2c7e9a40
Revises: e267f39432e1
Create Date: 2026-12-02 13:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = '5b1d2c7e9a40'
down_revision: Union[str, Sequence[str], None] = 'e267f39432e1'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # Traces are not write-once (MONITORING.md 0.1 names records, usage and audit only): no RPC changes them,
    # and the first write wins by ON CONFLICT DO NOTHING.
    op.create_table('trace',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('trace_id', sa.String(length=100), nullable=False),
    sa.Column('run_id', sa.UUID(as_uuid=False), nullable=True),
    sa.Column('correlation_id', sa.String(length=100), nullable=True),
    sa.Column('agent_id', sa.String(length=100), nullable=True),
    sa.Column('plan', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('root_hash', sa.String(length=128), nullable=False),
    sa.Column('plan_hash', sa.String(length=128), nullable=True),
    sa.Column('seed', sa.BigInteger(), nullable=False),
    sa.Column('frozen_timestamp', sa.String(length=64), nullable=True),
    sa.Column('schema_version', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=50), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('stored_by', sa.String(length=300), nullable=False),
    sa.Column('step_count', sa.Integer(), nullable=False),
    sa.Column('redaction_count', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('redaction_count >= 0', name=op.f('ck_trace_redaction_count')),
    sa.CheckConstraint('step_count >= 0', name=op.f('ck_trace_step_count')),
    sa.PrimaryKeyConstraint('tenant_id', 'trace_id', name=op.f('pk_trace'))
    )
    op.create_index('ix_trace_tenant_created', 'trace', ['tenant_id', 'created_at', 'trace_id'], unique=False)
    op.create_index('uq_trace_tenant_run', 'trace', ['tenant_id', 'run_id'], unique=True, postgresql_where=sa.text('run_id IS NOT NULL'))
    op.create_table('trace_step',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('trace_id', sa.String(length=100), nullable=False),
    sa.Column('step_index', sa.Integer(), nullable=False),
    sa.Column('skill_name', sa.String(length=200), nullable=True),
    sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('status', sa.String(length=50), nullable=True),
    sa.Column('outcome_category', sa.String(length=100), nullable=True),
    sa.Column('outcome_code', sa.String(length=100), nullable=True),
    sa.Column('outcome_data', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('cost_cents', sa.Double(), nullable=False),
    sa.Column('duration_ms', sa.Double(), nullable=False),
    sa.Column('retry_count', sa.Integer(), nullable=False),
    sa.Column('timestamp', sa.DateTime(timezone=True), nullable=True),
    sa.Column('input_hash', sa.String(length=128), nullable=True),
    sa.Column('output_hash', sa.String(length=128), nullable=True),
    sa.CheckConstraint('cost_cents >= 0', name=op.f('ck_trace_step_cost_cents')),
    sa.CheckConstraint('duration_ms >= 0', name=op.f('ck_trace_step_duration_ms')),
    sa.CheckConstraint('retry_count >= 0', name=op.f('ck_trace_step_retry_count')),
    sa.ForeignKeyConstraint(['tenant_id', 'trace_id'], ['trace.tenant_id', 'trace.trace_id'], name=op.f('fk_trace_step_tenant_id_trace')),
    sa.PrimaryKeyConstraint('tenant_id', 'trace_id', 'step_index', name=op.f('pk_trace_step'))
    )
    op.create_index('ix_trace_step_tenant_timestamp', 'trace_step', ['tenant_id', 'timestamp'], unique=False)
    op.create_index('ix_llm_run_record_tenant_trace', 'llm_run_record', ['tenant_id', 'trace_id'], unique=False, postgresql_where=sa.text('trace_id IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_llm_run_record_tenant_trace', table_name='llm_run_record', postgresql_where=sa.text('trace_id IS NOT NULL'))
    op.drop_index('ix_trace_step_tenant_timestamp', table_name='trace_step')
    op.drop_table('trace_step')
    op.drop_index('uq_trace_tenant_run', table_name='trace', postgresql_where=sa.text('run_id IS NOT NULL'))
    op.drop_index('ix_trace_tenant_created', table_name='trace')
    op.drop_table('trace')
