"""Bulk data import: JSONL/CSV files of stores, guides, customers, follows, products, orders and tags.

`imports.files` reads JSONL and CSV files and rejects a bad one (`ImportRejected`, also for the coupon,
commission, knowledge and playbook imports); `imports.records` parses and validates each record;
`imports.operations` applies a whole file set-based in one transaction; `imports.cli` is the
`flask --app app data import` command and prints a rejected file for every import command.
See docs/import-format.md.
"""
