"""`python -m jtl.report <dir> [--by KEY ...] [--metric NAME ...] [--ntg]`; see `jtl.cli.report`."""

from jtl.cli.report import main

if __name__ == "__main__":
    raise SystemExit(main())
