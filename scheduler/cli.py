"""`flask --app app scheduler [--run JOB --date D]`: the scheduler process, or one job run by hand."""
from __future__ import annotations

from datetime import date

import click
from flask import current_app

from scheduler import runner
from scheduler.jobs import JOBS


@click.command("scheduler")
@click.option("--run", "job_key", type=click.Choice([j.key for j in JOBS]), help="Run this job's slot now and exit.")
@click.option("--date", "day", help="With --run: the day of the slot (default today).")
def scheduler_command(job_key, day):
    """Run the periodic jobs of scheduler/jobs.py (daily ones at local times in APP_TIMEZONE, interval ones)."""
    if job_key is None:
        runner.start(current_app._get_current_object(), blocking=True)
        return
    from core.timeutil import app_tz, local_today, utcnow

    try:
        D = date.fromisoformat(day) if day else local_today()
    except ValueError:
        raise click.BadParameter(f"{day!r} is not a date (YYYY-MM-DD)", param_hint="--date") from None
    job = next(j for j in JOBS if j.key == job_key)
    if job.every_minutes is not None and not day:
        slot = runner.current_slot(job, utcnow())
    else:
        slot = runner.slot_time(job, D)
    click.echo(f"{job.key} {slot.astimezone(app_tz()):%Y-%m-%d %H:%M}: {runner.run_slot(job, slot)}")
