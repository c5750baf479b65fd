"""`python -m jtl.measure run_dir=DIR measure=[pad,mmd,...]`; see `jtl.cli.measure`."""

from jtl.cli.measure import main

if __name__ == "__main__":
    raise SystemExit(main())
