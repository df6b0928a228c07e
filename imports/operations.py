"""Apply an import file set-based, in one transaction.

Pass 1 parses and validates every record (imports.records) and collects every error with its line number.
Then, still read-only, references are resolved against the file and the database: store codes, guide
userids, tags, and customers through One-ID (identity keys). Any error rejects the whole file
(`ImportRejected`) before anything is written. Pass 2 applies the records per type in dependency order,
each type as a few big statements: rows are staged into a temporary table (`_Bulk.stage`: COPY on
PostgreSQL, executemany on SQLite) and merged with `INSERT … SELECT … ON CONFLICT DO UPDATE … WHERE …
IS DISTINCT FROM …`, so a re-imported file rewrites no row. The SQL is the same on both dialects; only
staging, id allocation and value adaptation differ.
"""
from __future__ import annotations

import gc
import json
import logging
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

from sqlalchemy import text
from tqdm import tqdm

from core.db import db
from core.timeutil import utcnow
from imports.files import ImportRejected, parse_each, read_csv, read_jsonl
from imports.records import CSV_TYPES, TYPE_ORDER, RecordError, parse_record


log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------------
# The dialect-specific part: staging rows, allocating ids, adapting values.

_PG_TYPES = {"text": "text", "int": "bigint", "num": "numeric", "ts": "timestamptz", "date": "date", "json": "jsonb"}
_SQLITE_TYPES = {"text": "TEXT", "int": "INTEGER", "num": "NUMERIC", "ts": "TEXT", "date": "TEXT", "json": "TEXT"}


class _Bulk:
    def __init__(self, conn):
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"
        self.analyzed: set[str] = set()
        if self.pg:
            conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")

    def value(self, v):
        """A Python value as the driver should receive it for raw SQL (SQLite keeps UTC times as text)."""
        if self.pg or v is None:
            return v
        if isinstance(v, datetime):
            return v.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
        if isinstance(v, date):
            return v.isoformat()
        if isinstance(v, Decimal):
            return str(v)
        return v

    def stage(self, name: str, columns: list[tuple[str, str]], rows: list[tuple]) -> None:
        """Create TEMP table `name` with `columns` [(name, kind)] and load `rows` into it."""
        t0 = time.perf_counter()
        types = _PG_TYPES if self.pg else _SQLITE_TYPES
        cols = ", ".join(c for c, _ in columns)
        self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
        ddl = ", ".join(f"{c} {types[k]}" for c, k in columns)
        if self.pg:
            self.conn.exec_driver_sql(f"CREATE TEMP TABLE {name} ({ddl}) ON COMMIT DROP")
            raw = self.conn.connection.driver_connection
            with raw.cursor() as cur:
                with cur.copy(f"COPY {name} ({cols}) FROM STDIN") as copy:
                    write = copy.write_row
                    for row in rows:
                        write(row)
            self.conn.exec_driver_sql(f"ANALYZE {name}")
        else:
            self.conn.exec_driver_sql(f"CREATE TEMP TABLE {name} ({ddl})")
            adapt = self.value
            marks = ", ".join("?" for _ in columns)
            cur = self.conn.connection.driver_connection.cursor()
            try:
                cur.executemany(f"INSERT INTO {name} ({cols}) VALUES ({marks})",
                                (tuple(adapt(v) for v in row) for row in rows))
            finally:
                cur.close()
        log.debug("  staged %d rows into %s in %.1f s", len(rows), name, time.perf_counter() - t0)

    def allocate_ids(self, table: str, n: int) -> list[int]:
        """n fresh primary keys for `table`, so inserted rows need no id look-up afterwards."""
        if n == 0:
            return []
        if self.pg:
            rows = self.conn.execute(
                text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
                {"t": table, "n": n},
            )
            return sorted(r[0] for r in rows)
        start = self.conn.exec_driver_sql(f"SELECT COALESCE(MAX(id), 0) FROM {table}").scalar() + 1
        return list(range(start, start + n))

    def analyze(self, *tables: str) -> None:
        """Fresh planner statistics for tables this import has just filled (PostgreSQL): autovacuum has not
        seen the rows yet, and a join planned on an empty table's statistics can turn quadratic (the
        binding-guide UPDATE took minutes at 200,000 records). Once per table and import: a step asks for the
        tables its joins read, and those an earlier step analyzed have gained no rows since."""
        tables = [t for t in tables if t not in self.analyzed]
        if self.pg and tables:
            t0 = time.perf_counter()
            self.conn.exec_driver_sql(f"ANALYZE {', '.join(tables)}")
            log.debug("  analyzed %s in %.1f s", ", ".join(tables), time.perf_counter() - t0)
        self.analyzed.update(tables)

    def run(self, sql: str, **params) -> int:
        t0 = time.perf_counter()
        result = self.conn.execute(text(sql), {k: self.value(v) for k, v in params.items()})
        log.debug("  %d rows in %.1f s: %s", result.rowcount, time.perf_counter() - t0, " ".join(sql.split()[:4]))
        return result.rowcount


