"""founder access audit

Revision ID: 0198f5eb67b6
Revises: 5b1d2c7e9a40
Create Date: 2026-12-02 13:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = '0198f5eb67b6'
down_revision: Union[str, Sequence[str], None] = '5b1d2c7e9a40'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('founder_access_audit',
    sa.Column('id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('operator_id', sa.String(length=255), nullable=False),
    sa.Column('operator_email', sa.String(length=320), nullable=False),
    sa.Column('rpc', sa.String(length=100), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=True),
    sa.Column('target_id', sa.String(length=100), nullable=True),
    sa.Column('filters', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('request_id', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_founder_access_audit'))
    )
    op.create_index('ix_founder_access_audit_created', 'founder_access_audit', ['created_at', 'id'], unique=False)
    # Write-once like llm_run_record (MONITORING.md 0.1), by the write_once() trigger function of e267f39432e1.
    op.execute(
        "CREATE TRIGGER founder_access_audit_write_once BEFORE UPDATE OR DELETE ON founder_access_audit "
        "FOR EACH ROW EXECUTE FUNCTION write_once()"
    )
    op.execute(
        "CREATE TRIGGER founder_access_audit_no_truncate BEFORE TRUNCATE ON founder_access_audit "
        "FOR EACH STATEMENT EXECUTE FUNCTION write_once()"
    )
    op.execute("REVOKE UPDATE, DELETE, TRUNCATE ON founder_access_audit FROM CURRENT_USER")


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_founder_access_audit_created', table_name='founder_access_audit')
    op.drop_table('founder_access_audit')
