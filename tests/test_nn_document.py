"""The model-layer sections of a calibration: efficiency against the right ceiling (the roofline's: the
precision's peak, or the bandwidth of the tier the working set lives in), what was not timed with why, the
schema, and the operation profiles the original loader finds by name."""

from __future__ import annotations

from typing import Any

import pytest

from hwcal.backends.nn import AttentionSpec, ConvSpec, FusedSpec
from hwcal.document.builder import build_calibration
from hwcal.document.nn import nn_sections
from hwcal.document.schema import schema_errors
from hwcal.document.tiers import bandwidth_tier
from hwcal.measure.nn_records import NnRecord, NnStatus
from tests.conftest import make_input
from tests.fakes import dram_sweep
from tests.legacy_loader import HardwareCalibration

MEMORY = {"caches": {"levels": [{"level": "l1", "size_bytes": 32 * 2**10, "instances": 2},
                                {"level": "l2", "size_bytes": 2 * 2**20, "instances": 2},
                                {"level": "l3", "size_bytes": 32 * 2**20, "instances": 1}]},
          "levels": {"l1": {"gbps": 400.0}, "l2": {"gbps": 200.0}, "dram": {"gbps": 20.0}}, "sustained_gbps": 20.0}


def test_tier_is_where_the_working_set_lives_with_that_tiers_measured_bandwidth() -> None:
    assert bandwidth_tier(None, MEMORY, 16 * 2**10, 1) == bandwidth_tier(None, MEMORY, 16 * 2**10, 2)
    assert bandwidth_tier(None, MEMORY, 16 * 2**10, 1).gbps == 400.0
    assert bandwidth_tier(None, MEMORY, 3 * 2**20, 2).name == "l2"  # two threads: both private L2s
    assert bandwidth_tier(None, MEMORY, 3 * 2**20, 1).name == "l3"
    l3 = bandwidth_tier(None, MEMORY, 3 * 2**20, 1)
    assert l3.gbps == 20.0 and "floor" in l3.basis  # no l3 figure of its own: the outer level's
    dram = bandwidth_tier(None, MEMORY, 64 * 2**20, 2)
    assert (dram.name, dram.gbps) == ("dram", 20.0) and "sustained" in dram.basis
    none = bandwidth_tier(None, None, 10, 1)
    assert none.gbps is None and "no memory measurement" in none.basis
    # Files written since the memory system keep the sweep's per-level triads in memory.stream_levels.
    moved = {**MEMORY, "levels": {}, "stream_levels": MEMORY["levels"]}
    assert bandwidth_tier(None, moved, 16 * 2**10, 1) == bandwidth_tier(None, MEMORY, 16 * 2**10, 1)


def nn_record(family: str, spec: Any, seconds: float, *, precision: str = "fp32", layout: str = "channels_last",
              variant: str = "", name: str = "layer", default_backend: str | None = None) -> NnRecord:
    """A plausible verified record whose figures agree with its time per call."""
    eb = 4 if precision in ("fp32", "tf32") else 2
    if family == "fused":
        flops, nbytes = 0, spec.bytes(eb)
        dims: dict[str, Any] = {"op": spec.op, "rows": spec.rows, "cols": spec.cols}
    elif family == "sdpa":
        flops, nbytes = spec.flops, spec.bytes(eb)
        dims = {"batch": spec.batch, "heads": spec.heads, "seq_q": spec.seq_q, "seq_k": spec.seq_k,
                "head_dim": spec.head_dim, "causal": spec.causal}
    else:
        flops, nbytes = spec.flops, spec.bytes(eb, {"conv": 0, "conv_bn_relu": 1}[family])
        dims = {k: getattr(spec, k) for k in ("n", "c", "h", "w", "k", "r", "s", "stride", "padding", "groups", "p",
                                              "q", "kind")}
    t = {"min": seconds, "max": seconds * 1.2, "mean": seconds * 1.05, "median": seconds * 1.04,
         "stddev": seconds * 0.02, "iqr": seconds * 0.03}
    return NnRecord(precision=precision, kernel="test kernel", launches_per_round=1, rounds=10, warmup_rounds=1,
                    time_s=t, cv=0.02, max_error=1e-7, tolerance=1e-5, verify_method="test", family=family, name=name,
                    source="resnet50", role="test", dims=dims, layout=layout, variant=variant, flops=flops,
                    bytes=nbytes, element_bytes=eb, gflops_best=flops / seconds / 1e9 if flops else None,
                    gflops_median=flops / t["median"] / 1e9 if flops else None, gbps_best=nbytes / seconds / 1e9,
                    gbps_median=nbytes / t["median"] / 1e9, threads=2, modes={"float32_matmul_precision": "highest"},
                    details={"path": "Mkldnn", "algorithm": "oneDNN test"}, default_backend=default_backend)


