"""Results over many runs: the report (`jtl.report`'s table and figure), the negative-transfer
baselines it and `jtl.measure` pair runs with, and the one find-or-train cache (`cache`) those
baselines and the pretraining runs (`pretrain=`) are kept in.

Nothing is imported here: the trainer reaches `cache` through `pretrain=`, and must not pull
the report's dependencies in with it.
"""
