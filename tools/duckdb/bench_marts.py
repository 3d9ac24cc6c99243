#!/usr/bin/env python3
"""Times the gold marts' SQL in DuckDB over the same silver (and gold) Delta tables: the
reference engine of `alkasba-bench batch`.

Reads JSON from stdin: {"marts": [{"name": ..., "views": {"orders": "/path/to/silver/orders", ...},
"sql": "..."}]}; each view is a `delta_scan` of a local table (the SQL defines its own `touched`
dates: every one, as in a full build). Each mart is materialised (CREATE TEMP TABLE ... AS), timed from the
query's start to its end, in the order given. Prints [{"name", "secs", "rows"}] as JSON.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from lake_sql import extension  # noqa: E402


def main() -> int:
    import duckdb

    spec = json.load(sys.stdin)
    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute(f"LOAD '{extension('delta')}'")
    out = []
    for m in spec["marts"]:
        for name, path in m["views"].items():
            con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM delta_scan('{path}')")
        started = time.perf_counter()
        con.execute(f"CREATE OR REPLACE TEMP TABLE mart_{m['name']} AS {m['sql']}")
        secs = time.perf_counter() - started
        rows = con.execute(f"SELECT count(*) FROM mart_{m['name']}").fetchone()[0]
        out.append({"name": m["name"], "secs": secs, "rows": rows})
    json.dump(out, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
