"""A test hook, so reliability tests put faults at known points instead of racing a sleep."""

from __future__ import annotations

import os
from typing import Any

from jtl.train import checkpoint as ckpt


def inject_fault(step: int, at: str = "step", managers: list[Any] = ()) -> None:
    """`JTL_FAULT=<fault>@<step>`: `sigint` or `sigkill` once training reaches the step;
    `sigkill-in-save` right after the checkpoint save of that step started; `enospc` (a full
    disk): the next checkpoint write fails inside orbax as tensorstore's does on a full disk
    (the saves of `managers` still in flight finish first, so the fault never hits an earlier
    step's asynchronous save: deterministic).
    """
    spec = os.environ.get("JTL_FAULT")
    if not spec:
        return
    import signal

    fault, when = spec.split("@")
    if fault not in ("sigint", "sigkill", "sigkill-in-save", "enospc"):
        raise ValueError(f"JTL_FAULT={spec}: unknown fault {fault!r}")
    if (at == "save") != (fault == "sigkill-in-save") or step < int(when):
        return
    os.environ.pop("JTL_FAULT")
    if fault == "enospc":
        for m in managers:
            m.wait_until_finished()
        ckpt.fail_next_write()
        return
    os.kill(os.getpid(), signal.SIGINT if fault == "sigint" else signal.SIGKILL)
