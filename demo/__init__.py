"""Demo data: a believable maternal & baby (母婴) store chain, generated deterministically.

`demo.data` builds the import records (and the matching WeCom corp for the stand-in) without touching the
database; `demo.cli` is `flask --app app demo seed [--if-empty]`, which feeds them to the bulk import.
"""
from demo.data import build_records, demo_corp_seed

__all__ = ["build_records", "demo_corp_seed"]
