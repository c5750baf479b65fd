"""`python -m jtl.report <dir> [--by KEY ...] [--metric NAME ...] [--ntg]`.

The command line is `jtl.cli.report`; the library it wraps is `jtl.results.report`."""

from jtl.cli.report import main

if __name__ == "__main__":
    raise SystemExit(main())
