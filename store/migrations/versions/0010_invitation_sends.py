"""invitation_sends: the original of a two-message Giấy mời delivery was accepted

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invitation_sends",
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.Column("original_reply", sa.Text(), nullable=False),
        sa.Column(
            "original_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["delivery_id"], ["deliveries.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("delivery_id"),
    )


def downgrade() -> None:
    op.drop_table("invitation_sends")
