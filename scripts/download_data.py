"""Download the MAF data archive from Zenodo, verify its MD5 and unpack it into the data root (`make data`).

Usage: python scripts/download_data.py [--data-dir DIR] [--url URL] [--md5 MD5] [--check]
An interrupted download resumes from data.tar.gz.part; files already unpacked are left alone.
"""

import argparse
import sys

from lrsflows.data.download import MAF_MD5, MAF_URL, download_maf
from lrsflows.data.errors import DataError
from lrsflows.data.tabular import DATA_DIR_ENV, missing_datasets, resolve_data_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help=f"data root (default: ${DATA_DIR_ENV}, else ./data)")
    parser.add_argument("--url", default=MAF_URL, help="where to download data.tar.gz from (default: Zenodo)")
    parser.add_argument("--md5", default=MAF_MD5, help="expected MD5 of data.tar.gz")
    parser.add_argument("--check", action="store_true", help="only check that all five datasets are present")
    args = parser.parse_args(argv)
    data_dir = resolve_data_dir(args.data_dir)
    if args.check:
        return check(data_dir)
    try:
        result = download_maf(data_dir, args.url, args.md5)
    except DataError as error:
        print(error, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume.", file=sys.stderr)
        return 130
    if result.refused:
        print(f"refused unsafe archive members (absolute paths, '..' or links): {result.refused}", file=sys.stderr)
    print(f"{data_dir}: {len(result.extracted)} files unpacked, {len(result.kept)} already present.")
    return 0


def check(data_dir) -> int:
    missing = missing_datasets(data_dir)
    if missing:
        needed = "; ".join(f"{name} needs {files}" for name, files in missing.items())
        print(f"missing data under {data_dir}: {needed}; run `make data` or set LRSFLOWS_DATA_DIR.", file=sys.stderr)
        return 1
    print(f"{data_dir}: all five tabular datasets are present.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
