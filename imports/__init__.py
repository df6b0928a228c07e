"""Bulk data import: JSONL/CSV files of stores, guides, customers, follows, products, orders and tags.

`imports.records` parses and validates each record; `imports.operations` applies a whole file set-based in
one transaction; `imports.cli` is the `flask --app app data import` command. See docs/import-format.md.
"""
