"""The anchor of the ingestion benchmark (issue 20): dlt, the Python tool most teams would pick for
this job, reading the same WooCommerce API as our fetchers into a Delta table on the same S3
(LocalStack), set up as a new user would from dlt's documentation: the `rest_api` source with
HTTP Basic auth and the `Link` header paginator (what WooCommerce sends), the `filesystem`
destination with `table_format="delta"`.

    bench_dlt.py --base-url http://127.0.0.1:8787 --key ck_... --secret cs_... \
        --bucket-url s3://bucket/dlt --endpoint http://127.0.0.1:4566 [--resource orders]

Prints one JSON object: rows loaded, wall seconds, rows/s, this process's CPU seconds, and the
bytes of the table's Parquet files in S3 (what a reader pays to store and scan). dlt seals
nothing: personal data lands in clear, which is what our figures are compared with.
"""

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-url", required=True, help="the store, e.g. http://127.0.0.1:8787")
    p.add_argument("--key", required=True, help="WooCommerce consumer key")
    p.add_argument("--secret", required=True, help="WooCommerce consumer secret")
    p.add_argument("--bucket-url", required=True, help="s3://bucket/prefix for dlt's tables")
    p.add_argument("--endpoint", required=True, help="S3 endpoint (LocalStack)")
    p.add_argument("--resource", default="orders", help="WooCommerce resource (default orders)")
    a = p.parse_args()

    # dlt reads its configuration from the environment; its working files go to a temp dir,
    # removed at the end (a million orders leave ~360 MB of them).
    work = tempfile.mkdtemp(prefix="alkasba-dlt-")
    try:
        return run(a, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(a: argparse.Namespace, work: str) -> int:
    os.environ.update(
        {
            "DESTINATION__FILESYSTEM__BUCKET_URL": a.bucket_url,
            "DESTINATION__FILESYSTEM__CREDENTIALS__AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "test"),
            "DESTINATION__FILESYSTEM__CREDENTIALS__AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
            "DESTINATION__FILESYSTEM__CREDENTIALS__REGION_NAME": os.environ.get("AWS_REGION", "us-east-1"),
            "DESTINATION__FILESYSTEM__CREDENTIALS__ENDPOINT_URL": a.endpoint,
            "DLT_DATA_DIR": work,
            "DLT_PIPELINE_DIR": work,
            "RUNTIME__LOG_LEVEL": "WARNING",
        }
    )
    import dlt
    import s3fs
    from dlt.sources.rest_api import rest_api_source

    fs = s3fs.S3FileSystem(key=os.environ.get("AWS_ACCESS_KEY_ID", "test"), secret=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"), client_kwargs={"endpoint_url": a.endpoint})
    dataset = a.bucket_url.removeprefix("s3://").rstrip("/") + "/woocommerce"
    if fs.exists(dataset):
        # dlt appends: a second run into the same place would double the rows and the bytes.
        print(f"error: {a.bucket_url} already holds a dlt dataset; give a fresh --bucket-url", file=sys.stderr)
        return 2

    source = rest_api_source(
        {
            "client": {
                "base_url": a.base_url.rstrip("/") + "/wp-json/wc/v3/",
                "auth": {"type": "http_basic", "username": a.key, "password": a.secret},
                "paginator": {"type": "header_link"},
            },
            "resources": [
                {
                    "name": a.resource,
                    "endpoint": {"path": a.resource, "params": {"per_page": 100, "orderby": "id", "order": "asc"}},
                    "table_format": "delta",
                }
            ],
        }
    )
    pipeline = dlt.pipeline(pipeline_name="alkasba_dlt_bench", destination="filesystem", dataset_name="woocommerce", pipelines_dir=work)
    started = time.monotonic()
    info = pipeline.run(source)
    seconds = time.monotonic() - started
    info.raise_on_failed_jobs()
    rows = pipeline.last_trace.last_normalize_info.row_counts.get(a.resource, 0)

    # dlt normalises nested lists (line items, meta data, ...) into child tables
    # (`orders__line_items`): an order's bytes are in all of them.
    tables = [t for t in fs.ls(dataset) if t.rsplit("/", 1)[-1] == a.resource or t.rsplit("/", 1)[-1].startswith(a.resource + "__")]
    parquet = sum(size for t in tables for path, size in fs.du(t, total=False).items() if path.endswith(".parquet"))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "tool": "dlt " + dlt.__version__,
                "rows": rows,
                "seconds": round(seconds, 3),
                "rows_per_second": round(rows / seconds, 1) if seconds else None,
                "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
                "tables": sorted(t.rsplit("/", 1)[-1] for t in tables),
                "parquet_bytes": parquet,
                "bytes_per_row": round(parquet / rows, 1) if rows else None,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
