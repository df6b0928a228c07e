"""The periodic jobs (declared in scheduler/jobs.py) and the process that runs them."""
