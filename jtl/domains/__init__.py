"""Domains: a data set, its train/val/test splits, preprocessing and optional shifts."""

from jtl.domains.base import DOMAINS, Domain, LoadContext, RawData, Split, build_domain

__all__ = ["DOMAINS", "Domain", "LoadContext", "RawData", "Split", "build_domain"]
