"""callback inbox relay: queued_at and the index of stored-but-unqueued callbacks

The request only stores a callback; a relay in the worker processes hands stored rows to the job queue
and stamps queued_at. Rows already handled are marked queued; pending and failed ones are left for the
relay (their jobs are idempotent).

Revision ID: 5b1e0c7d9a3f
Revises: 2822da633dd0
Create Date: 2026-12-01 12:40:00
"""
from alembic import op
import sqlalchemy as sa
import models.base

revision = '5b1e0c7d9a3f'
down_revision = '2822da633dd0'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('callback_inbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('queued_at', models.base.UTCDateTime(), nullable=True))
    op.execute("UPDATE callback_inbox SET queued_at = received_at WHERE status IN ('done', 'ignored')")
    op.create_index('ix_callback_inbox_unqueued', 'callback_inbox', ['id'], unique=False,
                    postgresql_where=sa.text('queued_at IS NULL'), sqlite_where=sa.text('queued_at IS NULL'))


def downgrade():
    op.drop_index('ix_callback_inbox_unqueued', table_name='callback_inbox')
    with op.batch_alter_table('callback_inbox', schema=None) as batch_op:
        batch_op.drop_column('queued_at')
