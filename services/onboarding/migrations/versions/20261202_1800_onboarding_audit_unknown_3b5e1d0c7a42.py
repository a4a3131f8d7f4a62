"""onboarding_audit.unknown: the requirements a founder override skipped without knowing them (source down)

Revision ID: 3b5e1d0c7a42
Revises: 77949529fada
Create Date: 2026-12-02 18:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = '3b5e1d0c7a42'
down_revision: Union[str, Sequence[str], None] = '77949529fada'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column(
        'onboarding_audit',
        sa.Column('unknown', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column('onboarding_audit', 'unknown')
