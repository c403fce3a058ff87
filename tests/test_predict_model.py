"""The prediction model beyond the curves: GEMM from the nearest measured shapes on a roofline of the bytes
moved, the bandwidth function (the memory system's per-tier fields when a file has them, else what older
files hold), the two timings (back to back, isolated), answers outside what was measured, and model files
(docs/models/) predicted as a whole layer.

Calibrations: tests/data/predict/ (see test_predict.py); the memory-system fields are added to a copy where a
test needs them, as the memory-system work files them (``memory.levels.<level>`` read/write/triad GB/s).
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from hwcal.errors import HwcalError
from hwcal.model.bandwidth import Bandwidth, BandwidthCurve, memory_levels
from hwcal.model.curves import Point
from hwcal.model.gemm import GemmModel, Roofline
from hwcal.model.inputs import prefer_unflagged
from hwcal.model.layers import predict_layer, read_model
from hwcal.model.predict import Prediction, Predictor, predictor_of_document

DATA = Path(__file__).parent / "data" / "predict"
ZEN4 = DATA / "amd_epyc_zen4_default_2596MHz_numpy_with_blas_shapes.json"
H100 = DATA / "h100_sxm5_700W_1980MHz_pytorch.json"
MODELS = Path(__file__).resolve().parent.parent / "docs" / "models"
LEVELS = {"l1": {"read_gbps": 400.0, "write_gbps": 200.0, "triad_gbps": 300.0, "allcore_triad_gbps": 600.0,
                 "working_set_bytes": 16384},
          "l2": {"read_gbps": 150.0, "write_gbps": 90.0, "triad_gbps": 120.0, "allcore_triad_gbps": 240.0,
                 "working_set_bytes": 524288},
          "dram": {"read_gbps": 20.0, "write_gbps": 12.0, "triad_gbps": 16.0, "allcore_triad_gbps": 30.0,
                   "working_set_bytes": 2**30}}
CACHES = {"levels": [{"level": "l1", "size_bytes": 49152, "instances": 1},
                     {"level": "l2", "size_bytes": 2**21, "instances": 1}]}


def _doc(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def zen4() -> Predictor:
    return predictor_of_document(_doc(ZEN4), "zen4")


def _with_isolated_floors(doc: dict, extra_s: float) -> dict:
    out = copy.deepcopy(doc)
    for floor in out["launch_floors"].values():
        floor["isolated"] = {"seconds_min": floor["seconds_min"] + extra_s}
    return out


# -- the bandwidth function --
def test_memory_levels_are_read_when_the_file_has_them() -> None:
    levels = memory_levels({"levels": LEVELS, "caches": CACHES})
    assert [lv.name for lv in levels] == ["l1", "l2", "dram"] and levels[0].capacity_bytes == 49152
    bw = Bandwidth({"levels": LEVELS, "caches": CACHES}, [], None, (), 0.0, True)
    assert bw.gbps(8192, "read", 1) == (400.0, "memory.levels.l1.read_gbps")
    assert bw.gbps(8192, "triad", 2) == (600.0, "memory.levels.l1.allcore_triad_gbps")  # all cores: all-core figure
    assert bw.gbps(2**19, "write", 1) == (90.0, "memory.levels.l2.write_gbps")  # at a tier's own working set
    # between two tiers' working sets: log-log (a cache step is gradual; a VM's capacities misplace it)
    gbps, source = bw.gbps(2**20, "write", 1)
    assert gbps == pytest.approx(90.0 * (12.0 / 90.0) ** (1 / 11)) and source.startswith("memory.levels l2..dram")
    assert bw.gbps(2**31, "read", 1) == (20.0, "memory.levels.dram.read_gbps")  # beyond: the last held
    assert bw.level_name(2**28) == "dram"


def test_in_place_calls_take_the_tiers_update_where_it_was_measured_and_triad_where_not() -> None:
    """scal and axpy write in place: no write-allocate, so the in-place update is their tier figure where the
    tiers answer (as their efficiencies' roofs in the document); a tier without it answers with its triad, all
    cores with the all-core triad; beside the framework's sweep on their threads, the sweep's triad."""
    levels = copy.deepcopy(LEVELS)
    levels["l1"]["update_gbps"], levels["dram"]["update_gbps"] = 350.0, 32.0  # l2: none measured
    stream = [Point("triad", "fp64", (("n", n),), 0.0, 24.0 * n, 24.0 * n / (g * 1e9), "memory.sweep")
              for n, g in ((1024, 50.0), (2**24, 14.0))]
    bw = Bandwidth({"levels": levels, "caches": CACHES, "threads": 2}, stream, None, (), 0.0, True)
    assert bw.gbps(2**31, "update", 1) == (32.0, "memory.levels.dram.update_gbps")
    assert bw.gbps(8192, "update", 1) == (350.0, "memory.levels.l1.update_gbps")
    assert bw.gbps(2**19, "update", 1) == (120.0, "memory.levels.l2.triad_gbps")  # not measured there: triad
    gbps, source = bw.gbps(2**20, "update", 1)  # between l2 (triad) and dram (update), log-log
    assert gbps == pytest.approx(120.0 * (32.0 / 120.0) ** (1 / 11)) and "triad_gbps/update_gbps" in source
    assert "STREAM sweep's triad" in bw.gbps(2**31, "update", 2)[1]  # the sweep ran on the call's threads
    beside = Bandwidth({"levels": levels, "caches": CACHES, "threads": 1}, stream, None, (), 0.0, True)
    assert "STREAM sweep's triad" in beside.gbps(2**31, "update", 1)[1]  # the sweep places the steps
    one = Bandwidth({"levels": levels, "caches": CACHES, "threads": 1}, [], None, (), 0.0, True)
    assert one.gbps(2**31, "update", 2) == (30.0, "memory.levels.dram.allcore_triad_gbps")
    doc = _doc(ZEN4)
    doc["blas"] = [r for r in doc["blas"] if r["operation"] != "scal"]
    doc["memory"].update(levels=levels, caches=CACHES, threads=2)
    pred = predictor_of_document(doc, "zen4 with an update").predict("scal", "fp32", n=2**28)
    assert pred.basis == "roofline" and any("memory.levels.dram.update_gbps" in n for n in pred.notes)

def test_without_those_fields_the_sweep_then_the_old_levels_answer() -> None:
    stream = [Point("add", "fp64", (("n", n),), 0.0, 24.0 * n, 24.0 * n / (g * 1e9), "memory.sweep")
              for n, g in ((1024, 50.0), (2**20, 20.0))]
    bw = Bandwidth({"levels": {"dram": {"gbps": 19.0, "kernel": "triad"}}}, stream, None, (), 0.0, True)
    gbps, source = bw.gbps(24.0 * 2**20, "read", 1)
    assert gbps == pytest.approx(20.0, rel=1e-6) and "STREAM sweep's add" in source
    assert Bandwidth({}, [], None, (), 0.0, True).gbps(1e6) is None


def test_a_predictor_uses_the_tier_figures_for_a_call_it_did_not_measure(zen4: Predictor) -> None:
    doc = _doc(ZEN4)
    doc["blas"] = [r for r in doc["blas"] if r["operation"] != "axpy"]
    doc["memory"]["levels"] = LEVELS
    doc["memory"]["caches"] = CACHES
    doc["memory"]["threads"] = 2  # a sweep on other threads than axpy's one: the tiers' one-core figures serve
    predictor = predictor_of_document(doc, "zen4 with tiers")
    pred = predictor.predict("axpy", "fp32", n=2**26)
    assert pred.basis == "roofline" and any("memory.levels" in n and "triad_gbps" in n for n in pred.notes)
    floor = doc["launch_floors"]["axpy"]["seconds_min"]
    tier = predictor.streaming.bandwidth.gbps(3 * 4 * 2**26, "triad", 1)
    assert tier is not None and 16.0 <= tier[0] <= 120.0
    assert pred.seconds == pytest.approx(floor + 3 * 4 * 2**26 / (tier[0] * 1e9), rel=1e-9)  # floor + bytes/tier
    doc["memory"]["threads"] = 1  # the framework's own sweep on the call's threads comes first
    same = predictor_of_document(doc, "zen4").predict("axpy", "fp32", n=2**26)
    assert same.family == "triad" and "STREAM triad" in same.notes[0]


def test_a_bandwidth_curve_takes_the_floor_out_and_ignores_calls_the_floor_hid() -> None:
    # GPU (max): 1 MB and 16 MB calls at the 22 us floor say nothing of bandwidth; 256 MB at 71 us does
    pts = [Point("dot", "fp32", (("n", n),), 0.0, b, t, "blas") for n, b, t in
           ((1, 2**20, 26e-6), (2, 2**24, 20.7e-6), (3, 2**28, 71e-6))]
    curve = BandwidthCurve.of(pts, 22e-6, additive=False)
    seconds, basis, _ = curve.seconds(2**25)
    # the floor holds, at most the fastest call (on a GPU the fastest call may be all floor)
    assert basis == "interpolated" and seconds == pytest.approx(20.7e-6, rel=1e-6)
    assert curve.seconds(2**29)[0] == pytest.approx(2 * 71e-6, rel=1e-6)  # beyond: the DRAM bandwidth held
    cpu = BandwidthCurve.of([Point("dot", "fp32", (("n", 1),), 0.0, 1e6, 11e-6, "blas")], 1e-6, additive=True)
    assert cpu.gbps(1e6)[0] == pytest.approx(100.0, rel=1e-9) and cpu.seconds(2e6)[0] == pytest.approx(21e-6)


def test_beyond_its_largest_size_a_call_that_left_the_tier_already_holds_its_bandwidth() -> None:
    """torch.mv on the Zen 4 guest: 22.7 and 23.1 GB/s at 67 and 134 MB (DRAM), where the 2-thread STREAM triad
    (three arrays sharing the L3) fell from 97 to 64 GB/s and on to 40 at 261 MB: scaled by that last step the
    decode layer's projections read 14.4 GB/s and the layer was predicted 52 % slow."""
    def tier(nbytes: float) -> float:
        return 97.0 if nbytes <= 67e6 else 64.0 if nbytes <= 134e6 else 40.0

    def curve(gbps: tuple[float, float]) -> BandwidthCurve:
        pts = [Point("gemv", "fp32", (("m", i), ("n", i)), 0.0, b, b / (g * 1e9), "blas")
               for i, (b, g) in enumerate(((67e6, gbps[0]), (134e6, gbps[1])), 1)]
        return BandwidthCurve.of(pts, 1e-9, additive=True, tier=tier)

    flat = curve((22.7, 23.1))
    assert flat.gbps(261e6)[0] == pytest.approx(23.1, rel=1e-3) and flat.gbps(261e6)[1] == "extrapolated"
    following = curve((22.7, 22.7 * 64 / 97))  # still in the step the tier takes: scaled on with it
    assert following.gbps(261e6)[0] == pytest.approx(22.7 * 40 / 97, rel=1e-3)
    assert flat.gbps(100e6)[1] == "interpolated"  # inside its range: as before

    # A curve ending inside a flat tier, its last point up by noise, has left nothing: scaled on into DRAM
    def cache_tier(nbytes: float) -> float:
        return 100.0 if nbytes <= 4e6 else 20.0

    pts = [Point("dot", "fp32", (("n", i),), 0.0, b, b / (g * 1e9), "blas")
           for i, (b, g) in enumerate(((0.5e6, 30.0), (1e6, 30.0), (2e6, 36.0)), 1)]
    noisy = BandwidthCurve.of(pts, 1e-9, additive=True, tier=cache_tier)
    assert noisy.gbps(1e9)[0] == pytest.approx(36.0 * 20 / 100, rel=1e-3)


def test_a_smaller_size_timed_slower_than_a_larger_one_is_launch_jitter() -> None:
    # An H100 host: bf16 dot 1 MiB 25.7 us, 4 MiB 53.6 us (jitter), 16 MiB 25.6 us, 64 MiB 34.3, 256 MiB 107.3
    pts = [Point("dot", "bf16", (("n", n),), 0.0, b, t, "blas") for n, b, t in
           ((1, 2**20, 25.7e-6), (2, 2**22, 53.6e-6), (3, 2**24, 25.6e-6), (4, 2**26, 34.3e-6), (5, 2**28, 107.3e-6))]
    curve = BandwidthCurve.of(pts, 42e-6, additive=False)
    for nbytes in (2**22, 2**23, 2**24):  # before: 16 MiB predicted at 4 MiB's "bandwidth", 8x the time
        assert curve.seconds(nbytes)[0] <= 25.6e-6
    assert curve.seconds(2**28)[0] == pytest.approx(107.3e-6, rel=1e-6)  # a measured bound size stays itself
    assert curve.points[1].seconds == 53.6e-6  # the points stay as measured


# -- GEMM --
def _roofline(additive: bool = True, floor_s: float = 1e-6) -> Roofline:
    return Roofline(100e9, 4, lambda nbytes, warm: 20.0, floor_s, floor_s, additive)


def _gemm_point(m: int, n: int, k: int, seconds: float, batch: int = 1, family: str = "small_m") -> Point:
    dims = (("m", m), ("n", n), ("k", k), ("batch", batch))
    return Point(family, "fp32", dims, 2.0 * batch * m * n * k, 4.0 * batch * (m * k + k * n + m * n), seconds,
                 "gemm_shapes")


def test_gemm_measured_interpolated_and_outside_with_warnings() -> None:
    rf = _roofline()
    pts = [_gemm_point(m, 1024, 1024, rf.seconds(1, m, 1024, 1024) * r) for m, r in ((1, 1.0), (16, 2.0), (128, 1.5))]
    model = GemmModel(pts, rf)
    at = model.predict(1, 16, 1024, 1024)
    assert at.basis == "measured" and at.seconds == pts[1].seconds and at.points == [pts[1]]
    mid = model.predict(1, 8, 1024, 1024)
    assert mid.basis == "interpolated" and not mid.warnings
    ratio = (mid.seconds - rf.floor_s) / rf.work(1, 8, 1024, 1024)
    assert 1.0 < ratio < 2.0  # between its neighbours' ratios
    far = model.predict(1, 4096, 1024, 1024)
    assert far.basis == "extrapolated" and any("M = 4096 is above the largest measured (128)" in w
                                               for w in far.warnings)
    batched = model.predict(8, 16, 1024, 1024)
    assert batched.notes and "no batched GEMM measured" in batched.notes[0]


def test_m1_on_a_gemv_path_is_predicted_on_the_gemv_curve_only_where_measured_so() -> None:
    # numpy's matmul runs M = 1 as a GEMV (M = 2 took 2.4x as long here): the M = 1 calls measured off the
    # GEMV curve (a noisy 1.8x) must not set the ratio of every other M = 1 shape.
    rf = replace(_roofline(), gemv_curve=True)
    pts = [_gemm_point(1, 1024, 1024, rf.seconds(1, 1, 1024, 1024) * 1.8),
           _gemm_point(2, 1024, 1024, rf.seconds(1, 1, 1024, 1024) * 1.8 * 2.4),
           _gemm_point(16, 1024, 1024, rf.seconds(1, 16, 1024, 1024) * 3.0)]
    model = GemmModel(pts, rf)
    assert model.m1_gemv
    at = model.predict(1, 1, 2048, 768)
    assert at.seconds == pytest.approx(rf.seconds(1, 1, 2048, 768), rel=1e-9)
    assert "GEMV curve" in at.notes[0] and all(dict(p.dims)["m"] == 1 for p in at.points)
    assert model.predict(1, 1, 1024, 1024).seconds == pts[0].seconds  # a measured shape stays measured
    same_path = GemmModel([pts[0], _gemm_point(2, 1024, 1024, pts[0].seconds * 1.1), pts[2]], rf)
    assert not same_path.m1_gemv and same_path.predict(1, 1, 2048, 768).seconds > 1.5 * at.seconds
    no_curve = GemmModel(pts, _roofline())  # the bandwidth is a tier figure: the neighbours' ratio holds
    assert no_curve.predict(1, 1, 2048, 768).seconds > 1.5 * at.seconds


def test_gemm_roofline_moves_bytes_against_the_tier_and_quantises_waves() -> None:
    seen: list[tuple[float, bool]] = []
    rf = Roofline(1e15, 2, lambda nbytes, warm: seen.append((nbytes, warm)) or 3000.0, 5e-6, 6e-6, False, sms=132)
    rf.work(1, 1, 4096, 4096, warm=False)
    assert seen[-1] == (2.0 * (4096 + 4096 * 4096 + 4096), False)  # (MK + KN + MN) x element bytes
    assert rf.waves(1, 128, 128 * 132) == 1.0 and rf.waves(1, 128, 128 * 133) == pytest.approx(133 / 264)
    assert rf.waves(1, 128, 128 * 60) == 1.0  # under one wave: smaller tiles, no quantisation
    assert rf.seconds(1, 1, 16, 16) == 5e-6  # GPU: max(floor, work)
    # GPU: a batch is one launch, whatever its size: the lower of the GEMM and batched floors
    assert rf.seconds(16, 1, 16, 16) == pytest.approx(5e-6) and rf.seconds(64, 1, 16, 16) == pytest.approx(5e-6)
    assert replace(rf, batched_floor_s=4e-6).seconds(64, 1, 16, 16) == pytest.approx(4e-6)
    # CPU: the batched floor is timed on 16 matrices: what it costs over one call, per matrix
    cpu = replace(rf, additive=True)
    assert cpu.floor(16) == pytest.approx(6e-6) and cpu.floor(4) == pytest.approx(5.2e-6)


def test_a_gpu_batch_is_not_predicted_under_what_its_batched_path_takes_to_start() -> None:
    # H200 bf16: batched GEMMs of little work took 11 us where a 4x4 mm took 8.1 us and the fp32 bmm floor 10.9 us
    rf = Roofline(1e15, 2, lambda nbytes, warm: 3000.0, 8.1e-6, 10.9e-6, False, sms=132)
    pts = [_gemm_point(1, 4096, 128, 12.4e-6, batch=24, family="batched"),
           _gemm_point(512, 128, 512, 11.0e-6, batch=24, family="batched"),
           _gemm_point(4096, 128, 4096, 212e-6, batch=24, family="batched"),
           _gemm_point(64, 4352, 4352, 14.4e-6)]
    model = GemmModel(pts, rf)
    assert model.batch_call_s == pytest.approx(10.9e-6)
    assert model.predict(32, 16, 16, 128).seconds == pytest.approx(10.9e-6)  # not the GEMM's 8.1 us
    assert model.predict(1, 16, 16, 128).seconds == pytest.approx(8.1e-6)
    assert model.predict(24, 4096, 128, 4096).seconds == pytest.approx(212e-6)  # measured stays measured
    faster = GemmModel([replace(pts[1], seconds=9.5e-6), *pts[2:]], rf)  # a call under the fp32 bmm floor
    assert faster.batch_call_s == pytest.approx(9.5e-6)
    assert GemmModel(pts, replace(rf, additive=True)).batch_call_s == 0.0  # a CPU: per matrix, Roofline.floor


def test_gemm_at_every_sweep_point_is_the_measured_time(zen4: Predictor) -> None:
    for p in zen4.inputs.gemm:
        got = zen4.predict("gemm", p.precision, **dict(p.dims))
        assert got.basis == "measured" and got.seconds == pytest.approx(p.seconds, rel=1e-9)


# -- two timings --
def test_isolated_adds_what_synchronising_each_call_costs(zen4: Predictor) -> None:
    iso = predictor_of_document(_with_isolated_floors(_doc(ZEN4), 5e-6), "zen4")
    for op, dims in (("gemm", {"m": 16, "n": 1024, "k": 1024}), ("dot", {"n": 2**20}), ("scal", {"n": 2**20})):
        b2b = iso.predict(op, "fp32", **dims)
        alone = iso.predict(op, "fp32", mode="isolated", **dims)
        assert b2b.mode == "back_to_back" and alone.mode == "isolated"
        assert alone.seconds == pytest.approx(b2b.seconds + 5e-6, rel=1e-6), op
        assert any(n.startswith("isolated:") for n in alone.notes)
    with pytest.raises(HwcalError, match="filed no isolated timing of gemm calls"):
        zen4.predict("gemm", "fp32", mode="isolated", n=64)
    with pytest.raises(HwcalError, match=r"no isolated timing of add calls \(isolated floors: axpy, dot, gemm"):
        iso.predict("triad", "fp64", mode="isolated", n=64)  # a file from before the element-wise floor
    with pytest.raises(HwcalError, match="unknown mode 'cold'; one of back_to_back, isolated"):
        zen4.predict("gemm", "fp32", mode="cold", n=64)


def test_profile_predict_takes_the_mode(tmp_path: Path) -> None:
    from hwcal import Registry

    cal = tmp_path / "cpu" / "amd_epyc_zen4" / "calibrations"
    cal.mkdir(parents=True)
    doc = _with_isolated_floors(_doc(ZEN4), 2e-6)
    (cal / "default_2596MHz_numpy.json").write_text(json.dumps(doc))
    profile = Registry(tmp_path, emit_warnings=False).get("amd_epyc_zen4")
    assert profile.predict("dot", "fp32", n=4096, mode="isolated").seconds == pytest.approx(
        profile.predict("dot", "fp32", n=4096).seconds + 2e-6, rel=1e-6)


# -- model files: whole layers --
def test_every_model_file_reads_and_every_operation_is_answered_or_said_why(zen4: Predictor) -> None:
    h100 = predictor_of_document(_doc(H100), "h100")
    files = sorted(MODELS.glob("*.yaml"))
    assert len(files) >= 9 and {f.name.split("-t")[0] for f in files if "-t" in f.name} >= {"llama-3.2-1b",
                                                                                           "llama-3.1-8b"}
    for path in files:
        model = read_model(path)
        assert model.source and model.ops, path.name
        predictor = h100 if model.ops[0].precision == "bf16" else zen4
        layer = predict_layer(predictor, model)
        assert not layer.unpredictable, (path.name, layer.unpredictable)
        assert layer.total_s > 0 and all(math.isfinite(r.total_s) for r in layer.rows)


def test_llama_files_are_the_published_configuration() -> None:
    """Every shape of the Llama files follows from the configuration named in the file."""
    configs = {"llama-3.2-1b": (2048, 8192, 32, 8, 64), "llama-3.1-8b": (4096, 14336, 32, 8, 128)}
    for path in MODELS.glob("llama-*-t*.yaml"):
        hidden, inter, heads, kv, d = configs[path.name.rsplit("-t", 1)[0]]
        t = int(path.stem.rsplit("-t", 1)[1])
        ops = {op.name: op.dims for op in read_model(path).ops}
        keys = ops["attn_scores"]["n"]
        assert ops["qkv_proj"] == {"m": t, "n": (heads + 2 * kv) * d, "k": hidden}
        assert ops["gate_up_proj"] == {"m": t, "n": 2 * inter, "k": hidden}
        assert ops["down_proj"] == {"m": t, "n": hidden, "k": inter}
        assert ops["attn_values"] == {"batch": heads, "m": t, "n": d, "k": keys}
        assert keys == t or t == 1  # prefill attends to itself; decode to its cache
        assert ops["residual_add"] == {"n": t * hidden}


@pytest.mark.parametrize(("text", "match"), [
    ("ops: [{op: gemm, precision: fp32, m: 1, n: 2, k: 3, q: 4}]", r"unknown key\(s\) q"),
    ("ops: [{precision: fp32, n: 3}]", "needs 'op'"),
    ("ops: [{op: dot, n: 3}]", "needs 'precision'"),
    ("ops: [{op: dot, precision: fp32, n: 0}]", "n must be at least 1"),
    ("ops: [{op: dot, precision: fp32, n: -2}]", "n must be a whole number"),
    ("ops: [{op: conv2d, precision: fp32, causal: 1}]", "causal must be true or false"),
    ("a: &x [1]\nops: *x", "YAML aliases"),
    ("ops: []", "non-empty list"),
    ("model: m\nlayers: []", r"unknown key\(s\) layers"),
    ("ops: [{op: dot, precision: fp32, n: 3", "not valid YAML"),
])
def test_bad_model_files_are_one_line_errors(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(HwcalError, match=match) as info:
        read_model(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_a_precision_override_and_json_files(tmp_path: Path) -> None:
    path = tmp_path / "layer.json"
    path.write_text(json.dumps([{"op": "gemm", "precision": "fp32", "m": 4, "n": 8, "k": 8, "count": 3}]))
    model = read_model(path, precision="fp64")
    assert model.ops[0].precision == "fp64" and model.ops[0].count == 3 and model.title == "layer"
    with pytest.raises(HwcalError, match="no such file"):
        read_model(tmp_path / "missing.yaml")


# -- the whole-layer check: the list run for real --
def test_layer_run_runs_every_kind_of_operation_on_numpy_and_torch() -> None:
    from hwcal.backends.numpy_backend import NumpyBackend
    from hwcal.measure.layer_run import OpToRun, prepare, run_layer

    ops = [OpToRun("proj", "gemm", "fp32", {"m": 4, "n": 32, "k": 16}),
           OpToRun("attn", "gemm", "fp32", {"batch": 3, "m": 4, "n": 4, "k": 8}),
           OpToRun("decode", "gemv", "fp32", {"m": 16, "n": 8}),
           OpToRun("norm", "dot", "fp32", {"n": 64}), OpToRun("res", "axpy", "fp32", {"n": 64}),
           OpToRun("scale", "scal", "fp64", {"n": 64}), OpToRun("act", "triad", "fp32", {"n": 64}, count=2),
           OpToRun("kv", "copy", "fp32", {"n": 64}), OpToRun("mul", "scale", "fp32", {"n": 64}),
           OpToRun("add", "add", "fp32", {"n": 64})]
    timing = run_layer(NumpyBackend(), ops, round_s=0.001, rounds=2)
    assert timing.best_s > 0 and timing.median_s >= timing.best_s and len(timing.per_op_s) == len(ops)
    with pytest.raises(HwcalError, match="conv2d runs on torch only"):
        prepare(NumpyBackend(), OpToRun("c", "conv2d", "fp32", {"n": 1, "c": 2, "h": 4, "w": 4, "k": 2, "r": 1,
                                                                 "s": 1}), 1)
    torch = pytest.importorskip("torch")
    from hwcal.backends.torch_backend import TorchBackend

    backend = TorchBackend("cpu")
    conv = prepare(backend, OpToRun("dw", "conv2d", "fp32", {"n": 1, "c": 4, "h": 8, "w": 8, "k": 4, "r": 3, "s": 3,
                                                              "padding": 1, "groups": 4}), 1)
    assert tuple(conv().shape) == (1, 4, 8, 8)
    sdpa = prepare(backend, OpToRun("attn", "sdpa", "fp32", {"batch": 1, "heads": 2, "seq_q": 4, "seq_k": 4,
                                                              "head_dim": 8, "causal": True}), 1)
    assert isinstance(sdpa(), torch.Tensor)
    assert run_layer(backend, ops[:4], round_s=0.001, rounds=1, per_op=False).per_op_s == []


def test_validate_predictions_model_option(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from hwcal.cli import whole_layer
    from hwcal.cli.validate_predictions import main as validate_main
    from hwcal.measure.layer_run import LayerTiming

    layer = tmp_path / "tiny.yaml"
    layer.write_text("model: tiny\nsource: made up for the test\nops:\n"
                     "  - {name: proj, op: gemm, precision: fp32, m: 2, n: 64, k: 64}\n"
                     "  - {name: res, op: add, precision: fp32, n: 256, count: 2}\n")
    conv = MODELS / "resnet50-bottleneck-conv2.yaml"
    # a real run: whatever the numbers on a shared machine, the check runs end to end and reports them
    assert validate_main([str(ZEN4), "--model", str(layer), "--model", str(conv), "--layer-rounds", "1",
                          "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    tiny, resnet = out["models"]
    assert tiny["measured_s"] > 0 and tiny["predicted_s"] > 0 and [r["name"] for r in tiny["operations"]] == [
        "proj", "res"]
    assert tiny["operations"][1]["count"] == 2
    # numpy has no convolution: the block is predicted (a roofline) and said not run, never an error
    assert resnet["predicted_s"] > 0 and "conv2d runs on torch only and the calibration is numpy" in resnet["skipped"]
    # the verdict, with a timing fixed so the test does not depend on the machine
    predicted = tiny["predicted_s"]
    monkeypatch.setattr(whole_layer, "run_layer", lambda backend, ops, **kw: LayerTiming(
        predicted / 1.5, predicted / 1.4, 3, kw.get("rounds", 5), [predicted / 2] * len(ops)))
    assert validate_main([str(ZEN4), "--model", str(layer), "--check"]) == 1  # 50 % slow: outside 15 %
    text = capsys.readouterr().out
    assert "layer (0 MiB of operands): predicted" in text and "+50.0%, outside the 15% goal" in text
    assert "\n  shapes: made up for the test\n" in text and "\\n" not in text  # a line of its own, not escaped
    monkeypatch.setattr(whole_layer, "run_layer", lambda backend, ops, **kw: LayerTiming(
        predicted * 1.05, predicted * 1.1, 3, 5, [predicted / 2] * len(ops)))
    assert validate_main([str(ZEN4), "--model", str(layer), "--check"]) == 0
    assert "within the 15% goal" in capsys.readouterr().out
    with pytest.raises(SystemExit) as usage:  # usage: --model checks one calibration
        validate_main([str(ZEN4), str(H100), "--model", str(layer)])
    assert usage.value.code == 2 and "--model checks one calibration" in capsys.readouterr().err


def test_in_a_layer_the_operands_stream_from_the_tier_holding_the_whole_layer(zen4: Predictor) -> None:
    """A layer runs its operations in turn, each reading its own weights: a call whose operands alone fit a cache
    streams them, in the layer, from the tier holding the layer's working set."""
    alone = zen4.predict("gemm", "fp32", m=1, n=1024, k=1024)  # a measured shape, 4 MiB of weights
    in_layer = zen4.predict("gemm", "fp32", m=1, n=1024, k=1024, resident_bytes=2**30)
    assert alone.basis == "measured" and in_layer.basis == "interpolated"
    assert in_layer.seconds > alone.seconds and any("1,024.0 MiB" in n for n in in_layer.notes)
    dot = zen4.predict("dot", "fp32", n=4096)
    assert zen4.predict("dot", "fp32", n=4096, resident_bytes=2**30).seconds > dot.seconds
    assert zen4.predict("dot", "fp32", n=4096, resident_bytes=1).seconds == dot.seconds  # smaller: no change
    layer = predict_layer(zen4, read_model(MODELS / "llama-3.2-1b-t32.yaml"))
    weights = 4 * 2048 * (3072 + 2048 + 16384 + 8192)
    assert weights < layer.resident_bytes < 1.1 * weights + 2**24  # the weights dominate at 32 tokens
    assert all(r.prediction.seconds >= r.alone.seconds * 0.999 for r in layer.rows)


def test_a_gpu_gemm_is_not_predicted_under_what_its_precision_never_goes_under() -> None:
    # An H100 host: bf16 square GEMMs of 256-1024 at 10.3-10.4 us back to back where the fp32 4x4 mm took 7.5 us
    rf = Roofline(757e12, 2, lambda nbytes, warm: 3000.0, 7.455e-6, 10.2e-6, False, sms=132)
    pts = [_gemm_point(n, n, n, t, family="square") for n, t in ((256, 10.32e-6), (512, 10.40e-6), (1024, 10.25e-6))]
    pts.append(_gemm_point(2048, 8192, 8192, 400e-6, family="proj_up"))
    model = GemmModel(pts, rf)
    assert model.gemm_call_s == pytest.approx(10.25e-6)
    assert model.predict(1, 128, 128, 128).seconds == pytest.approx(10.25e-6)  # not the fp32 4x4 mm's 7.5 us
    assert GemmModel(pts, replace(rf, additive=True)).gemm_call_s == 0.0  # a CPU: floor and work add


def test_a_gpu_bandwidth_curve_floor_is_its_own_small_calls_where_higher_than_the_filed_one() -> None:
    # An H100's bf16 torch.mv: 1 MiB 10.0 us, 4 MiB 10.1, 16 MiB 13.0, 64 MiB 27.45, 256 MiB 103.4; the filed
    # gemv floor is fp32 16x16 at 7.65 us. 16 MiB's 13 us is near the bf16 floor: no bandwidth figure (1.3 TB/s).
    pts = [Point("gemv", "bf16", (("n", i),), 0.0, b, t, "blas") for i, (b, t) in
           enumerate(((2**20, 10.03e-6), (2**22, 10.12e-6), (2**24, 12.99e-6), (2**26, 27.45e-6), (2**28, 103.4e-6)))]
    gpu = BandwidthCurve.of(pts, 7.65e-6, additive=False)
    assert gpu.floor_s == pytest.approx(10.03e-6)  # on a GPU the fastest call may be all floor
    assert gpu.gbps(2**24)[0] == pytest.approx(2**26 / 27.45e-6 / 1e9, rel=1e-6)  # the nearest bound call's
    assert gpu.seconds(2**25)[0] == pytest.approx(2**25 / (2**26 / 27.45e-6), rel=0.05)
    cpu = BandwidthCurve.of(pts, 7.65e-6, additive=True)  # a CPU keeps its filed floor: small calls hold work
    assert cpu.floor_s == pytest.approx(7.65e-6)
    assert BandwidthCurve.of(pts, 20e-6, additive=True).floor_s == pytest.approx(0.9 * 10.03e-6)  # never all floor


def test_flagged_small_calls_raise_no_filed_gpu_floor() -> None:
    # An H100 run in a slow episode of its host's launch path: STREAM add at 8 and 16 MiB flagged at 11.8 and
    # 12.6 us, 64 MiB and up bound by HBM; its add floor (16 elements, unflagged) 5.96 us.
    timed = ((2**23, 11.8e-6, True), (2**24, 12.6e-6, True), (2**26, 25.0e-6, False), (2**28, 85.0e-6, False))
    pts = [Point("add", "fp64", (("n", i),), 0.0, b, t, "memory.sweep", flagged=f) for i, (b, t, f) in enumerate(timed)]
    curve = BandwidthCurve.of(pts, 5.96e-6, additive=False)
    assert curve.floor_s == pytest.approx(5.96e-6)  # the filed floor, not the flagged calls' 11.8 us
    quiet = [replace(p, flagged=False) for p in pts]
    assert BandwidthCurve.of(quiet, 5.96e-6, additive=False).floor_s == pytest.approx(11.8e-6)  # unflagged: they do
    assert BandwidthCurve.of(pts, 0.0, additive=False).floor_s == pytest.approx(11.8e-6)  # no filed floor: they do


def test_a_gemm_is_not_predicted_slower_than_a_measured_one_as_large_in_every_dimension() -> None:
    # An H100's fp16 small-M calls: 1x4352x4352 12.63 us (near its ~10 us floor, so not a ratio the model uses),
    # 1x17408x4352 52.6 us and 1x4352x17408 57.1 us; a bandwidth that reads 32 MiB at 18.8 us (torch.mv's curve).
    rf = Roofline(989e12, 2, lambda nbytes, warm: 1787.5 if nbytes < 48 * 2**20 else 2700.0, 10.2e-6, 10.2e-6,
                  False, sms=132)
    pts = [_gemm_point(1, n, k, t) for n, k, t in ((4352, 4352, 12.63e-6), (17408, 4352, 52.55e-6),
                                                   (4352, 17408, 57.05e-6))]
    pts.append(_gemm_point(4, 17408, 4352, 52.8e-6))
    model = GemmModel(pts, rf)
    smaller = model.predict(1, 1, 4096, 4096)
    assert smaller.seconds == pytest.approx(12.63e-6) and "capped at the 12.6 us" in smaller.notes[-1]
    assert smaller.points[0] is pts[0]
    # Not across M, nor where one dimension is larger than every measured call of that M has
    assert model.predict(1, 2, 4096, 4096).seconds > 12.63e-6
    assert model.predict(1, 1, 4608, 3584).seconds > 12.63e-6
    streamed = model.predict(1, 1, 4096, 4096, resident_bytes=2**30)  # in a layer: from the tier that holds it
    assert not any("capped" in note for note in streamed.notes)


def test_a_power_of_two_width_is_scaled_by_how_much_slower_its_measured_calls_ran() -> None:
    """numpy fp32 on a Zen 4 guest: 32x16384x2048 at 73-84 GFLOPS, 32x16448x2048 at 107: the pow2_n calls stay
    out of the interpolation and scale the problems whose row of B their stride divides, interpolated in log M."""
    rf = _roofline()
    pairs = [(n, k) for n, k in ((14976, 1152), (4608, 1152), (1152, 4608))]
    pts = [_gemm_point(m, n, k, rf.seconds(1, m, n, k) * 2.0) for m in (1, 4, 32, 128) for n, k in pairs]
    plain = GemmModel(pts, rf)
    slow = {1: 1.0, 4: 1.5, 32: 1.2, 128: 1.1}
    pow2 = [_gemm_point(m, 16384, 1152, plain.predict(1, m, 16384, 1152).seconds * f, family="pow2_n")
            for m, f in slow.items()]
    model = GemmModel(pts + pow2, rf)
    assert [round(math.exp(st.log_factor), 9) for st in model.strides] == list(slow.values())
    assert {st.stride for st in model.strides} == {16384 * 4}
    # Measured: its own time. Elsewhere at that stride, or a multiple of it: the others' answer times the factor.
    at = model.predict(1, 32, 16384, 1152)
    assert at.basis == "measured" and at.seconds == pow2[2].seconds and at.family == "pow2_n"
    for m, n, k in ((32, 16384, 2048), (4, 32768, 3072), (128, 49152, 1152)):
        scaled = model.predict(1, m, n, k)
        assert scaled.seconds == pytest.approx(plain.predict(1, m, n, k).seconds * slow[m], rel=1e-9)
        assert "a multiple of 64 KiB" in scaled.notes[-1] and any(p.family == "pow2_n" for p in scaled.points)
    between = model.predict(1, 8, 16384, 2048).seconds / plain.predict(1, 8, 16384, 2048).seconds
    assert between == pytest.approx(math.exp(math.log(1.5) * 2 / 3 + math.log(1.2) / 3), rel=1e-9)  # log M
    # Above the largest M measured (128) the factor fades in log M to none at STRIDE_FADE_M (256), as measured
    assert model.predict(1, 512, 16384, 2048).seconds == pytest.approx(plain.predict(1, 512, 16384, 2048).seconds)
    assert model.predict(1, 181, 16384, 2048).seconds == pytest.approx(
        plain.predict(1, 181, 16384, 2048).seconds * math.exp(math.log(1.1) * (1 - math.log2(181 / 128))), rel=1e-6)
    short = GemmModel(pts + pow2[:2], rf)  # M = 1 and 4 alone (a run whose shape budget ran out)
    at64 = short.predict(1, 64, 16384, 2048).seconds / plain.predict(1, 64, 16384, 2048).seconds
    assert at64 == pytest.approx(1.5 ** (1 - 4 / 6), rel=1e-9)
    assert short.predict(1, 256, 16384, 2048).seconds == pytest.approx(plain.predict(1, 256, 16384, 2048).seconds)
    at512 = _gemm_point(512, 16384, 1152, plain.predict(1, 512, 16384, 1152).seconds * 1.3, family="pow2_n")
    wide = GemmModel([*pts, *pow2, at512], rf)
    assert wide.predict(1, 1024, 16384, 2048).seconds == pytest.approx(  # measured at or past 256: kept
        plain.predict(1, 1024, 16384, 2048).seconds * 1.3, rel=1e-6)
    # A row no measured stride divides, a batch: as if no pow2_n call were filed; nor do they join the pool
    for b, m, n, k in ((1, 32, 16448, 2048), (1, 32, 8192, 2048), (1, 16, 24576, 1152), (8, 32, 16384, 1152)):
        assert model.predict(b, m, n, k).seconds == plain.predict(b, m, n, k).seconds
    assert not model.predict(1, 32, 16384, 2048).warnings  # N = 16384 lies inside what was measured
    assert GemmModel(pow2, rf).predict(1, 32, 16384, 1152).seconds == pow2[2].seconds  # nothing else: the points
    # A shape of such a width measured as an ordinary one (--shapes): its own time, not scaled again
    own = _gemm_point(8, 16384, 2048, plain.predict(1, 8, 16384, 2048).seconds * 1.4)
    at_own = GemmModel([*pts, own, *pow2], rf).predict(1, 8, 16384, 2048)
    assert at_own.basis == "measured" and at_own.seconds == own.seconds
    # N = 16000 is beyond every pool point (14976): still said, the pow2_n calls do not widen that range
    assert GemmModel(pts + pow2, rf).predict(1, 32, 16000, 1152).basis == "extrapolated"


def test_a_calibration_with_a_power_of_two_width_is_valid_and_predicted_from() -> None:
    from hwcal.document.schema import schema_errors

    doc = _doc(ZEN4)
    base = predictor_of_document(copy.deepcopy(doc))
    before = base.predict("gemm", "fp32", m=32, n=16384, k=2048).seconds
    rec = next(r for r in doc["gemm_shapes"] if r["family"] == "small_m" and r["precision"] == "fp32")
    slow = copy.deepcopy(rec)
    want = base.predict("gemm", "fp32", m=32, n=16384, k=1152).seconds * 1.25
    slow.update(family="pow2_n", m=32, n=16384, k=1152, gflops_best=2 * 32 * 16384 * 1152 / want / 1e9)
    doc["gemm_shapes"].append(slow)
    assert not schema_errors(doc, "calibration")
    after = predictor_of_document(doc).predict("gemm", "fp32", m=32, n=16384, k=2048)
    assert after.seconds == pytest.approx(before * 1.25, rel=1e-6) and "64 KiB" in after.notes[-1]


def test_a_gemm_takes_its_ratio_from_measured_gemms_in_the_same_tier() -> None:
    """numpy's M = 4 on the Zen 4 guest: 7.8x its roofline with 21 MB of weights in the L3, 4.3x with 69 MB in
    DRAM; 4x3072x8192 (100 MB) ran at about the DRAM pair's rate, and the L3 pairs' ratio put it at 2.2x that."""
    rf = Roofline(200e9, 4, lambda nbytes, warm: 120.0 if nbytes < 32e6 else 43.0, 1e-6, 1e-6, True)
    pts = [_gemm_point(m, n, k, rf.seconds(1, m, n, k) * r)
           for m in (1, 4, 16) for (n, k), r in (((4608, 1152), 7.8 if m == 4 else 2.0),
                                                  ((1152, 4608), 7.7 if m == 4 else 2.0),
                                                  ((14976, 1152), 4.3 if m == 4 else 2.0))]
    ratio = (GemmModel(pts, rf).predict(1, 4, 3072, 8192).seconds - 1e-6) / rf.work(1, 4, 3072, 8192)
    assert 4.3 <= ratio < 5.2  # the DRAM pair's, though the tall L3 pair lies nearer in N and K


def test_a_flagged_point_between_quiet_ones_is_left_out_and_one_at_an_end_stays_with_a_note() -> None:
    """A neighbour slows a call, never speeds it up: a figure the watch left flagged, with quiet figures of its
    own series on both sides, gives way to them (interpolated across); one at its series' end is all there is
    and stays, and the answers it serves say so."""
    doc = _doc(ZEN4)
    dots = sorted((r for r in doc["blas"] if r["operation"] == "dot" and r["precision"] == "fp64"),
                  key=lambda r: r["n"])
    quiet = predictor_of_document(doc, "quiet")
    n_mid, n_end = dots[1]["n"], dots[-1]["n"]
    before = {n: quiet.predict("dot", "fp64", n=n).seconds for n in (n_mid, n_end)}
    for rec in (dots[1], dots[-1]):  # measured at half speed while something else ran
        rec.update(flagged=True, gbps_best=rec["gbps_best"] / 2, gflops_best=rec["gflops_best"] / 2)
    small_m = sorted((r for r in doc["gemm_shapes"] if r["family"] == "small_m" and r["precision"] == "fp32"
                      and (r["n"], r["k"]) == (1024, 1024)), key=lambda r: r["m"])
    small_m[1].update(flagged=True, gflops_best=small_m[1]["gflops_best"] / 2)
    disturbed = predictor_of_document(doc, "disturbed")
    left_out = {(p.family, p.label) for p in disturbed.inputs.flagged_left_out}
    assert left_out == {("dot", f"n={n_mid}"), ("small_m", f"m={small_m[1]['m']} n=1024 k=1024 batch=1")}
    mid = disturbed.predict("dot", "fp64", n=n_mid)
    assert mid.seconds < 1.5 * before[n_mid] and not any("ran while something else" in n for n in mid.notes)
    assert any(f"left out for the quiet ones on both sides: n={n_mid}" in n for n in mid.notes)
    assert all(not p.flagged for p in mid.points)
    end = disturbed.predict("dot", "fp64", n=n_end)  # the largest size: nothing above it to take its place
    assert end.seconds == pytest.approx(2 * before[n_end], rel=0.1)
    assert any("ran while something else did" in n for n in end.notes) and any(p.flagged for p in end.points)
    shape = {"m": small_m[1]["m"], "n": 1024, "k": 1024}
    assert (disturbed.predict("gemm", "fp32", **shape).seconds
            < 1.5 * quiet.predict("gemm", "fp32", **shape).seconds)


def test_a_memory_bound_calls_efficiency_is_against_the_best_kernel_of_its_tier_as_the_document_sets_it() -> None:
    """As ``blas_ceiling`` in the document: the best of read, write and triad at the tier (the update too for an
    in-place call), the all-core triad on more threads; not the pattern's figure alone, nor the framework's own
    STREAM sweep (numpy's triad makes five passes: its add read 1.4x that roof on the Zen 3 guest)."""
    levels = copy.deepcopy(LEVELS)
    levels["dram"]["update_gbps"] = 32.0
    stream = [Point("triad", "fp64", (("n", n),), 0.0, 24.0 * n, 24.0 * n / (g * 1e9), "memory.sweep")
              for n, g in ((1024, 50.0), (2**24, 8.0))]
    bw = Bandwidth({"levels": levels, "caches": CACHES, "threads": 1}, stream, None, (), 0.0, True)
    assert bw.reference(2**31, "triad", 1) == (20.0, "the best of the tier's kernels: memory.levels.dram.read_gbps")
    assert bw.reference(2**31, "update", 1)[0] == 32.0  # type: ignore[index]
    assert bw.reference(8192, "read", 1)[0] == 400.0  # type: ignore[index]
    assert bw.reference(2**31, "update", 2)[0] == 30.0  # type: ignore[index]
    doc = _doc(ZEN4)
    doc["memory"].update(levels=levels, caches=CACHES)
    doc.pop("theoretical_bandwidth_gbps", None)
    pred = predictor_of_document(doc, "zen4 with tiers").predict("add", "fp64", n=2**26)
    assert "the best of the tier's kernels: memory.levels.dram.read_gbps" in pred.efficiency_reference
    share = pred.bytes / pred.seconds / 1e9 / 20.0  # this file's add curve against the made-up 20 GB/s roof
    if share <= 1:
        assert pred.efficiency == pytest.approx(share)
    else:  # not a share of it: none given, the note says what it was
        assert pred.efficiency is None and any(n.startswith(f"efficiency {share:.3g} against") for n in pred.notes)


def test_a_shapes_series_are_its_lines_one_dimension_each() -> None:
    """A flagged M = 1 with a quiet M = 2 above it (its M line) and a quiet point of smaller N below it (its N
    line) is at the end of both lines: it stays. A flagged M = 2 between quiet M = 1 and M = 4 goes."""
    def shape(m: int, n: int, flagged: bool = False) -> Point:
        dims = {"m": m, "n": n, "k": 1152, "batch": 1}
        return Point("small_m", "fp32", tuple(dims.items()), 2.0 * m * n * 1152, 4.0 * (m * 1152 + 1152 * n + m * n),
                     1e-4 * m, "gemm_shapes", flagged=flagged)
    end = [shape(1, 4608, flagged=True), shape(2, 4608), shape(1, 1152)]
    kept, out = prefer_unflagged(end)
    assert out == [] and kept == end
    middle = [shape(1, 4608), shape(2, 4608, flagged=True), shape(4, 4608)]
    kept, out = prefer_unflagged(middle)
    assert out == [middle[1]] and kept == [middle[0], middle[2]]


def test_a_run_of_flagged_points_stays() -> None:
    """Two flagged sizes side by side both stay: leaving them out would interpolate across the run (on the AMX
    Xeon guest, across all of L2 from an L1 and an L3 size), while a lone flagged size between quiet ones goes."""
    def add(n: int, flagged: bool = False) -> Point:
        return Point("add", "fp64", (("n", n),), float(n), 24.0 * n, 24.0 * n / 200e9, "memory.sweep", flagged=flagged)
    run = [add(2048), add(4096, True), add(8192, True), add(16384)]
    kept, out = prefer_unflagged(run)
    assert out == [] and kept == run
    lone = [add(2048), add(4096, True), add(8192), add(16384, True)]
    kept, out = prefer_unflagged(lone)
    assert out == [lone[1]] and kept == [lone[0], lone[2], lone[3]]  # the last is at its series' end


def test_a_predicted_efficiency_is_a_share_of_its_reference_or_none() -> None:
    """An answer faster than its reference (a working set served from a cache, set against DRAM's figure) gives
    no efficiency and says what it was, as the document files them; a share of it is given as it is."""
    pred = Prediction("scal", "fp32", {"n": 1}, 1e-3, 1.0, 2e8, "measured", "scal", [], 1.53, "DRAM 100 GB/s", 0.0)
    assert pred.efficiency is None and pred.notes[0].startswith("efficiency 1.53 against DRAM 100 GB/s: not a share")
    assert Prediction("scal", "fp32", {"n": 1}, 1e-3, 1.0, 2e8, "measured", "scal", [], 0.5, "x", 0.0).efficiency == 0.5


def test_in_a_layer_a_cpu_call_slows_to_the_layers_tier_not_by_its_own_overhead() -> None:
    """numpy's decode attention on the AMX Xeon guest: 1x1024x64 per head ran at 27 GB/s (a BLAS call per matrix)
    where its tier read 115; in a layer holding 249 MiB it was predicted at its ratio times the DRAM roofline, 2.7x
    its alone time. Now its alone time plus what its bytes take longer from the layer's tier; a compute-bound call
    whose operands a cache held alone pays their whole time from the layer's tier on top."""
    tiers = lambda nbytes, warm: 100.0 if nbytes <= 2**26 else 25.0  # noqa: E731 -- a cache up to 64 MiB, then DRAM
    rf = Roofline(1e11, 4, tiers, 1e-6, 1e-6, True)
    heads, per_head = 16, 4.0 * (64 + 64 * 1024 + 1024)
    slow = _gemm_point(1, 1024, 64, 10e-6 * heads, batch=heads)  # 4x its 100 GB/s roofline: overhead
    fast = _gemm_point(1, 1024, 4096, rf.seconds(1, 1, 1024, 4096))  # at its roofline: bandwidth-bound
    square = _gemm_point(2048, 2048, 2048, rf.seconds(1, 2048, 2048, 2048) * 1.2, family="square")  # compute-bound
    model = GemmModel([slow, fast, square], rf)
    layer = 2.0**28
    in_layer = model.predict(heads, 1, 1024, 64, resident_bytes=layer)
    assert in_layer.seconds == pytest.approx(slow.seconds + heads * per_head * (1 / 25e9 - 1 / 100e9))
    assert in_layer.seconds < 2 * slow.seconds
    bound = model.predict(1, 1, 1024, 4096, resident_bytes=layer)  # ratio 1: the DRAM roofline, as before
    assert bound.seconds == pytest.approx(rf.floor_s + fast.bytes / 25e9)
    hidden = model.predict(1, 2048, 2048, 2048, resident_bytes=layer)  # its 48 MiB were cached alone: all added
    assert hidden.seconds == pytest.approx(square.seconds + square.bytes / 25e9)
    gpu = GemmModel([slow, fast], Roofline(1e11, 4, tiers, 1e-6, 1e-6, False))  # a GPU keeps its ratio
    assert gpu.predict(heads, 1, 1024, 64, resident_bytes=layer).seconds > 3 * slow.seconds
