"""Where a training step's time goes: jtl's compiled step on XLA:CPU vs PyTorch's same step.

jtl: the trainer's chunk (`jtl_step.Chunk`, a `lax.scan` of `--chunk` steps) runs under
`jax.profiler`; XLA:CPU's thunk runtime records one event per executed HLO instruction
(a fusion, a dot, a concatenate, ...) on the thread that ran it. Each instruction is
classified from the compiled HLO: its opcode, whether its `op_name` is under `transpose(...)`
(the backward pass), its output shape, and its Python stack (the functions of conv.py,
optax, ... that emitted it; XLA keeps them in the module's StackFrames). PyTorch: the same
step (`step_vs_pytorch.TorchStep`) under `torch.profiler`, each aten op's self time classified
by its own name, its autograd node (backward) and its shapes.

Both sides are printed as ms of one step's wall time: each class's share of the profiled op
time times the step's wall time measured without the profiler. XLA:CPU may run two thunks at
once on two threads, so its op times sum to more than the wall time; PyTorch runs one op at a
time (intra-op threads inside it), and the wall time its ops leave uncovered is Python,
dispatch and the autograd engine ("other"). Shares, not absolute times, are the point.
The discriminator is recognised by its width (1024) on both sides.

    python benchmarks/profile_step.py [--methods source_only dann] [--steps 200]
    taskset -c 0 python benchmarks/profile_step.py     # one core: no concurrent thunks
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass

CLASSES = ("conv fwd matmuls", "conv bwd matmuls", "im2col slices/concat/pads",
           "max-pool fwd", "max-pool bwd", "dense matmuls (fwd+bwd)", "discriminator (fwd+bwd)",
           "optimizer update", "elementwise/fusions", "batch draw", "other")
DISC_WIDTH = 1024
OPT_FILES = ("/optax/", "jtl/train/optim.py")
_IM2COL = ("conv.py:_slices", "conv.py:_slices.<locals>.<listcomp>", "conv.py:_patches")


# ------------------------------------------------------------------------------------- jtl


@dataclass(frozen=True)
class Instr:
    opcode: str
    shape: str
    backward: bool
    has_dot: bool  # a dot, or a fusion whose computation holds one
    funcs: tuple[str, ...]  # "file:function" of its Python stack, innermost first
    inner: frozenset[str] = frozenset()  # a fusion's: its fused instructions' stacks


_INSTR = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = (.*?) ([a-z][\w\-]*)\((.*)$")
_COMP = re.compile(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$")


def parse_hlo(text: str) -> dict[str, Instr]:
    """Instruction name -> Instr, from a compiled module's `as_text()`."""
    lines = text.splitlines()
    tables: dict[str, dict[int, str]] = collections.defaultdict(dict)
    section = None
    for line in lines:
        if line in ("FileNames", "FunctionNames", "FileLocations", "StackFrames"):
            section = line
        elif section and (m := re.match(r"^(\d+) (.*)$", line)):
            tables[section][int(m.group(1))] = m.group(2)
        elif section and not line.strip():
            section = None
    names = {k: v.strip('"') for k, v in tables["FileNames"].items()}
    funcs = {k: v.strip('"') for k, v in tables["FunctionNames"].items()}

    def field(s: str, key: str) -> int:
        return int(re.search(key + r"=(\d+)", s).group(1))

    locs = {k: (names[field(v, "file_name_id")], funcs[field(v, "function_name_id")])
            for k, v in tables["FileLocations"].items()}
    # The text prints a frame's parent one higher than its id (0 = no parent).
    frames = {k: (field(v, "file_location_id"), field(v, "parent_frame_id") - 1)
              for k, v in tables["StackFrames"].items()}

    def stack(frame: int) -> tuple[str, ...]:
        out, seen = [], set()
        while frame in frames and frame not in seen:
            seen.add(frame)
            loc, frame = frames[frame]
            out.append(locs[loc])
        return tuple(f"{file}:{fn}" for file, fn in out)

    comp_ops: dict[str, set[str]] = collections.defaultdict(set)
    comp_funcs: dict[str, set[str]] = collections.defaultdict(set)
    raw: dict[str, tuple[str, str, str, tuple[str, ...]]] = {}
    comp = ""
    for line in lines:
        if (m := _COMP.match(line)) and " = " not in line:
            comp = m.group(1)
        elif m := _INSTR.match(line):
            name, shape, opcode, rest = m.groups()
            frame = re.search(r"stack_frame_id=(\d+)", rest)
            funcs_ = stack(int(frame.group(1))) if frame else ()
            comp_ops[comp].add(opcode)
            comp_funcs[comp].update(funcs_)
            raw[name] = (opcode, shape, rest, funcs_)
    out = {}
    for name, (opcode, shape, rest, funcs_) in raw.items():
        called = re.search(r"calls=%?([\w.\-]+)", rest)
        called = called.group(1) if called else ""
        has_dot = opcode == "dot" or bool(comp_ops.get(called, set()) & {"dot", "convolution"})
        op_name = re.search(r'op_name="([^"]*)"', rest)
        out[name] = Instr(opcode, shape, bool(op_name and "transpose(" in op_name.group(1)),
                          has_dot, funcs_, frozenset(comp_funcs.get(called, ())))
    return out