DENSE = ConvSpec(1, 64, 56, 56, 64, 3, 3, padding=1)
DW = ConvSpec(2, 144, 56, 56, 144, 3, 3, padding=1, groups=144)  # 7 MiB: beyond both L2s


def test_compute_bound_against_the_peak_memory_bound_against_the_tier() -> None:
    dense = nn_record("conv", DENSE, DENSE.flops / 300e9, name="dense")  # 300 GFLOPS of a 400 peak
    dw = nn_record("conv", DW, DW.bytes(4) / 10e9, name="dw")  # 10 GB/s; its AI (2.25) sits below the ridge
    sections, warnings = nn_sections([dense, dw], [], {"fp32": 400.0}, MEMORY, "default")
    entries = {e["name"]: e for e in sections["conv"]["results"]}
    assert entries["dense"]["bound"] == "compute" and entries["dense"]["efficiency"] == pytest.approx(0.75)
    assert entries["dense"]["efficiency_basis"].startswith("fp32 peak 400")
    assert entries["dw"]["bound"] == "memory" and entries["dw"]["tier"] == "l3"
    assert entries["dw"]["efficiency"] == pytest.approx(10 / 20, rel=1e-3)
    assert entries["dw"]["ridge_flops_per_byte"] == pytest.approx(400 / 20)
    assert warnings == []
    assert sections["conv"]["counting"]["flops"].startswith("2*N*K*(C/groups)*R*S*P*Q")


def test_an_efficiency_above_one_is_explained_not_filed() -> None:
    """An efficiency is a share of its ceiling: 1.25x the peak says the peak is wrong; none is filed, the entry
    and the warnings say what it was, and the document validates."""
    fast = nn_record("conv", DENSE, DENSE.flops / 500e9, name="too-fast")
    sections, warnings = nn_sections([fast], [], {"fp32": 400.0}, MEMORY, "default")
    entry = sections["conv"]["results"][0]
    assert entry["efficiency"] is None and entry["efficiency_vs_peak"] is None
    assert entry["efficiency_note"].startswith("1.25x its ceiling") and entry["gflops_best"] == pytest.approx(500.0)
    assert len(warnings) == 1 and "1.25x its ceiling: the ceiling is wrong" in warnings[0]
    doc = build_calibration(make_input(memory=dram_sweep(20.0), nn=[fast]))
    assert schema_errors(doc, "calibration") == []


def test_cbr_is_set_beside_the_plain_conv_and_sdpa_names_the_default_backend() -> None:
    conv = nn_record("conv", DENSE, 1e-3, name="r50")
    folded = nn_record("conv_bn_relu", DENSE, 1.25e-3, variant="folded:relu", name="r50")
    flash = nn_record("sdpa", AttentionSpec(1, 12, 197, 197, 64), 2e-4, layout="bhsd", variant="flash",
                      name="vit", default_backend="flash")
    sections, _ = nn_sections([conv, folded, flash], [], {"fp32": 400.0}, MEMORY, "full")
    cbr = sections["conv_bn_relu"]["results"][0]
    assert cbr["folded"] is True and cbr["activation"] == "relu" and cbr["time_vs_conv_alone"] == pytest.approx(1.25)
    attn = sections["attention"]["results"][0]
    assert attn["is_default_backend"] is True and sections["attention"]["grid"] == "full"


def _doc(**fields: Any) -> dict[str, Any]:
    return build_calibration(make_input(memory=dram_sweep(20.0), **fields))


