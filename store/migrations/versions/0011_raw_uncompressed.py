"""messages.raw kept out of line without compression (STORAGE EXTERNAL)

Mail is mostly base64 of formats that are compressed already (PDF streams, DOCX and XLSX
zips, JPEG, signed .p7m): pglz, PostgreSQL's default for a large value, tries each one and
gives up, and that attempt was the main part of PostgreSQL's CPU per message (measured on a
message with a 150 KB attachment: 4.7 ms of server CPU to insert it, 1.0 ms without
compression, the same size on disk). Postfix does not compress its queue either. Values
written before this revision keep their form; PostgreSQL reads both.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE messages ALTER COLUMN raw SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.execute("ALTER TABLE messages ALTER COLUMN raw SET STORAGE EXTENDED")
