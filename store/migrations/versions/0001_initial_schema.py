"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-24 16:46:24.132663
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('agencies',
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('aliases', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('domains', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('address', sa.Text(), nullable=False),
    sa.Column('route', sa.Text(), server_default='mx', nullable=False),
    sa.Column('tls', sa.Text(), server_default='verify', nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('code')
    )
    op.create_table('destinations',
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('consecutive_failures', sa.Integer(), server_default='0', nullable=False),
    sa.Column('paused_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('score', sa.Float(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('events',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('clock_timestamp()'), nullable=False),
    sa.Column('message_id', sa.BigInteger(), nullable=True),
    sa.Column('delivery_id', sa.BigInteger(), nullable=True),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('detail', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('chain_seq', sa.BigInteger(), nullable=True),
    sa.Column('prev_hash', sa.Text(), nullable=True),
    sa.Column('hash', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('chain_seq')
    )
    op.create_index('ix_events_message', 'events', ['message_id'], unique=False)
    op.create_index('ix_events_unsealed', 'events', ['id'], unique=False, postgresql_where=sa.text('chain_seq IS NULL'))
    op.create_table('imap_state',
    sa.Column('account', sa.Text(), nullable=False),
    sa.Column('mailbox', sa.Text(), nullable=False),
    sa.Column('uidvalidity', sa.BigInteger(), nullable=False),
    sa.Column('last_uid', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('account', 'mailbox')
    )
    op.create_table('messages',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('peer', sa.Text(), nullable=False),
    sa.Column('auth_user', sa.Text(), nullable=True),
    sa.Column('mail_from', sa.Text(), server_default='', nullable=False),
    sa.Column('rcpt_to', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('header_message_id', sa.Text(), nullable=True),
    sa.Column('header_from', sa.Text(), nullable=True),
    sa.Column('subject', sa.Text(), nullable=True),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.Text(), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=True),
    sa.Column('state', sa.Text(), server_default='received', nullable=False),
    sa.Column('verdict', sa.Text(), nullable=True),
    sa.Column('urgency', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('duplicate_of', sa.BigInteger(), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('claimed_by', sa.Text(), nullable=True),
    sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_messages_msgid_sender', 'messages', ['header_message_id', 'mail_from'], unique=False)
    op.create_index('ix_messages_received_at', 'messages', ['received_at'], unique=False)
    op.create_index('ix_messages_sha256', 'messages', ['sha256'], unique=False)
    op.create_index('ix_messages_state_received', 'messages', ['state', 'received_at'], unique=False)
    op.create_table('users',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('password_hash', sa.Text(), nullable=False),
    sa.Column('roles', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('token_hash', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('deliveries',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('message_id', sa.BigInteger(), nullable=False),
    sa.Column('recipient', sa.Text(), nullable=False),
    sa.Column('agency_code', sa.Text(), nullable=True),
    sa.Column('state', sa.Text(), server_default='queued', nullable=False),
    sa.Column('priority', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_reply_code', sa.Integer(), nullable=True),
    sa.Column('last_reply', sa.Text(), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('warned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('claimed_by', sa.Text(), nullable=True),
    sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('message_id', 'recipient', name='uq_deliveries_message_recipient')
    )
    op.create_index('ix_deliveries_agency', 'deliveries', ['agency_code'], unique=False)
    op.create_index('ix_deliveries_due', 'deliveries', ['state', 'priority', 'next_attempt_at'], unique=False)
    op.create_index('ix_deliveries_message', 'deliveries', ['message_id'], unique=False)
    op.create_table('documents',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('message_id', sa.BigInteger(), nullable=False),
    sa.Column('part_path', sa.Text(), nullable=False),
    sa.Column('filename', sa.Text(), nullable=True),
    sa.Column('declared_type', sa.Text(), nullable=True),
    sa.Column('detected_type', sa.Text(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=True),
    sa.Column('kind_abbr', sa.Text(), nullable=True),
    sa.Column('number', sa.Text(), nullable=True),
    sa.Column('year', sa.Integer(), nullable=True),
    sa.Column('notation', sa.Text(), nullable=True),
    sa.Column('issuer', sa.Text(), nullable=True),
    sa.Column('place', sa.Text(), nullable=True),
    sa.Column('doc_date', sa.Date(), nullable=True),
    sa.Column('subject', sa.Text(), nullable=True),
    sa.Column('signer', sa.Text(), nullable=True),
    sa.Column('urgency', sa.Text(), nullable=True),
    sa.Column('secrecy', sa.Text(), nullable=True),
    sa.Column('recipients', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('agency_codes', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('sources', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('confidence', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('flags', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('defects', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('verdict', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_documents_message', 'documents', ['message_id'], unique=False)
    op.create_index('ix_documents_notation', 'documents', ['number', 'notation'], unique=False)
    op.create_table('signatures',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('message_id', sa.BigInteger(), nullable=False),
    sa.Column('document_id', sa.BigInteger(), nullable=True),
    sa.Column('format', sa.Text(), nullable=False),
    sa.Column('verdict', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('signer_cn', sa.Text(), nullable=True),
    sa.Column('signer_o', sa.Text(), nullable=True),
    sa.Column('signer_uid', sa.Text(), nullable=True),
    sa.Column('serial', sa.Text(), nullable=True),
    sa.Column('issuer_cn', sa.Text(), nullable=True),
    sa.Column('cert_sha256', sa.Text(), nullable=True),
    sa.Column('signing_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('signing_time_source', sa.Text(), nullable=True),
    sa.Column('covers_whole_file', sa.Boolean(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_signatures_document', 'signatures', ['document_id'], unique=False)
    op.create_index('ix_signatures_message', 'signatures', ['message_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_signatures_message', table_name='signatures')
    op.drop_index('ix_signatures_document', table_name='signatures')
    op.drop_table('signatures')
    op.drop_index('ix_documents_notation', table_name='documents')
    op.drop_index('ix_documents_message', table_name='documents')
    op.drop_table('documents')
    op.drop_index('ix_deliveries_message', table_name='deliveries')
    op.drop_index('ix_deliveries_due', table_name='deliveries')
    op.drop_index('ix_deliveries_agency', table_name='deliveries')
    op.drop_table('deliveries')
    op.drop_table('users')
    op.drop_index('ix_messages_state_received', table_name='messages')
    op.drop_index('ix_messages_sha256', table_name='messages')
    op.drop_index('ix_messages_received_at', table_name='messages')
    op.drop_index('ix_messages_msgid_sender', table_name='messages')
    op.drop_table('messages')
    op.drop_table('imap_state')
    op.drop_index('ix_events_unsealed', table_name='events', postgresql_where=sa.text('chain_seq IS NULL'))
    op.drop_index('ix_events_message', table_name='events')
    op.drop_table('events')
    op.drop_table('destinations')
    op.drop_table('agencies')