def _records() -> list[NnRecord]:
    return [nn_record("conv", DENSE, DENSE.flops / 50e9, name="r50.3x3"),
            nn_record("conv", DENSE, DENSE.flops / 80e9, name="r50.3x3", layout="nchw"),
            nn_record("conv", ConvSpec(1, 64, 56, 56, 256, 1, 1), 1e-3, name="r50.1x1"),
            nn_record("conv", ConvSpec(1, 3, 224, 224, 64, 7, 7, 2, 3), 2e-2, name="r50.stem"),
            nn_record("conv", DW, 4e-4, name="mv2.dw"),
            nn_record("conv_bn_relu", DENSE, DENSE.flops / 60e9, variant="unfolded:relu", name="r50.3x3"),
            nn_record("sdpa", AttentionSpec(1, 12, 197, 197, 64), 3e-4, layout="bhsd", variant="flash", name="vit",
                      default_backend="flash"),
            nn_record("sdpa", AttentionSpec(1, 12, 197, 197, 64), 2e-4, layout="bhsd", variant="math", name="vit",
                      default_backend="flash"),
            *(nn_record("fused", FusedSpec(op, 197, 768), 1e-4, layout="row-major", variant=op, name=f"vit.{op}")
              for op in ("layernorm", "rmsnorm", "softmax", "gelu", "silu"))]


STATUS = [NnStatus("conv", "fp8", "dense", "unsupported", "NotImplementedError: no Float8 conv"),
          NnStatus("conv", "bf16", "", "not_in_grid", "runs here; outside this run's grid (--full times it)")]


def test_the_document_validates_and_the_original_loader_finds_each_type_by_name() -> None:
    doc = _doc(nn=_records(), nn_status=STATUS)
    assert schema_errors(doc) == []
    assert {"conv", "conv_bn_relu", "attention", "fused_ops"} <= set(doc)
    assert doc["conv"]["not_timed"][0] == {"precision": "fp8", "variant": "dense", "status": "unsupported",
                                           "reason": "NotImplementedError: no Float8 conv"}
    cal = HardwareCalibration.from_dict(doc)
    types = {p.operation_type for p in cal.operation_profiles.values()}
    assert {"conv2d", "depthwise_conv", "attention", "layernorm", "softmax", "gelu"} <= types
    assert not any(p.extra_params.get("op") == "silu" for p in cal.operation_profiles.values())  # no type for it
    assert cal.get_operation("depthwise_conv").extra_params["layer"] == "mv2.dw"
    assert cal.get_operation("conv2d", layer="r50.stem").input_shape == [1, 3, 224, 224]
    assert cal.get_operation("conv2d", layer="r50.3x3", layout="nchw").measured_gflops == pytest.approx(80.0)
    assert cal.get_operation("conv2d", fused="bn_relu").extra_params["bn_folded"] is False
    assert cal.get_operation("layernorm", norm="rmsnorm").memory_bound is True
    assert cal.get_operation("attention").extra_params["backend"] == "flash"  # the default, not the faster math


