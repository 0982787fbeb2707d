"""Download a dataset, verify its MD5 and unpack it into the data root (`make data` fetches the MAF archive).

Usage: lrsflows-data [--dataset maf|mnist|cifar10|imagenet32|imagenet64] [--data-dir DIR] [--url URL] [--md5 MD5]
                     [--check]                      (also `python -m lrsflows.data.command`)
maf: the Zenodo archive, unpacked into DIR; cifar10: the Toronto tarball into DIR/cifar-10/; mnist: the four
gzip files into DIR/mnist/MNIST/raw/; imagenet32/64: no download, prints the manual steps and exits 1.
An interrupted download resumes from its .part file; files already unpacked are left alone.
Imports no torch, so the command starts at once.
"""

import argparse
import sys

from .download import DOWNLOADERS, imagenet_instructions
from .errors import DataError
from .specs import DOWNLOADS, Archive, Files, Manual
from .tabular import DATA_DIR_ENV, missing_datasets, resolve_data_dir

ARCHIVES = [name for name, download in DOWNLOADS.items() if isinstance(download, Archive)]


def main(argv: list[str] | None = None) -> int:
    """The `lrsflows-data` command (`make data`): the exit status, which the console script passes to sys.exit."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=list(DOWNLOADS), default="maf", help="what to fetch (default: maf)")
    parser.add_argument("--data-dir", help=f"data root (default: ${DATA_DIR_ENV}, else ./data)")
    parser.add_argument("--url", help="where to download from (mnist: the folder URL of the four files)")
    parser.add_argument("--md5", help="expected MD5 of the archive (maf, cifar10; mnist checks its four built-in MD5s)")
    parser.add_argument("--check", action="store_true", help="only check that the five MAF datasets are present")
    args = parser.parse_args(argv)
    if args.check and args.dataset != "maf":
        parser.error("--check checks the five MAF tabular datasets only; leave out --dataset")
    if args.md5 and args.dataset not in ARCHIVES:
        parser.error(f"--md5 applies to {' and '.join(ARCHIVES)}, not {args.dataset}")
    data_dir = resolve_data_dir(args.data_dir)
    if args.check:
        return check(data_dir)
    source = DOWNLOADS[args.dataset]
    if isinstance(source, Manual):
        print(imagenet_instructions(args.dataset, data_dir), file=sys.stderr)
        return 1
    try:
        print(download(source, data_dir, args.url or source.url, args.md5))
    except DataError as error:
        print(error, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume.", file=sys.stderr)
        return 130
    return 0


def download(source: Archive | Files, data_dir, url: str, md5: str | None) -> str:
    """Fetch `source` and say what was done, in one line."""
    fetch = DOWNLOADERS[source.name]
    if isinstance(source, Files):
        files = fetch(data_dir, url)
        return f"{data_dir / source.folder}: {len(files)} files present with the expected MD5s."
    result, folder = fetch(data_dir, url, md5 or source.md5), data_dir / source.destination
    if result.refused:
        print(f"refused unsafe archive members (absolute paths, '..' or links): {result.refused}", file=sys.stderr)
    return f"{folder}: {len(result.extracted)} files unpacked, {len(result.kept)} already present."


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
