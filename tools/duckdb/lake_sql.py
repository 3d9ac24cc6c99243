#!/usr/bin/env python3
"""Runs SQL over the lake's Delta tables with DuckDB: the independent reader of Alkasba Lake.

DuckDB's delta extension (delta-kernel-rs) shares no code with deltalake (delta-rs), so a table
that reads the same here is readable by other engines too (Athena and Trino use their own
readers; neither runs on this machine). The extensions come from the PyPI packages
duckdb-ext-delta and duckdb-ext-httpfs, so nothing is downloaded at run time.

    lake_sql.py "SELECT count(*) AS n FROM delta_scan('s3://bucket/ops/heartbeat')"

Prints the result as a JSON array of objects. Exit 1 with a message on any error.
Endpoint and keys come from AWS_ENDPOINT_URL (default http://127.0.0.1:4566),
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION.
"""
import datetime
import decimal
import glob
import json
import os
import sys
from urllib.parse import urlparse


def extension(name: str) -> str:
    import duckdb_ext  # namespace package installed by duckdb-ext-*

    for root in duckdb_ext.__path__:
        hits = glob.glob(os.path.join(root, "extensions", "*", "*", f"{name}.duckdb_extension"))
        if hits:
            return hits[0]
    raise SystemExit(f"lake_sql: the {name} extension is not installed (pip install duckdb-ext-{name})")


def connect():
    import duckdb

    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    for ext in ("httpfs", "delta"):
        con.execute(f"LOAD '{extension(ext)}'")
    endpoint = urlparse(os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"))
    key = os.environ.get("AWS_ACCESS_KEY_ID")
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        raise SystemExit("lake_sql: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set")
    region = os.environ.get("AWS_REGION", "us-east-1")
    con.execute(
        "CREATE SECRET lake (TYPE S3, KEY_ID ?, SECRET ?, REGION ?, ENDPOINT ?, URL_STYLE 'path', USE_SSL ?)",
        [key, secret, region, endpoint.netloc, endpoint.scheme == "https"],
    )
    return con


def plain(v):
    if isinstance(v, (datetime.date, datetime.datetime)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return str(v)
    return v


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        con = connect()
        cur = con.execute(sys.argv[1])
        cols = [d[0] for d in cur.description]
        rows = [{c: plain(v) for c, v in zip(cols, row)} for row in cur.fetchall()]
    except Exception as e:  # report any DuckDB error as one clear line
        print(f"lake_sql: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    json.dump(rows, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