def _changed(table: str, replace: Iterable[str] = (), keep: Iterable[str] = (), src: str = "excluded") -> tuple[str, str]:
    """SET list and guard for an upsert or UPDATE … FROM: `replace` columns take the new value; `keep`
    columns take it only when it is given (NULL keeps the stored value). The guard is true only when some
    value really changes, so unchanged rows are not rewritten."""
    sets, guards = [], []
    for c in replace:
        sets.append(f"{c} = {src}.{c}")
        guards.append(f"{table}.{c} IS DISTINCT FROM {src}.{c}")
    for c in keep:
        sets.append(f"{c} = COALESCE({src}.{c}, {table}.{c})")
        guards.append(f"({src}.{c} IS NOT NULL AND {table}.{c} IS DISTINCT FROM {src}.{c})")
    return ", ".join(sets), " OR ".join(guards)


# --------------------------------------------------------------------------------------------------------
# Pass 1 and reference resolution (read-only).


def _last_wins(items: list[tuple[int, dict]], key) -> dict:
    out = {}
    for lineno, rec in items:
        out[key(rec)] = (lineno, rec)
    return out


class _Plan:
    """Everything pass 2 needs, worked out without writing: deduplicated records and resolved references."""

    def __init__(self, bulk: _Bulk, batches: dict[str, list], errors: list):
        self.bulk = bulk
        self.batches = batches
        self.errors = errors

    def err(self, lineno: int, msg: str) -> None:
        self.errors.append((lineno, msg))

    def resolve(self) -> None:
        b, conn = self.batches, self.bulk.conn
        self.stores = _last_wins(b["store"], lambda r: r["code"])
        known_stores = set(self.stores) | {r[0] for r in conn.execute(text("SELECT code FROM stores"))}
        self.guides = _last_wins(b["guide"], lambda r: r["userid"])
        for lineno, rec in self.guides.values():
            if rec["store"] is not None and rec["store"] not in known_stores:
                self.err(lineno, f"guide: unknown store code {rec['store']!r}")
        known_guides = set(self.guides) | {r[0] for r in conn.execute(text("SELECT userid FROM guides"))}
        self.tags = _last_wins(b["tag"], lambda r: (r["group"], r["name"]))
        known_tags = set(self.tags) | {
            (r[0], r[1]) for r in conn.execute(text(
                "SELECT g.name, t.name FROM tags t JOIN tag_groups g ON g.id = t.group_id"))
        }
        self.products = _last_wins(b["product"], lambda r: r["sku"])
        self._resolve_customers()

        self.follows = {}
        for lineno, rec in b["follow"]:
            ok = True
            if rec["userid"] not in known_guides:
                self.err(lineno, f"follow: unknown guide userid {rec['userid']!r}")
                ok = False
            token = self.key_token.get(("external_userid", rec["external_userid"]))
            if token is None:
                self.err(lineno, f"follow: {self._unknown_customer(rec['external_userid'])}")
                ok = False
            if ok:
                self.follows[(rec["userid"], token)] = (lineno, rec, token)

        self.customer_tags = {}
        for lineno, rec in b["customer_tag"]:
            ok = True
            token = self.key_token.get(("external_userid", rec["external_userid"]))
            if token is None:
                self.err(lineno, f"customer_tag: {self._unknown_customer(rec['external_userid'])}")
                ok = False
            if (rec["group"], rec["name"]) not in known_tags:
                self.err(lineno, f"customer_tag: unknown tag {rec['group'] + '/' + rec['name']!r}")
                ok = False
            if ok:
                self.customer_tags[(token, rec["group"], rec["name"])] = lineno

        self.orders = {}
        for lineno, rec in b["order"]:
            ok = True
            if rec["store"] is not None and rec["store"] not in known_stores:
                self.err(lineno, f"order: unknown store code {rec['store']!r}")
                ok = False
            tokens = {}
            for key in rec["keys"].items():
                token = self.key_token.get(key)
                if token is not None:
                    tokens.setdefault(token, key)
            if len(tokens) > 1:
                self.err(lineno, "order: customer keys match different customers: " + self._describe(tokens))
                ok = False
            if ok:
                self.orders[rec["order_no"]] = (lineno, rec, next(iter(tokens), None))

    def _describe(self, tokens: dict) -> str:
        parts = []
        for token, (kind, value) in tokens.items():
            who = f"customer #{token}" if token > 0 else f"the customer of line {self.group_line[token]}"
            parts.append(f"{who} ({kind}={value})")
        return " and ".join(parts)

    def _resolve_customers(self) -> None:
        """One-ID: group the file's customer records by shared keys, match groups to stored customers.

        Tokens name a customer before ids exist: a positive token is a stored customer's id, a negative
        one a customer this file creates (replaced by a real id when applied)."""
        records = self.batches["customer"]
        parent = list(range(len(records)))

        def find(i):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        key_owner: dict[tuple[str, str], int] = {}
        for i, (_, rec) in enumerate(records):
            for key in rec["keys"].items():
                j = key_owner.get(key)
                if j is None:
                    key_owner[key] = i
                else:
                    a, b = find(i), find(j)
                    if a != b:
                        parent[max(a, b)] = min(a, b)

        # Every key the file mentions, looked up in customer_identities by joining a staged table.
        wanted = set(key_owner)
        for _, rec in self.batches["follow"]:
            wanted.add(("external_userid", rec["external_userid"]))
        for _, rec in self.batches["order"]:
            wanted.update(rec["keys"].items())
        updating = set(wanted)  # keys of the customers the import UPDATEs (profile, binding guide, figures)
        for _, rec in self.batches["customer_tag"]:
            wanted.add(("external_userid", rec["external_userid"]))
        self.bulk.stage("tmp_keys", [("kind", "text"), ("value", "text")], list(wanted))
        stored = {
            (k, v): cid for k, v, cid in self.bulk.conn.execute(text(
                "SELECT k.kind, k.value, ci.customer_id FROM tmp_keys k "
                "JOIN customer_identities ci ON ci.kind = k.kind AND ci.value = k.value"))
        }
        stored = self._lock_customers(stored, updating)
        self.stored_keys = stored

        groups: dict[int, list[int]] = defaultdict(list)
        for i in range(len(records)):
            groups[find(i)].append(i)
        self.groups = []  # [(token, merged record, keys to add)]
        self.group_line = {}
        key_token: dict[tuple[str, str], int] = dict(stored)
        next_new = -1
        for members in groups.values():
            matched: dict[int, tuple] = {}
            bad = False
            for i in members:
                lineno, rec = records[i]
                own = {}
                for key in rec["keys"].items():
                    if key in stored:
                        own.setdefault(stored[key], key)
                if len(own) > 1:
                    self.err(lineno, "customer: keys match two different customers: " + " and ".join(
                        f"#{cid} ({k}={v})" for cid, (k, v) in own.items()))
                    bad = True
                for cid, key in own.items():
                    matched.setdefault(cid, key)
            if not bad and len(matched) > 1:
                lines = ", ".join(str(records[i][0]) for i in members)
                names = " and ".join(f"#{cid} ({k}={v})" for cid, (k, v) in matched.items())
                for i in members:
                    if any(key in stored for key in records[i][1]["keys"].items()):
                        self.err(records[i][0], f"customer: records sharing keys (lines {lines}) match two "
                                                f"different customers: {names}")
                bad = True
            if bad:
                continue
            if matched:
                token = next(iter(matched))
            else:
                token = next_new
                next_new -= 1
                self.group_line[token] = records[members[0]][0]
            merged: dict = {}
            keys: dict[tuple[str, str], None] = {}
            for i in sorted(members, key=lambda i: records[i][0]):
                rec = records[i][1]
                for field, value in rec.items():
                    if field != "keys" and value is not None:
                        merged[field] = value
                for key in rec["keys"].items():
                    keys[key] = None
                    key_token[key] = token
            self.groups.append((token, merged, [k for k in keys if k not in stored]))
        self.key_token = key_token
        self.new_customers = -next_new - 1
        # An order key that named a customer erased meanwhile, and that no customer record of the file
        # claims, is dropped: the order stays unmatched without it, as the erasure leaves unmatched orders.
        for _, rec in self.batches["order"]:
            if any(key in self.erased_keys and key not in key_token for key in rec["keys"].items()):
                rec["keys"] = {k: v for k, v in rec["keys"].items()
                               if (k, v) not in self.erased_keys or (k, v) in key_token}

    def _unknown_customer(self, external_userid: str) -> str:
        if ("external_userid", external_userid) in self.erased_keys:
            return f"customer external_userid {external_userid!r} was erased while the import ran (drop the line)"
        return f"unknown customer external_userid {external_userid!r}"

    def _lock_customers(self, stored: dict, updating: set) -> dict:
        """Lock every stored customer the import will write about until it commits, before it writes anything,
        all in one order: ascending id, as order ingest, the hourly match and the erasure lock customers. Return
        `stored` without the keys of customers erased since the identities were read.

        Those it will UPDATE (named by a customer, follow or order line: `updating`; and those whose stored
        orders the file's orders take away, whose figures are recomputed) are locked FOR NO KEY UPDATE, the lock
        the UPDATEs take, so the UPDATEs, minutes later, take no new lock. Taking them one by one in the
        UPDATEs' own order would deadlock with ingest or the hourly match, which may lock a customer in the
        meantime and then wait for one the import holds. The others (named only by customer_tag lines, which
        only insert rows pointing at them) are locked FOR KEY SHARE, which only an erasure's FOR UPDATE
        conflicts with. An erasure in flight holds its customer FOR UPDATE: this waits for it and then reads
        the shell's erased_at, so the person is never written back onto the shell (their keys then name
        nobody, as after the erasure). An erasure starting later waits for the import instead (up to its lock
        timeout, then it answers busy)."""
        self.erased_keys = set()
        self.locked: set[int] = set()  # customer ids held FOR NO KEY UPDATE
        if not self.bulk.pg:  # SQLite has one writer: nobody else holds a customer, no erasure is in flight
            return stored
        conn = self.bulk.conn
        to_update = {cid for key, cid in stored.items() if key in updating}
        order_nos = {rec["order_no"] for _, rec in self.batches["order"]}
        if order_nos:
            self.bulk.stage("tmp_order_no", [("order_no", "text")], [(no,) for no in order_nos])
            to_update.update(r[0] for r in conn.execute(text(
                "SELECT DISTINCT o.customer_id FROM orders o JOIN tmp_order_no t ON t.order_no = o.order_no "
                "WHERE o.customer_id IS NOT NULL")))
        shared = set(stored.values()) - to_update
        if not to_update and not shared:
            return stored
        self.bulk.stage("tmp_lock", [("id", "int"), ("upd", "int")],
                        [(cid, 1) for cid in to_update] + [(cid, 0) for cid in shared])
        erased = set()
        for upd, mode in ((1, "NO KEY UPDATE"), (0, "KEY SHARE")):
            for cid, is_erased in conn.execute(text(
                    "SELECT c.id, c.erased_at IS NOT NULL FROM customers c JOIN tmp_lock t ON t.id = c.id "
                    f"WHERE t.upd = {upd} ORDER BY c.id FOR {mode} OF c")):
                if upd:
                    self.locked.add(cid)
                if is_erased:
                    erased.add(cid)
        self.erased_keys = {key for key, cid in stored.items() if cid in erased}
        return {key: cid for key, cid in stored.items() if cid not in erased}


