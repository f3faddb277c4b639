"""sender authentication results on messages (SPF, DKIM, DMARC) and per-sender rules (issue 14)

Revision ID: 0006
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "messages",
        sa.Column("auth_results", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.create_table(
        "sender_rules",
        sa.Column("pattern", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("pattern"),
    )


def downgrade() -> None:
    op.drop_table("sender_rules")
    op.drop_column("messages", "auth_results")
