"""documents.e_document: the Decree 30 e-document check of each document

Revision ID: 0005
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # {conformant, personal_signer, organisation_signer, problems[]}; NULL: not a document
    # (an image, a signature file) or processed before this check existed
    op.add_column(
        "documents", sa.Column("e_document", postgresql.JSONB(astext_type=sa.Text()), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("documents", "e_document")