def test_a_types_first_profile_is_its_typical_layer() -> None:
    doc = _doc(nn=_records())
    convs = [p for p in doc["operation_profiles"].values() if p["operation_type"] == "conv2d"
             and "fused" not in p["extra_params"]]
    effs = sorted(p["efficiency"] for p in convs)
    first = next(p for p in doc["operation_profiles"].values() if p["operation_type"] == "conv2d")
    assert first["efficiency"] == effs[(len(effs) - 1) // 2] and "fused" not in first["extra_params"]


def test_a_framework_without_the_kernels_files_the_reason_and_no_profile() -> None:
    status = [NnStatus(f, None, "", "unsupported", "numpy has no convolution") for f in ("conv", "sdpa")]
    doc = _doc(nn_status=status)
    assert schema_errors(doc) == []
    assert doc["conv"]["results"] == [] and doc["conv"]["not_timed"][0]["reason"] == "numpy has no convolution"
    assert doc["attention"]["not_timed"][0]["precision"] is None
    assert not any(p["operation_type"] in ("conv2d", "attention") for p in doc["operation_profiles"].values())
    assert "conv_bn_relu" not in doc


def test_no_layers_no_sections() -> None:
    doc = _doc()
    assert not {"conv", "conv_bn_relu", "attention", "fused_ops"} & set(doc)


def test_with_the_memory_system_the_tier_is_its_ceiling_the_one_blas_uses() -> None:
    from hwcal.document.memory_system import blas_ceiling
    from tests.test_memory_system import MiB, _system

    system = _system()
    for ws, threads in ((16 * 2**10, 1), (256 * MiB, 2), (256 * MiB, None)):
        tier, ceiling = bandwidth_tier(system, MEMORY, ws, threads), blas_ceiling(system, ws, threads)
        assert ceiling is not None and (tier.name, tier.gbps) == (ceiling.tier, ceiling.gbps)
        assert tier.basis.startswith("memory system: ")
    dw = nn_record("conv", DW, DW.bytes(4) / 9e9, name="dw")
    sections, _ = nn_sections([dw], [], {"fp32": 400.0}, MEMORY, "default", system)
    entry = sections["conv"]["results"][0]
    assert entry["bound"] == "memory" and entry["tier_basis"].startswith("memory system: ")
    assert entry["efficiency"] == pytest.approx(9.0 / entry["tier_gbps"], rel=1e-3)


def test_a_flagged_layer_says_so_in_its_entry_and_the_predictor_notes_it() -> None:
    """A layer case the watch left flagged: its entry carries ``flagged``, the others do not, the file
    validates, and an answer resting on it says so."""
    import dataclasses

    from hwcal.model.predict import predictor_of_document

    records = _records()
    # the faster layout of the layer (nchw), which the predictor takes for it
    records[1] = dataclasses.replace(records[1], case="bench/test_conv.py::test_conv[fp32-nchw-r50.3x3-n1]")
    doc = build_calibration(make_input(memory=dram_sweep(20.0), nn=records))
    assert not any("flagged" in e for e in doc["conv"]["results"])  # the watch flagged nothing: no marks
    sections, _ = nn_sections(records, [], {"fp32": 1000.0}, None, "default", None, frozenset({records[1].case}))
    marked = [e for e in sections["conv"]["results"] if e.get("flagged")]
    assert len(marked) == 1 and marked[0]["name"] == "r50.3x3" and marked[0]["layout"] == "nchw"
    doc["conv"] = sections["conv"]
    assert schema_errors(doc, "calibration") == []
    pred = predictor_of_document(doc).predict("conv2d", "fp32", **{k: v for k, v in marked[0].items()
                                                                     if k in ("n", "c", "h", "w", "k", "r", "s",
                                                                              "stride", "padding", "groups")})
    assert any("ran while something else did" in note for note in pred.notes)


def test_a_flagged_heuristic_figure_is_marked_in_its_own_object_not_the_case() -> None:
    """A GPU convolution's second timing (cuDNN benchmark off) is watched under its own name: a flag the watch
    leaves there marks ``heuristic`` (its time ratio rests on it), not the autotuned figure filed for the case."""
    import dataclasses

    from hwcal.measure.nn_records import heuristic_case

    records = _records()
    case = "bench/test_conv.py::test_conv[fp32-nchw-r50.3x3-n1]"
    heuristic = {"cudnn_benchmark": False, "time_s": {"min": 2 * records[1].time_s["min"]}, "rounds": 3}
    records[1] = dataclasses.replace(records[1], case=case, heuristic=heuristic)
    for flagged, case_mark, heuristic_mark in ((frozenset({heuristic_case(case)}), False, True),
                                               (frozenset({case}), True, False), (frozenset(), False, False)):
        sections, _ = nn_sections(records, [], {"fp32": 1000.0}, None, "default", None, flagged)
        [entry] = [e for e in sections["conv"]["results"] if "heuristic" in e]
        assert bool(entry.get("flagged")) is case_mark and bool(entry["heuristic"].get("flagged")) is heuristic_mark
        assert entry["heuristic_time_ratio"] == pytest.approx(2.0)
    assert "flagged" not in heuristic  # the record's own object is not changed by the document