def classify_jtl(ins: Instr) -> str:
    stack = " ".join(ins.funcs)
    if any(f in stack for f in OPT_FILES):
        return "optimizer update"
    if re.search(rf"\b{DISC_WIDTH}\b", ins.shape) or "DomainDiscriminator" in stack:
        return "discriminator (fwd+bwd)"
    if not ins.has_dot and any(f.endswith(_IM2COL) for f in ins.inner):
        # A fusion of im2col's pads/slices (col2im in the backward), whatever its root op.
        return "im2col slices/concat/pads"
    if "conv.py:max_pool" in stack:
        return "max-pool bwd" if ins.backward else "max-pool fwd"
    if "conv.py:" in stack:
        if ins.has_dot or ins.opcode == "convolution":
            return "conv bwd matmuls" if ins.backward else "conv fwd matmuls"
        return "im2col slices/concat/pads"
    if ins.has_dot:
        return "dense matmuls (fwd+bwd)"
    if "jtl/train/data.py" in stack:
        return "batch draw"
    if ins.opcode == "fusion" or ins.opcode in ("add", "multiply", "select", "maximum"):
        return "elementwise/fusions"
    return "other"


def op_times(run, instrs: dict[str, Instr]) -> dict[str, float]:
    """Seconds each HLO instruction of `instrs` spent, summed over threads, while `run()` ran
    under jax.profiler (loops and calls, which contain other instructions, left out)."""
    import jax

    with tempfile.TemporaryDirectory() as logdir:
        jax.profiler.start_trace(logdir)
        run()
        jax.profiler.stop_trace()
        (path,) = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
        prof = jax.profiler.ProfileData.from_file(path)
    spent: dict[str, float] = collections.Counter()
    for plane in prof.planes:
        for line in plane.lines:
            for ev in line.events:
                ins = instrs.get(ev.name)
                if ins is not None and ins.opcode not in ("while", "call", "conditional"):
                    spent[ev.name] += ev.duration_ns / 1e9
    return spent


