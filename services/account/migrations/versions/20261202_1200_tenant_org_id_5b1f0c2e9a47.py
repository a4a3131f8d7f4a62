"""tenant gets org_id: the identity provider's organisation it belongs to (unique); existing tenants are
their own organisation, as dev tokens name the tenant id there

Revision ID: 5b1f0c2e9a47
Revises: c13732bb68b9
Create Date: 2026-12-02 12:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '5b1f0c2e9a47'
down_revision: Union[str, Sequence[str], None] = 'c13732bb68b9'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('tenant', sa.Column('org_id', sa.String(length=255), nullable=True))
    op.execute('UPDATE tenant SET org_id = id')
    op.alter_column('tenant', 'org_id', nullable=False)
    op.create_unique_constraint(op.f('uq_tenant_org_id'), 'tenant', ['org_id'])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_constraint(op.f('uq_tenant_org_id'), 'tenant', type_='unique')
    op.drop_column('tenant', 'org_id')
