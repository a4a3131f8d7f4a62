"""event_cursor gets updated_at: the shared follower (common.follow) stamps each cursor it saves

Revision ID: dda7665f08b2
Revises: 3dcd977a1f5c
Create Date: 2026-12-02 06:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = 'dda7665f08b2'
down_revision: Union[str, Sequence[str], None] = '3dcd977a1f5c'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column(
        'event_cursor',
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column('event_cursor', 'updated_at')
