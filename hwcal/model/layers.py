"""A model's layer as a list of operations, and the sum of their predicted times: the prediction side of the
whole-layer check (``hwcal-validate-predictions --model FILE``, which also runs the list for real).

A model file (JSON or YAML, ``docs/models/``) is an object::

    model: Llama-3.2-1B decoder layer, prefill of 128 tokens
    source: where the shapes come from (the model's published configuration, a paper's table)
    ops:
      - {name: qkv_proj, op: gemm, precision: fp32, m: 128, n: 3072, k: 2048}
      - {name: conv1, op: conv2d, precision: fp32, n: 1, c: 256, h: 56, w: 56, k: 64, r: 1, s: 1}
      ...

(a bare list of operations is read too). Each operation names ``op``, ``precision`` and its dimensions
(``hwcal.model.predict``; convolutions as ``conv2d`` with n, c, h, w, k, r, s, stride, padding, groups, and
attention as ``sdpa`` with batch, heads, seq_q, seq_k, head_dim, causal), optionally a ``name`` and a
``count``. What a file can make the tool do is bounded: at most 2 MiB read, 10,000 operations, YAML aliases
refused, every dimension a whole number up to 2^40.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwcal.errors import HwcalError
from hwcal.model.inputs import OPERATIONS, work_of

MAX_FILE_BYTES = 2 * 2**20
MAX_OPS = 10_000
MAX_DIM = 2**40
GEMM_DIMS = ("m", "n", "k", "batch")
CONV_DIMS = ("n", "c", "h", "w", "k", "r", "s", "stride", "padding", "groups")
SDPA_DIMS = ("batch", "heads", "seq_q", "seq_k", "head_dim")
FLAGS = ("causal",)
DIM_KEYS = frozenset(GEMM_DIMS + CONV_DIMS + SDPA_DIMS)
OP_KEYS = frozenset({"op", "operation", "precision", "count", "name", *DIM_KEYS, *FLAGS})
TOP_KEYS = frozenset({"model", "source", "notes", "ops"})


@dataclass(frozen=True)
class LayerOp:
    """One operation of a model file: what it is, its dimensions, how many times the layer runs it."""

    name: str
    operation: str
    precision: str
    dims: dict[str, Any] = field(default_factory=dict)  # whole numbers; ``causal`` a bool
    count: int = 1


@dataclass(frozen=True)
class ModelFile:
    path: str
    title: str
    source: str
    ops: list[LayerOp]


def _load(path: Path) -> Any:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise HwcalError(f"{path}: {size:,} bytes, more than the {MAX_FILE_BYTES // 2**20} MiB a model file may "
                             "have; not read")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HwcalError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HwcalError(f"{path}: cannot be read: {exc}") from None
    if path.suffix.lower() not in (".yaml", ".yml"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise HwcalError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}") from None
    try:
        import yaml
    except ImportError:
        raise HwcalError(f"{path}: reading YAML needs pyyaml (pip install pyyaml), or give the file as JSON") from None
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):  # an alias is refused before it expands
            if isinstance(event, yaml.AliasEvent):
                raise HwcalError(f"{path}: YAML aliases (*name) are not accepted in a model file; write each "
                                 "operation out")
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise HwcalError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None


def _whole(value: object, key: str, where: str) -> int:
    number = int(value) if isinstance(value, float) and value.is_integer() else value
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= MAX_DIM:
        raise HwcalError(f"{where}: {key} must be a whole number from 0 to 2^40, got {value!r:.60}")
    if number == 0 and key not in ("padding",):
        raise HwcalError(f"{where}: {key} must be at least 1, got 0")
    return number


def _op(item: object, where: str, precision: str | None) -> LayerOp:
    if not isinstance(item, dict):
        raise HwcalError(f"{where}: not a mapping such as {{op: gemm, precision: fp32, m: 128, n: 768, k: 768}}")
    unknown = sorted(str(k) for k in item if k not in OP_KEYS)
    if unknown:
        raise HwcalError(f"{where}: unknown key(s) {', '.join(unknown[:5])}; known: {', '.join(sorted(OP_KEYS))}")
    operation = item.get("op", item.get("operation"))
    if not isinstance(operation, str) or not operation:
        raise HwcalError(f"{where}: needs 'op' (gemm, gemv, dot, axpy, scal, copy, scale, add, triad, conv2d, sdpa)")
    prec = precision or item.get("precision")
    if not isinstance(prec, str) or not prec:
        raise HwcalError(f"{where}: needs 'precision' (fp32, bf16, ...)")
    dims: dict[str, Any] = {k: _whole(item[k], k, where) for k in DIM_KEYS if k in item}
    for flag in FLAGS:
        if flag in item:
            if not isinstance(item[flag], bool):
                raise HwcalError(f"{where}: {flag} must be true or false, got {item[flag]!r:.60}")
            dims[flag] = item[flag]
    name = str(item.get("name") or operation)[:200]
    return LayerOp(name, operation, prec, dims, _whole(item.get("count", 1), "count", where))


def read_model(path: Path, precision: str | None = None) -> ModelFile:
    """The checked operations of a model file; ``precision`` overrides every operation's (a CPU list run in
    bf16 on a GPU). Any problem is one HwcalError line naming the file and the operation."""
    data = _load(path)
    title, source = path.stem, ""
    if isinstance(data, dict):
        unknown = sorted(str(k) for k in data if k not in TOP_KEYS)
        if unknown:
            raise HwcalError(f"{path}: unknown key(s) {', '.join(unknown[:5])}; known: {', '.join(sorted(TOP_KEYS))}")
        title, source = str(data.get("model") or title), str(data.get("source") or "")
        data = data.get("ops")
    if not isinstance(data, list) or not data:
        raise HwcalError(f"{path}: expected a non-empty list of operations (or an object with 'ops')")
    if len(data) > MAX_OPS:
        raise HwcalError(f"{path}: {len(data):,} operations, more than the {MAX_OPS:,} a model file may list")
    return ModelFile(str(path), title, source, [_op(item, f"{path}: operation {i + 1}", precision)
                                                for i, item in enumerate(data)])


@dataclass
class LayerRow:
    op: LayerOp
    prediction: Any  # hwcal.model.predict.Prediction in the layer, or None when the op cannot be predicted
    alone: Any = None  # the same call on its own, repeated (its operands in the tier holding them alone)

    @property
    def total_s(self) -> float:
        return self.prediction.seconds * self.op.count if self.prediction is not None else 0.0


@dataclass
class LayerPrediction:
    model: ModelFile
    rows: list[LayerRow]
    unpredictable: list[str]  # "name: why", one per operation that cannot be predicted
    resident_bytes: float = 0.0  # the layer's working set: every operation's operands once

    @property
    def total_s(self) -> float:
        return sum(r.total_s for r in self.rows)


def layer_bytes(model: ModelFile) -> float:
    """The layer's working set: every operation's operands once (a repeated operation reuses its own)."""
    total = 0.0
    for op in model.ops:
        if op.operation in OPERATIONS and "n" in op.dims:
            try:
                total += work_of(op.operation, op.precision, {"batch": 1, **op.dims})[1]
            except (KeyError, ValueError):
                continue  # a precision or dimension the prediction will refuse with its own reason
    return total


def predict_layer(predictor: Any, model: ModelFile, mode: str = "back_to_back") -> LayerPrediction:
    """Every operation's prediction in the layer (each call's operands stream from the tier that holds the
    whole layer's working set: a layer runs its operations in turn, each reading its own weights), and on
    its own beside it; one that cannot be predicted (an operation or precision the calibration, or this
    hwcal, does not know) is listed with the reason instead of stopping the others."""
    rows: list[LayerRow] = []
    why: dict[str, tuple[str, list[str]]] = {}  # the first line of the reason, per operation kind
    resident = layer_bytes(model)
    for op in model.ops:
        try:
            alone = predictor.predict(op.operation, op.precision, mode, **op.dims)
            in_layer = predictor.predict(op.operation, op.precision, mode, resident_bytes=resident, **op.dims)
        except HwcalError as exc:
            rows.append(LayerRow(op, None))
            reason = str(exc).split("; ")[0]
            why.setdefault(f"{op.operation} {op.precision}", (reason, []))[1].append(op.name)
            continue
        rows.append(LayerRow(op, in_layer, alone))
    missing = [f"{kind} ({', '.join(names)}): {reason}" for kind, (reason, names) in why.items()]
    return LayerPrediction(model, rows, missing, resident)