# --------------------------------------------------------------------------------------------------------
# Pass 2: apply per type.


class _Steps:
    """Advances the progress bar one type at a time and logs how long each type took (DEBUG)."""

    def __init__(self, bar):
        self.bar, self.i, self.t0 = bar, 0, time.perf_counter()

    def update(self) -> None:
        now = time.perf_counter()
        log.debug("applied %s in %.1f s", TYPE_ORDER[self.i], now - self.t0)
        self.bar.update()
        self.i, self.t0 = self.i + 1, now


# A staged row (alias {0}) naming a customer erased since the plan resolved it.
_ERASED = "SELECT 1 FROM customers ec WHERE ec.id = {0}.customer_id AND ec.erased_at IS NOT NULL"


def _apply(plan: _Plan, bulk: _Bulk, bar) -> None:
    now = utcnow()
    steps = _Steps(bar)

    if plan.stores:
        bulk.stage("tmp_store", [("code", "text"), ("name", "text"), ("city", "text")],
                   [(r["code"], r["name"], r["city"]) for _, r in plan.stores.values()])
        sets, guard = _changed("stores", replace=["name"], keep=["city"])
        bulk.run(f"""INSERT INTO stores (code, name, city, created_at)
            SELECT code, name, city, :now FROM tmp_store WHERE true
            ON CONFLICT (code) DO UPDATE SET {sets} WHERE {guard}""", now=now)
    steps.update()

    if plan.guides:
        bulk.stage("tmp_guide", [("userid", "text"), ("name", "text"), ("store", "text"), ("role", "text")],
                   [(r["userid"], r["name"], r["store"], r["role"]) for _, r in plan.guides.values()])
        sets, guard = _changed("guides", replace=["name", "role"], keep=["store_id"])
        bulk.run(f"""INSERT INTO guides (userid, name, store_id, role, status, created_at)
            SELECT t.userid, t.name, s.id, t.role, 'active', :now
            FROM tmp_guide t LEFT JOIN stores s ON s.code = t.store WHERE true
            ON CONFLICT (userid) DO UPDATE SET {sets} WHERE {guard}""", now=now)
    steps.update()

    if plan.tags:
        bulk.stage("tmp_tag", [("grp", "text"), ("name", "text")], list(plan.tags))
        bulk.run("""INSERT INTO tag_groups (name, "order", deleted)
            SELECT DISTINCT grp, 0, false FROM tmp_tag WHERE true
            ON CONFLICT (name) DO UPDATE SET deleted = false WHERE tag_groups.deleted""")
        bulk.run("""INSERT INTO tags (group_id, name, "order", deleted)
            SELECT g.id, t.name, 0, false FROM tmp_tag t JOIN tag_groups g ON g.name = t.grp WHERE true
            ON CONFLICT (group_id, name) DO UPDATE SET deleted = false WHERE tags.deleted""")
    steps.update()

    if plan.products:
        bulk.stage("tmp_product", [("sku", "text"), ("name", "text"), ("category", "text"), ("price", "num"),
                                   ("attributes", "json")],
                   [(r["sku"], r["name"], r["category"], r["price"], r["attributes"] or "{}")
                    for _, r in plan.products.values()])
        sets, guard = _changed("products", replace=["name", "category", "price", "attributes"])
        bulk.run(f"""INSERT INTO products (sku, name, category, price, attributes, created_at)
            SELECT sku, name, category, price, attributes, :now FROM tmp_product WHERE true
            ON CONFLICT (sku) DO UPDATE SET {sets} WHERE {guard}""", now=now)
    steps.update()

    # Customers: tokens become ids (new ones allocated up front), then one UPDATE and one INSERT.
    new_ids = bulk.allocate_ids("customers", plan.new_customers)
    ids = {-(i + 1): cid for i, cid in enumerate(new_ids)}

    def cid(token: int) -> int:
        return token if token > 0 else ids[token]

    if plan.groups:
        fields = ["name", "gender", "birthday", "baby_birthday", "due_date", "member_level", "points"]
        kinds = ["text", "int", "date", "date", "date", "text", "int"]
        bulk.stage("tmp_customer", [("id", "int"), ("is_new", "int")] + list(zip(fields, kinds)),
                   [(cid(token), 1 if token < 0 else 0, *(m.get(f) for f in fields)) for token, m, _ in plan.groups])
        sets, guard = _changed("customers", replace=["name"], keep=fields[1:], src="t")
        # The "not erased" guards below hold whatever the plan resolved: a shell never takes data back.
        bulk.run(f"""UPDATE customers SET {sets}, updated_at = :now FROM tmp_customer t
            WHERE customers.id = t.id AND t.is_new = 0 AND customers.erased_at IS NULL AND ({guard})""", now=now)
        bulk.run("""INSERT INTO customers (id, name, gender, birthday, baby_birthday, due_date, member_level,
                points, order_count, total_spend, created_at, updated_at)
            SELECT id, name, COALESCE(gender, 0), birthday, baby_birthday, due_date, member_level,
                COALESCE(points, 0), 0, 0, :now, :now FROM tmp_customer WHERE is_new = 1""", now=now)
        bulk.stage("tmp_ident", [("customer_id", "int"), ("kind", "text"), ("value", "text")],
                   [(cid(token), k, v) for token, _, keys in plan.groups for k, v in keys])
        bulk.run(f"""INSERT INTO customer_identities (customer_id, kind, value, created_at)
            SELECT customer_id, kind, value, :now FROM tmp_ident t WHERE NOT EXISTS ({_ERASED.format("t")})
            ON CONFLICT (kind, value) DO NOTHING""", now=now)
    steps.update()

    if plan.follows:
        bulk.stage("tmp_follow", [("userid", "text"), ("customer_id", "int"), ("added_at", "ts"),
                                  ("state", "text"), ("remark", "text")],
                   [(r["userid"], cid(token), r["added_at"], r["state"], r["remark"])
                    for _, r, token in plan.follows.values()])
        sets, guard = _changed("follows", replace=["added_at"], keep=["state", "remark"])
        bulk.run(f"""INSERT INTO follows (guide_id, customer_id, added_at, state, remark)
            SELECT g.id, t.customer_id, t.added_at, t.state, t.remark
            FROM tmp_follow t JOIN guides g ON g.userid = t.userid WHERE NOT EXISTS ({_ERASED.format("t")})
            ON CONFLICT (guide_id, customer_id) DO UPDATE SET {sets} WHERE {guard}""")
        bulk.analyze("customers", "customer_identities", "follows")
        # Binding guide: the earliest-added follow still in force; first_added_at: the earliest of all.
        sets, guard = _changed("customers", replace=["binding_guide_id", "first_added_at"], src="x")
        bulk.run(f"""UPDATE customers SET {sets}, updated_at = :now FROM (
                SELECT a.customer_id, a.first_added_at, b.guide_id AS binding_guide_id
                FROM (SELECT customer_id, MIN(added_at) AS first_added_at FROM follows
                      WHERE customer_id IN (SELECT customer_id FROM tmp_follow) GROUP BY customer_id) a
                LEFT JOIN (SELECT customer_id, guide_id,
                                  ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY added_at, id) AS rn
                           FROM follows WHERE ended_at IS NULL
                           AND customer_id IN (SELECT customer_id FROM tmp_follow)) b
                       ON b.customer_id = a.customer_id AND b.rn = 1
            ) x WHERE customers.id = x.customer_id AND customers.erased_at IS NULL AND ({guard})""", now=now)
    steps.update()

    if plan.customer_tags:
        bulk.stage("tmp_ctag", [("customer_id", "int"), ("grp", "text"), ("name", "text")],
                   [(cid(token), g, n) for token, g, n in plan.customer_tags])
        bulk.run(f"""INSERT INTO customer_tags (customer_id, tag_id, source, created_at)
            SELECT t.customer_id, tg.id, 'import', :now FROM tmp_ctag t
            JOIN tag_groups g ON g.name = t.grp JOIN tags tg ON tg.group_id = g.id AND tg.name = t.name
            WHERE NOT EXISTS ({_ERASED.format("t")}) ON CONFLICT (customer_id, tag_id) DO NOTHING""", now=now)
    steps.update()

    if plan.orders:
        _apply_orders(plan, bulk, cid, new_ids, now)
    steps.update()


