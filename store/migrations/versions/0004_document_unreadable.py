"""documents.unreadable: why a document's text could not be read

Revision ID: 0004
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("documents", sa.Column("unreadable", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("documents", "unreadable")
