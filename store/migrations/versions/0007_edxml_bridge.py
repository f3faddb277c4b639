"""agencies.format, outbound edXML packages

Revision ID: 0007
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("agencies", sa.Column("format", sa.Text(), server_default="mime", nullable=False))
    op.create_table(
        "edxml_packages",
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("document_id", sa.Text(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["delivery_id"], ["deliveries.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("delivery_id"),
    )
    op.create_index("ix_edxml_packages_document", "edxml_packages", ["document_id"])
    op.create_index("ix_edxml_packages_message", "edxml_packages", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_edxml_packages_message", table_name="edxml_packages")
    op.drop_index("ix_edxml_packages_document", table_name="edxml_packages")
    op.drop_table("edxml_packages")
    op.drop_column("agencies", "format")
