"""A GPU's memory tiers through torch: read (``torch.sum``), write (``fill_``), triad (``torch.add(b, c,
alpha=s)``) and in-place update (``mul_`` by 2 and by 1/2 in turn, an odd count a graph: each replay doubles
the values exactly, so the check knows how many replays ran) over a
working set that fits the L2 (half of it) or lies far past it, timed on the device.

A kernel over an L2-resident working set lasts microseconds, about what a launch from the CPU costs, so a
round of plain launches would time the launch rate. The round's ``launches`` kernels are therefore
captured once in a CUDA graph and the graph is replayed between two CUDA events: the GPU runs them back to
back with no CPU in between. Gaps between graph nodes (~1 us) still count, so the figure is a lower bound
of the tier's bandwidth; the method says so. Each kernel's result is checked after the rounds.
"""

from __future__ import annotations

from typing import Any

import torch

_SCALAR = 3.0


def _kernels(n: int, device: torch.device) -> tuple[dict[str, Any], dict[str, Any]]:
    a, b, c = (torch.full((n,), v, dtype=torch.float32, device=device) for v in (0.0, 1.0, 2.0))
    total = torch.zeros((), dtype=torch.float32, device=device)
    turn = [0]

    def update() -> Any:
        turn[0] += 1
        return b.mul_(2.0 if turn[0] & 1 else 0.5)

    calls = {
        "read": lambda: torch.sum(a, 0, out=total),
        "write": lambda: a.fill_(1.0),
        "triad": lambda: torch.add(b, c, alpha=_SCALAR, out=a),
        "update": update,
    }
    return calls, {"a": a, "b": b, "c": c, "total": total, "turn": turn}


def restart_update(t: dict[str, Any]) -> None:
    """b back to 1 and the update's next launch a x2: a graph captured after this, of an odd number of
    launches, doubles b exactly once per replay."""
    t["b"].fill_(1.0)
    t["turn"][0] = 0


def _verify(kernel: str, t: dict[str, Any], n: int, replays: int = 0) -> None:
    if kernel == "read":
        ok = abs(float(t["total"].item()) - float(t["a"].sum().item())) <= 1e-3 * max(1.0, n)
    elif kernel == "update":  # from 1 (restart_update), x2 a replay: a skipped or a lost launch shows
        lo, hi = torch.aminmax(t["b"])
        ok = float(lo.item()) == float(hi.item()) == 2.0**replays
    else:
        want = 1.0 if kernel == "write" else 1.0 + _SCALAR * 2.0
        lo, hi = torch.aminmax(t["a"])
        ok = float(lo.item()) == want == float(hi.item())
    if not ok:
        raise AssertionError(f"GPU {kernel} kernel gave wrong values: not filed")


def graph_round_times(device: torch.device, kernel: str, working_set_bytes: int, launches: int,
                      rounds: int) -> tuple[list[float], str]:
    """Seconds of each round (one replay of a graph of ``launches`` launches), CUDA-event timed."""
    arrays = 3 if kernel == "triad" else 1
    n = max(1024, working_set_bytes // (4 * arrays))
    calls, tensors = _kernels(n, device)
    launch = calls[kernel]
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        for _ in range(3):
            launch()  # warm-up outside capture (lazy init, workspace)
    torch.cuda.current_stream(device).wait_stream(stream)
    if kernel == "update":
        if launches % 2 == 0:
            raise ValueError(f"the update's graph needs an odd number of launches, not {launches}")
        restart_update(tensors)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(launches):
            launch()
    graph.replay()  # untimed: the working set into the L2
    times = []
    for _ in range(rounds):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1000.0)
    torch.cuda.synchronize(device)
    _verify(kernel, tensors, n, replays=1 + rounds)
    return times, METHOD


# One line for every kernel (the memory system files one method; each point has its own launch count).
METHOD = ("fp32: read torch.sum(a, 0, out=t), write a.fill_(v), triad torch.add(b, c, alpha=s, out=a), update "
          "b.mul_(q) (q = 2, 1/2 in turn, an odd count); each point's launches captured in one CUDA graph, each "
          "round one replay between two CUDA events (no CPU between the kernels; the graph's gaps between "
          "kernels count, so it is a lower bound)")
