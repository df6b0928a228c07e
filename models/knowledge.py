"""The knowledge library: reply scripts (话术), content (素材), the store's own vocabulary, and what guides sent.

Scripts and content are chain-wide and keyed by the operations team's `external_id`, so a re-imported
spreadsheet updates rows instead of duplicating them. A disabled item, or one outside its valid window
(dates in APP_TIMEZONE, both ends inclusive), is never suggested.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.timeutil import utcnow
from models.base import Base, BigID

CONTENT_KINDS = ("article", "image", "video", "miniprogram", "file")
SEND_SOURCES = ("suggested", "searched", "chatbot", "task", "manual")


class Script(Base):
    __tablename__ = "scripts"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(40), default="")
    body: Mapped[str] = mapped_column(Text)
    tags: Mapped[list] = mapped_column(default=list)
    keywords: Mapped[list] = mapped_column(default=list)
    enabled: Mapped[bool] = mapped_column(default=True)
    valid_from: Mapped[date | None]
    valid_to: Mapped[date | None]
    # The sentence vector of title, tags and body (knowledge/semantic.py), float32 bytes, and what it was
    # computed from (model + text hash): written by the import, stale once the text or the model changes.
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    embedding_key: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Content(Base):
    """A piece of content a guide sends: an article or video link, an image, a mini-program, a file."""

    __tablename__ = "contents"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="article")
    title: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(40), default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str | None] = mapped_column(String(1000))
    media_id: Mapped[str | None] = mapped_column(String(200))  # a WeCom media id or mini-program path
    cover_url: Mapped[str | None] = mapped_column(String(1000))
    tags: Mapped[list] = mapped_column(default=list)
    keywords: Mapped[list] = mapped_column(default=list)
    # Who it is for: tag names ("0-6月" or "宝宝阶段/0-6月") and lifecycle stages (new/active/dormant/lost).
    # Empty means everyone.
    target_tags: Mapped[list] = mapped_column(default=list)
    target_stages: Mapped[list] = mapped_column(default=list)
    enabled: Mapped[bool] = mapped_column(default=True)
    valid_from: Mapped[date | None]
    valid_to: Mapped[date | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Vocabulary(Base):
    """The store's own words: a canonical term with its colloquial variants (尿不湿 → 纸尿裤), or a lone
    word for the tokenizer (an own brand or product line) when `variants` is empty."""

    __tablename__ = "vocabulary"

    id: Mapped[int] = mapped_column(primary_key=True)
    term: Mapped[str] = mapped_column(String(40), unique=True)
    variants: Mapped[list] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ScriptSend(Base):
    """A guide sent a script (from a suggestion, a search, the chat-bot or a task). The learning signal of the
    suggestion engine, and the start of a script's funnel (sends → orders within 7 days)."""

    __tablename__ = "script_sends"
    __table_args__ = (Index("ix_script_sends_script_time", "script_id", "sent_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    script_id: Mapped[int] = mapped_column(ForeignKey("scripts.id", ondelete="CASCADE"))
    guide_id: Mapped[int] = mapped_column(ForeignKey("guides.id"), index=True)
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"), index=True)
    source: Mapped[str] = mapped_column(String(16), default="suggested")
    query: Mapped[str | None] = mapped_column(String(500))
    terms: Mapped[list] = mapped_column(default=list)  # the query's normalised terms, for re-learning
    edited: Mapped[bool] = mapped_column(default=False)  # the guide changed the text before sending
    sent_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
