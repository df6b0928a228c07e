"""sidebar: the profile-view audit log (who looked at which customer, when)

The first screen's other reads are served by existing indexes: customer_identities (kind, value),
follows (customer_id), customer_tags' primary key, events (customer_id, occurred_at),
red_dots (customer_id, task_date) and orders (customer_id, paid_at).

Revision ID: 5b1d3e7c9a40
Revises: 2822da633dd0
Create Date: 2026-12-01 12:45:00
"""
from alembic import op
import sqlalchemy as sa
import models.base

revision = '5b1d3e7c9a40'
down_revision = '2822da633dd0'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'profile_views',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('guide_id', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('viewed_at', models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('entry', sa.String(length=32), nullable=True),
        sa.Column('ip', sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_profile_views_customer_id_customers'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['guide_id'], ['guides.id'], name=op.f('fk_profile_views_guide_id_guides')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_profile_views')),
    )
    op.create_index('ix_profile_views_customer_at', 'profile_views', ['customer_id', 'viewed_at'])
    op.create_index('ix_profile_views_guide_at', 'profile_views', ['guide_id', 'viewed_at'])
    op.create_index(op.f('ix_profile_views_viewed_at'), 'profile_views', ['viewed_at'])


def downgrade():
    op.drop_index(op.f('ix_profile_views_viewed_at'), table_name='profile_views')
    op.drop_index('ix_profile_views_guide_at', table_name='profile_views')
    op.drop_index('ix_profile_views_customer_at', table_name='profile_views')
    op.drop_table('profile_views')