def jtl_profile(method: str, data: dict, chunk: int, steps: int,
                top: int = 0) -> tuple[dict, float]:
    """({class: thread-seconds per step}, wall seconds per step); prints the `top` costliest
    instructions."""
    from jtl_step import Chunk

    c = Chunk(method, data, batch_size=32, length=chunk)
    instrs = parse_hlo(c.fn.lower(c.state, c.data, c.key).compile().as_text())
    calls = max(steps // chunk, 1)
    c.run(2)  # compile, warm up
    wall = min(_timed(lambda: c.run(calls)) for _ in range(3)) / (calls * chunk)
    per_op = {k: v / (calls * chunk) for k, v in op_times(lambda: c.run(calls), instrs).items()}
    busy: dict[str, float] = collections.Counter()
    for name, sec in per_op.items():
        busy[classify_jtl(instrs[name])] += sec
    for name, sec in sorted(per_op.items(), key=lambda kv: -kv[1])[:top]:
        ins = instrs[name]
        where = next((f.split("/")[-1] for f in ins.funcs if "site-packages" not in f), "")
        print(f"  {1e3 * sec:6.3f} ms  {classify_jtl(ins):26s} {name:28s} {ins.opcode:12s}"
              f"{'bwd' if ins.backward else 'fwd'} {ins.shape[:40]:40s} {where}")
    return busy, wall


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# --------------------------------------------------------------------------------- PyTorch


def classify_torch(names: Iterable[str], shapes: Iterable) -> str:
    """`names`: the op's and its ancestors' names, innermost first; `shapes`: their input
    shapes."""
    names = list(names)
    joined = " | ".join(names)
    if "Optimizer." in joined:
        return "optimizer update"
    dims = {d for s in shapes for shape in (s or []) for d in (shape or [])
            if isinstance(d, int)}
    if DISC_WIDTH in dims:
        return "discriminator (fwd+bwd)"
    node = next((n.split(": ", 1)[1] for n in names if n.startswith("autograd::engine")), None)
    if node is not None:  # the backward pass: the autograd node says what it differentiates
        if node.startswith("Convolution"):
            return "conv bwd matmuls"
        if node.startswith("MaxPool"):
            return "max-pool bwd"
        if node.startswith(("Addmm", "Mm", "T", "Linear")):
            return "dense matmuls (fwd+bwd)"
        return "elementwise/fusions"
    if any("conv" in n for n in names):
        return "conv fwd matmuls"
    if any("max_pool" in n for n in names):
        return "max-pool fwd"
    if any(n in ("aten::linear", "aten::addmm", "aten::mm") for n in names):
        return "dense matmuls (fwd+bwd)"
    if any(n in ("aten::randint", "aten::index") for n in names):
        return "batch draw"
    if names and names[0].startswith("aten::"):
        return "elementwise/fusions"
    return "other"


def torch_profile(method: str, data: dict, steps: int) -> tuple[dict, float]:
    """({class: seconds over `steps` steps}, wall seconds per step)."""
    import torch
    from step_vs_pytorch import TorchStep

    t = TorchStep(method, data, len(os.sched_getaffinity(0)))
    t.run(20)
    wall = min(_timed(lambda: t.run(steps)) for _ in range(3)) / steps
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                record_shapes=True) as prof:
        t.run(steps)
    spent: dict[str, float] = collections.Counter()
    for ev in prof.events():
        chain, shapes, e = [], [], ev
        while e is not None:
            chain.append(e.name)
            shapes.append(e.input_shapes)
            e = e.cpu_parent
        spent[classify_torch(chain, shapes)] += ev.self_cpu_time_total / 1e6 / steps
    return spent, wall


# ------------------------------------------------------------------------------------ main


def as_wall_ms(busy: dict[str, float], wall: float, fill_other: bool) -> dict[str, float]:
    """Each class's share of the op time times the step's wall time, in ms. `fill_other`:
    wall time no op covers (PyTorch's Python and dispatch) counts as `other`."""
    total = sum(busy.values())
    if fill_other and total < wall:
        busy = {**busy, "other": busy.get("other", 0.0) + wall - total}
        total = wall
    return {k: 1e3 * wall * v / total for k, v in busy.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=["source_only", "dann"])
    ap.add_argument("--steps", type=int, default=200, help="steps per profile and timing")
    ap.add_argument("--chunk", type=int, default=100, help="jtl steps per compiled call")
    ap.add_argument("--top", type=int, default=0, help="also list jtl's N costliest HLO ops")
    args = ap.parse_args()
    import jax
    from jtl_step import synthetic_digits
    from step_vs_pytorch import have_torch

    data = synthetic_digits()
    threads = len(os.sched_getaffinity(0))
    print(f"jax {jax.__version__} on {jax.default_backend()}, {threads} cores; "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; load {os.getloadavg()[0]:.1f}")
    for method in args.methods:
        jbusy, jwall = jtl_profile(method, data, args.chunk, args.steps, args.top)
        cols = {"jtl": as_wall_ms(jbusy, jwall, fill_other=False)}
        walls = {"jtl": jwall}
        if have_torch():
            tbusy, twall = torch_profile(method, data, args.steps)
            cols["torch"] = as_wall_ms(tbusy, twall, fill_other=True)
            walls["torch"] = twall
        print(f"\n{method}: wall "
              + ", ".join(f"{k} {1e3 * w:.2f} ms/step" for k, w in walls.items())
              + f"; jtl's ops ran {sum(jbusy.values()) / jwall:.2f} thread-s per wall-s")
        print(f"{'op class':28s}" + "".join(f"{k + ' ms':>10s}{'share':>7s}" for k in cols))
        for cls in CLASSES:
            row = f"{cls:28s}"
            for col in cols.values():
                ms = col.get(cls, 0.0)
                row += f"{ms:10.2f}{100 * ms / sum(col.values()):6.1f}%"
            print(row)
        print(f"{'total':28s}" + "".join(f"{sum(c.values()):10.2f}{100:6.0f}%"
                                         for c in cols.values()))


if __name__ == "__main__":
    main()
