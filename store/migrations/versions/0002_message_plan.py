"""messages: the routing input and the edXML reference the pipeline decided

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("route_input", postgresql.JSONB(), nullable=True))
    op.add_column("messages", sa.Column("edxml_ref", postgresql.JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column("messages", "edxml_ref")
    op.drop_column("messages", "route_input")
