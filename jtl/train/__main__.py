"""`python -m jtl.train ...`: the Hydra CLI (see jtl/cli/train.py)."""

from jtl.cli.train import main

if __name__ == "__main__":
    main()
