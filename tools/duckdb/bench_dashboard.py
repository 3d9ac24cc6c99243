#!/usr/bin/env python3
"""The anchor of `scripts/bench-dashboard.sh`: the dashboard's own queries (the catalogue printed
by `alkasba dashboard queries`, same SQL, same bound parameters) run by DuckDB over the same
local Delta tables, timed per query.

    alkasba dashboard queries | bench_dashboard.py <lake dir> <step>=<query,query,...>;<param>=<value>... ...

Each step (for example the first view: range, currencies, categories, then the sales page's
queries) names its queries and parameters; a step's time is the sum of its queries' times (one
DuckDB connection, queries one after the other, each fetched in full), after one untimed warm-up
of the same step, reported as the median of RUNS (env, default 5). Prints one JSON object.
"""
import datetime
import json
import os
import re
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from lake_sql import extension  # noqa: E402


def main() -> int:
    import duckdb

    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    lake = sys.argv[1]
    catalogue = {q["name"]: q for q in map(json.loads, filter(str.strip, sys.stdin))}
    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute(f"LOAD '{extension('delta')}'")
    runs = int(os.environ.get("RUNS", "5"))
    out = {}
    for spec in sys.argv[2:]:
        head, *params = spec.split(";")
        step, names = head.split("=", 1)
        p = dict(kv.split("=", 1) for kv in params)
        for k in ("from", "to"):
            p[k] = datetime.date.fromisoformat(p[k])
        n = (p["to"] - p["from"]).days + 1
        p["prev_from"], p["prev_to"] = p["from"] - datetime.timedelta(days=n), p["from"] - datetime.timedelta(days=1)
        p.setdefault("currency", "")
        p.setdefault("category", "")
        p["product"] = int(p.get("product", 0))
        grain = p.pop("grain", "day")
        queries = [catalogue[q] for q in names.split(",")]

        def once():
            total = 0.0
            for q in queries:
                for name, path in q["sources"].items():
                    con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM delta_scan('{os.path.join(lake, path)}')")
                sql = q["sql"].replace("{grain}", grain)
                used = {k: v for k, v in p.items() if re.search(r"\$" + k + r"\b", sql)}
                started = time.perf_counter()
                con.execute(sql, used).fetchall()
                total += time.perf_counter() - started
            return total

        once()
        out[step] = {"ms": statistics.median(once() * 1000 for _ in range(runs)), "queries": names.split(",")}
    json.dump(out, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