def _apply_orders(plan: _Plan, bulk: _Bulk, cid, new_ids: list[int], now) -> None:
    bulk.analyze("customers", "customer_identities", "follows", "orders")  # what the orders' joins read
    dumps = json.dumps
    order_rows, line_rows, affected = [], [], set()
    for order_no, (_, r, token) in plan.orders.items():
        customer_id = cid(token) if token is not None else None
        if customer_id is not None:
            affected.add(customer_id)
        keys = dumps(r["keys"], ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        payload = '{"amount":%s,"items":%d}' % (r["amount"], len(r["items"]))
        order_rows.append((order_no, r["channel"], r["store"], customer_id, r["paid_at"], r["amount"], keys,
                           len(r["items"]), payload))
        for n, (sku, name, category, qty, price) in enumerate(r["items"], 1):
            line_rows.append((order_no, n, sku, name, category, qty, price))
    bulk.stage("tmp_order", [("order_no", "text"), ("channel", "text"), ("store", "text"), ("customer_id", "int"),
                             ("paid_at", "ts"), ("amount", "num"), ("customer_keys", "json"), ("n_lines", "int"),
                             ("payload", "json")], order_rows)
    del order_rows
    # Customers whose orders move away also need their figures recomputed.
    affected.update(r[0] for r in bulk.conn.execute(text(
        "SELECT DISTINCT o.customer_id FROM orders o JOIN tmp_order t ON t.order_no = o.order_no "
        "WHERE o.customer_id IS NOT NULL")))
    late = sorted(affected - plan.locked - set(new_ids)) if bulk.pg else []
    if late:  # an order of the file matched (hourly job, callback) since the plan locked its customers: rare
        bulk.conn.execute(text("SELECT id FROM customers WHERE id = ANY(:ids) ORDER BY id FOR NO KEY UPDATE"),
                          {"ids": late})
    # Rows go in key order (ORDER BY): the unique indexes then grow at their right edge, not at random.
    # Each order is credited as it is written: the binding guide at paid time (orders/attribution.py).
    from orders.attribution import (attribute, binding_credit_sql, binding_sql, set_commission,
                                    settings as attribution_settings)

    sets, guard = _changed("orders", replace=["channel", "store_id", "paid_at", "amount"])
    # An order already settled on an erased customer keeps its customer, credited guide and attribution, and
    # its emptied keys: re-resolving it from the file would take the guide's credit away (the erased person's
    # keys match nobody now) and store their mobile again.
    erased = ("EXISTS (SELECT 1 FROM customers c WHERE c.id = orders.customer_id"
              " AND c.erased_at IS NOT NULL)")
    # A new order resolved to an erased customer (which the plan's lock rules out) would stay unmatched.
    erased_new = f"EXISTS ({_ERASED.format('tmp_order')})"
    for c in ("customer_id", "guide_id", "attribution", "customer_keys"):
        sets += f", {c} = CASE WHEN {erased} THEN orders.{c} ELSE excluded.{c} END"
        guard += f" OR (orders.{c} IS DISTINCT FROM excluded.{c} AND NOT {erased})"
    bulk.run(f"""INSERT INTO orders (order_no, channel, store_id, customer_id, guide_id, attribution, paid_at,
            amount, customer_keys, created_at)
        SELECT x.order_no, x.channel, x.store_id, x.customer_id, x.guide_id,
            {binding_credit_sql("x.guide_id")}, x.paid_at, x.amount, x.customer_keys, :now
        FROM (SELECT t.order_no, t.channel, s.id AS store_id, t.customer_id, t.paid_at, t.amount, t.customer_keys,
                     {binding_sql("t.customer_id", "t.paid_at")} AS guide_id
              FROM (SELECT order_no, channel, store, paid_at, amount,
                           CASE WHEN {erased_new} THEN NULL ELSE customer_id END AS customer_id,
                           CASE WHEN {erased_new} THEN '{{}}' ELSE customer_keys END AS customer_keys
                    FROM tmp_order) t LEFT JOIN stores s ON s.code = t.store) x
        WHERE true ORDER BY x.order_no ON CONFLICT (order_no) DO UPDATE SET {sets} WHERE {guard}""", now=now)

    bulk.stage("tmp_line", [("order_no", "text"), ("line_no", "int"), ("sku", "text"), ("name", "text"),
                            ("category", "text"), ("qty", "int"), ("price", "num")], line_rows)
    del line_rows
    sets, guard = _changed("order_lines", replace=["sku", "name", "category", "qty", "price"])
    bulk.run(f"""INSERT INTO order_lines (order_id, line_no, sku, name, category, qty, price)
        SELECT o.id, t.line_no, t.sku, t.name, t.category, t.qty, t.price
        FROM tmp_line t JOIN orders o ON o.order_no = t.order_no WHERE true ORDER BY o.id, t.line_no
        ON CONFLICT (order_id, line_no) DO UPDATE SET {sets} WHERE {guard}""")
    bulk.run("""DELETE FROM order_lines WHERE EXISTS (
        SELECT 1 FROM orders o JOIN tmp_order t ON t.order_no = o.order_no
        WHERE o.id = order_lines.order_id AND order_lines.line_no > t.n_lines)""")

    # In last_touch mode a recent touch overrides the binding guide (attribute() prices the commission
    # too); otherwise only the commission is left (it needs the lines).
    if attribution_settings()[0] != "binding":
        attribute("o.order_no IN (SELECT order_no FROM tmp_order) AND NOT EXISTS (SELECT 1 FROM customers c"
                  " WHERE c.id = o.customer_id AND c.erased_at IS NOT NULL)")
    else:
        set_commission("o.order_no IN (SELECT order_no FROM tmp_order)")

    # One trajectory event per matched order; (type, ref) is unique, so a re-import adds none.
    bulk.run("""INSERT INTO events (customer_id, type, occurred_at, channel, guide_id, payload, ref)
        SELECT o.customer_id, 'order', o.paid_at, o.channel, o.guide_id, t.payload, o.order_no
        FROM tmp_order t JOIN orders o ON o.order_no = t.order_no WHERE o.customer_id IS NOT NULL
        ORDER BY o.order_no ON CONFLICT (type, ref) DO NOTHING""")

    bulk.stage("tmp_affected", [("id", "int")], [(c,) for c in affected])
    sets, guard = _changed("customers", replace=["last_order_at", "order_count", "total_spend"], src="a")
    bulk.run(f"""UPDATE customers SET {sets}, updated_at = :now FROM (
            SELECT x.id AS customer_id, MAX(o.paid_at) AS last_order_at, COUNT(o.id) AS order_count,
                   COALESCE(SUM(o.amount), 0) AS total_spend
            FROM tmp_affected x LEFT JOIN orders o ON o.customer_id = x.id GROUP BY x.id
        ) a WHERE customers.id = a.customer_id AND ({guard})""", now=now)


# --------------------------------------------------------------------------------------------------------
# Public API.


def import_records(lines: Iterable[tuple[int, dict]], *, progress: bool = False,
                   dry_run: bool = False) -> dict[str, int]:
    """Validate and apply records [(line number, record)] in one transaction; counts per type, and under
    ORDERS_MATCHED how many orders that were waiting for their customer it matched (when any did).

    Raises ImportRejected listing every bad line, with nothing written. `dry_run` validates and applies,
    then rolls back."""
    gc_enabled = gc.isenabled()
    started = time.perf_counter()
    gc.disable()  # millions of small objects, no cycles: the collector would only slow pass 1 down
    try:
        errors: list[tuple[int, str]] = []
        batches: dict[str, list] = {t: [] for t in TYPE_ORDER}
        reading = tqdm(lines, desc="reading", unit=" rec", disable=not progress, file=sys.stderr, mininterval=0.5)
        for lineno, (rtype, rec) in parse_each(reading, parse_record, errors, catch=RecordError):
            batches[rtype].append((lineno, rec))
        counts = {t: len(v) for t, v in batches.items() if v}
        log.debug("read and parsed %d records in %.1f s", sum(counts.values()), time.perf_counter() - started)

        session = db.session
        try:
            bulk = _Bulk(session.connection())
            plan = _Plan(bulk, batches, errors)
            t0 = time.perf_counter()
            plan.resolve()
            log.debug("resolved references in %.1f s", time.perf_counter() - t0)
            if errors:
                raise ImportRejected(errors)
            del batches
            with tqdm(total=len(TYPE_ORDER), desc="applying", unit=" type", disable=not progress,
                      file=sys.stderr) as steps:
                _apply(plan, bulk, steps)
            t0 = time.perf_counter()
            if dry_run:
                session.rollback()
            else:
                session.commit()
                matched = _match_waiting_orders(plan) if plan.groups else 0
                if matched:
                    counts[ORDERS_MATCHED] = matched
                if plan.orders or plan.follows or matched:
                    from reports.leaderboard import invalidate

                    invalidate()  # rankings are rebuilt from the database on their next read
            log.debug("committed in %.1f s", time.perf_counter() - t0)
        except BaseException:
            session.rollback()
            raise
        return counts
    finally:
        if gc_enabled:
            gc.enable()


ORDERS_MATCHED = "orders_matched"  # in import_records' counts: waiting orders the import's customers matched


def _match_waiting_orders(plan: _Plan) -> int:
    """Orders that arrived before their customer was known (unmatched, waiting for the hourly job) and carry an
    identity this import gave a customer: matched and credited now, in a transaction of their own after the
    import's. If that fails (a lock held too long), the import stands and the hourly job matches them."""
    from sqlalchemy.exc import OperationalError

    from orders.operations import match_for_identities

    keys = [key for _, _, group_keys in plan.groups for key in group_keys]
    try:
        matched = match_for_identities(keys)
        db.session.commit()
    except OperationalError:
        db.session.rollback()
        log.warning("matching waiting orders after the import failed; the hourly job will", exc_info=True)
        return 0
    return matched


def csv_type_from_name(path: Path) -> str | None:
    stem = path.stem.lower().replace("-", "_")
    for candidate in (stem, stem.removesuffix("s")):
        if candidate in TYPE_ORDER:
            return candidate
    matches = [t for t in TYPE_ORDER if stem.startswith(t)]
    return max(matches, key=len) if matches else None


def import_file(path, *, record_type: str | None = None, progress: bool = False,
                dry_run: bool = False) -> dict[str, int]:
    """Import a .jsonl (one record per line, each with a `type`) or a .csv of one record type (from
    `record_type` or the file name, e.g. stores.csv)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        rtype = record_type or csv_type_from_name(path)
        if rtype is None:
            raise ImportRejected([(0, f"cannot tell the record type of {path.name}: name it after the type "
                                      f"(e.g. stores.csv) or pass --type ({', '.join(CSV_TYPES)})")])
        if rtype not in CSV_TYPES:
            raise ImportRejected([(0, f"{rtype} records cannot come from CSV (nested fields): use JSONL")])
        lines = read_csv(path, rtype)
    else:
        lines = read_jsonl(path, record_type)
    return import_records(lines, progress=progress, dry_run=dry_run)


__all__ = ["ORDERS_MATCHED", "ImportRejected", "import_records", "import_file", "read_jsonl", "read_csv"]
