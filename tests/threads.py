"""Another transaction that holds its locks for a while: what the race tests put beside the code they test."""
from __future__ import annotations

import threading
import time

from sqlalchemy.orm import Session


def commit_later(session: Session, seconds: float = 1.0) -> threading.Thread:
    """Commit (and close) `session` `seconds` from now, from another thread; join the thread returned."""
    def run():
        time.sleep(seconds)
        session.commit()
        session.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread
