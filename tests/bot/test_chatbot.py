"""The chat-bot: a guide writes a customer's question to the app and gets the best three scripts back,
through the local WeCom stand-in (signed callback in, message/send out)."""
from __future__ import annotations

from sqlalchemy import select

from core.db import db
from models import ScriptSend
from tests.bot.test_end_to_end import control, service, wecom, work_jobs  # noqa: F401 (fixtures)
from tests.knowledge.test_library import load


def replies(standin):
    return [c["body"]["text"]["content"] for c in standin.corp.calls_to() if c["path"].endswith("message/send")]


def test_a_question_gets_the_top_three_scripts_numbered(app, wecom, tmp_path):
    load(tmp_path)
    control(wecom, "text_message", userid="guide01", content="顾客问：宝宝三天没拉粑粑了，要不要换奶粉😭")
    work_jobs(app)
    [reply] = replies(wecom)
    assert reply.startswith("推荐话术")
    # The question is about constipation and asks about switching milk: both scripts answer it.
    assert "【宝宝便秘怎么办】宝宝大便干硬" in reply and "【转奶方法】" in reply
    assert "1.【" in reply and "3.【" in reply and "4.【" not in reply


def test_picking_a_number_records_the_send_once(app, wecom, tmp_path):
    load(tmp_path)
    control(wecom, "text_message", userid="guide01", content="宝宝便秘怎么调理")
    work_jobs(app)
    control(wecom, "text_message", userid="guide01", content="1")
    work_jobs(app)
    control(wecom, "text_message", userid="guide01", content="1")
    work_jobs(app)
    answers = replies(wecom)
    assert "已记录第1条" in answers[1]
    assert "请先把顾客的问题发给我" in answers[2]
    sends = db.session.scalars(select(ScriptSend)).all()
    assert len(sends) == 1 and sends[0].source == "chatbot" and sends[0].query == "宝宝便秘怎么调理"


def test_help_tasks_and_no_match(app, wecom, tmp_path):
    load(tmp_path)
    for text in ("帮助", "任务", "今天天气不错哈哈", "9"):
        control(wecom, "text_message", userid="guide01", content=text)
        work_jobs(app)
    help_, tasks, nothing, pick = replies(wecom)
    assert "回复话术前的序号" in help_
    assert "待办" in tasks
    assert "没有找到合适的话术" in nothing
    assert "请先把顾客的问题发给我" in pick
