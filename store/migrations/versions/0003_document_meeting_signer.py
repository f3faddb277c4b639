"""documents: parent_issuer, signer_position, signer_competence, meeting_start, meeting_place

Revision ID: 0003
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0007"
branch_labels = None
depends_on = None

_TEXT = ("parent_issuer", "signer_position", "signer_competence", "meeting_place")


def upgrade() -> None:
    for name in _TEXT:
        op.add_column("documents", sa.Column(name, sa.Text(), nullable=True))
    op.add_column(
        "documents", sa.Column("meeting_start", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("documents", "meeting_start")
    for name in reversed(_TEXT):
        op.drop_column("documents", name)
