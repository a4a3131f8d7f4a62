"""event_cursor.page_token as text, the shape of common.follow's cursor table

Revision ID: 77949529fada
Revises: f8ba755739a5
Create Date: 2026-12-02 05:53:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = '77949529fada'
down_revision: Union[str, Sequence[str], None] = 'f8ba755739a5'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.alter_column('event_cursor', 'page_token', existing_type=sa.String(length=200), type_=sa.Text(), existing_nullable=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.alter_column('event_cursor', 'page_token', existing_type=sa.Text(), type_=sa.String(length=200), existing_nullable=False)
