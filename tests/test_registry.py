"""The Registry API: natural order, filter normalisation (property tests), most recent by date,
and every kind of bad file skipped with a warning when listing but refused with the reason when named."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwcal import HwcalError, Registry
from hwcal.errors import RegistryFileError
from hwcal.naming import CalibrationKey, power_mode_name_problem, power_mode_token
from hwcal.registry.api import RegistryWarning, UnknownHardwareError
from hwcal.registry.filters import FILTER_KEYS, natural_key, normalise_filter
from hwcal.registry.layout import default_registry
from hwcal.registry.reader import read_calibration
from hwcal.registry.validate import validate_registry
from tests.fixtures_registry import (
    BASE_DATE,
    file_calibration,
    later,
    make_calibration,
    registry,
    registry_template,
    write_json,
)

__all__ = ["registry", "registry_template"]  # fixtures, imported for pytest

# Few examples each: these are cheap properties and the whole suite stays well under 30 s.
fast = settings(max_examples=40, deadline=None)
power_mode_text = st.text(alphabet=st.characters(codec="ascii", exclude_characters="/\\"), max_size=12)


# ---- natural sort ------------------------------------------------------------------------------

def test_power_modes_sort_naturally() -> None:
    assert sorted(["MAXN", "25W", "7W", "15W", "MAXNSUPER", "10W"], key=natural_key) == \
        ["7W", "10W", "15W", "25W", "MAXN", "MAXNSUPER"]


@fast
@given(st.integers(0, 10**6), st.integers(0, 10**6), st.sampled_from(["W", "w", "", "W_boost"]))
def test_wattages_sort_by_number(a: int, b: int, suffix: str) -> None:
    if a < b:
        assert natural_key(f"{a}{suffix}") < natural_key(f"{b}{suffix}")


@fast
@given(st.integers(0, 10**6), st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,8}", fullmatch=True))
def test_a_number_sorts_before_a_named_mode(watts: int, name: str) -> None:
    assert natural_key(f"{watts}W") < natural_key(name)


@fast
@given(st.lists(st.text(max_size=8), max_size=12), st.randoms())
def test_natural_sort_is_a_total_order(items: list[str], rnd: object) -> None:
    shuffled = list(items)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert sorted(shuffled, key=natural_key) == sorted(items, key=natural_key)


@fast
@given(st.text(max_size=10), st.text(max_size=10))
def test_natural_keys_are_equal_only_for_equal_strings(a: str, b: str) -> None:
    assert (natural_key(a) == natural_key(b)) == (a == b)


# ---- filter normalisation ----------------------------------------------------------------------

def _key(power_mode: str = "7W", freq: int = 1000, framework: str = "numpy") -> CalibrationKey:
    return CalibrationKey("cpu", "test_cpu", power_mode, freq, framework)


@fast
@given(power_mode_text)
def test_power_mode_filter_finds_the_file_token(text: str) -> None:
    token = power_mode_token(text)
    problem = power_mode_name_problem(text)
    if problem:  # the rule a filed power mode's name follows: refused with its reason, never matched on a guess
        with pytest.raises(HwcalError, match=re.escape(problem)):
            normalise_filter({"power_mode": text})
        return
    if not token:
        with pytest.raises(HwcalError, match="no letters or digits"):
            normalise_filter({"power_mode": text})
        return
    assert normalise_filter({"power_mode": text}).matches(_key(token))
    assert normalise_filter({"power_mode": token}).matches(_key(token))


@fast
@given(power_mode_text, st.from_regex(r"[A-Za-z0-9]{1,8}", fullmatch=True))
def test_power_mode_filter_matches_exactly_when_tokens_agree(text: str, file_token: str) -> None:
    token = power_mode_token(text)
    if token and not power_mode_name_problem(text):
        assert normalise_filter({"power_mode": text}).matches(_key(file_token)) == \
            (token.casefold() == file_token.casefold())


def test_maxn_super_finds_maxnsuper() -> None:
    assert normalise_filter({"power_mode": "MAXN_SUPER"}).matches(_key("MAXNSUPER"))
    assert not normalise_filter({"power_mode": "MAXN"}).matches(_key("MAXNSUPER"))


@fast
@given(st.sampled_from(["torch", "TORCH", " pytorch ", "PyTorch", "np", "numpy", "NumPy"]))
def test_framework_filter_is_normalised(name: str) -> None:
    canonical = "pytorch" if "torch" in name.lower() else "numpy"
    assert normalise_filter({"framework": name}).framework == canonical
    assert normalise_filter({"framework": name}).matches(_key(framework=canonical))


@fast
@given(st.integers(1, 10**5))
def test_freq_filter_accepts_int_text_and_mhz(freq: int) -> None:
    for value in (freq, str(freq), f"{freq}MHz", f" {freq} mhz ", float(freq)):
        flt = normalise_filter({"freq_mhz": value})
        assert flt.freq_mhz == freq and flt.matches(_key(freq=freq)) and not flt.matches(_key(freq=freq + 1))


@pytest.mark.parametrize("bad", [True, 0, -5, "fast", 612.5, "612 GHz", [612]])
def test_freq_filter_refuses_non_mhz(bad: object) -> None:
    with pytest.raises(HwcalError, match="freq_mhz"):
        normalise_filter({"freq_mhz": bad})


@fast
@given(st.text(min_size=1, max_size=12).filter(lambda k: k not in FILTER_KEYS))
def test_unknown_filter_key_is_an_error(name: str) -> None:
    with pytest.raises(HwcalError, match="unknown calibration filter key"):
        normalise_filter({name: "x"})


def test_unknown_framework_is_an_error() -> None:
    with pytest.raises(HwcalError, match="unknown framework"):
        normalise_filter({"framework": "jax"})


# ---- listing and choosing ----------------------------------------------------------------------

def test_list_is_naturally_sorted(registry: Path) -> None:
    names = [e.path.name for e in Registry(registry).list_calibrations("test_cpu")]
    assert names == ["7W_1000MHz_numpy.json", "15W_2000MHz_numpy.json", "15W_2000MHz_pytorch.json",
                     "MAXNSUPER_3000MHz_numpy.json"]


def test_list_all_hardware_and_search(registry: Path) -> None:
    reg = Registry(registry)
    assert reg.hardware_ids() == ["test_cpu", "test_gpu"]
    assert [h.hardware_id for h in reg.hardware()] == ["test_cpu", "test_gpu"]
    assert len(reg.list_calibrations()) == 5
    assert [h.hardware_id for h in reg.search("GPU")] == ["test_gpu"]
    assert reg.search("no such thing") == []


def test_get_applies_every_filter_key(registry: Path) -> None:
    reg = Registry(registry)
    profile = reg.get("test_cpu", calibration_filter={"power_mode": "MAXN_SUPER", "framework": "numpy"})
    assert profile.key.power_mode == "MAXNSUPER" and profile.calibration["metadata"]["power_mode"] == "MAXN_SUPER"
    assert profile.spec is not None and profile.spec["id"] == "test_cpu"
    torch = reg.get("test_cpu", {"power_mode": "15w", "framework": "torch", "freq_mhz": "2000MHz"})
    assert torch.key.framework == "pytorch"
    assert torch.peak_gflops("fp32") == 100.0 and torch.measured_bandwidth_gbps == 40.0


def test_get_most_recent_by_calibration_date_not_mtime(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    newest = file_calibration(root, "test_cpu", "15W", 2000, date=later(10), peaks={"fp32": 111.0})
    older = file_calibration(root, "test_cpu", "15W", 2100, date=later(1), peaks={"fp32": 222.0})
    os.utime(newest, (1_000_000, 1_000_000))  # the newest calibration has the oldest file time
    os.utime(older, None)
    profile = Registry(root).get("test_cpu", {"power_mode": "15W"})
    assert profile.path == newest and profile.peak_gflops("fp32") == 111.0


def test_get_refuses_unknown_keys_hardware_and_no_match(registry: Path) -> None:
    reg = Registry(registry)
    with pytest.raises(HwcalError, match=r"unknown calibration filter key.*'mode'"):
        reg.get("test_cpu", {"mode": "7W"})
    with pytest.raises(UnknownHardwareError, match="known: test_cpu, test_gpu"):
        reg.get("jetson_thor")
    with pytest.raises(HwcalError, match=r"no calibration of 'test_cpu' matches power_mode=25w.*7W_1000MHz_numpy"):
        reg.get("test_cpu", {"power_mode": "25W"})


def test_history_lists_superseded_calibrations_newest_first(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    for day in (1, 3, 2):
        file_calibration(root, "test_cpu", "7W", 1000, date=later(day), peaks={"fp32": 100.0 + day})
    reg = Registry(root)
    assert len(reg.list_calibrations("test_cpu")) == 1
    dates = [e.calibration_date for e in reg.history("test_cpu", {"power_mode": "7W"})]
    assert dates == [later(3), later(2), later(1)]
    superseded = [e for e in reg.list_calibrations("test_cpu", history=True) if e.superseded]
    assert len(superseded) == 2
    assert reg.get("test_cpu").path == reg.list_calibrations("test_cpu")[0].path  # get() never picks history


def test_default_registry_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HWCAL_REGISTRY", str(tmp_path))
    assert Registry().root == tmp_path == default_registry()
    monkeypatch.delenv("HWCAL_REGISTRY")
    assert default_registry().name == "registry" and (default_registry().parent / "hwcal").is_dir()


def test_empty_and_missing_registries_list_nothing(tmp_path: Path) -> None:
    assert Registry(tmp_path).list_calibrations() == []
    assert Registry(tmp_path / "missing").list_calibrations() == []
    assert Registry(tmp_path / "missing").hardware() == []


# ---- bad files ---------------------------------------------------------------------------------

def _break_registry(root: Path, outside: Path) -> dict[str, Path]:
    """One bad file of each kind the issue names, next to good ones."""
    cal = root / "cpu" / "test_cpu" / "calibrations"
    good = cal / "15W_2000MHz_numpy.json"
    bad: dict[str, Path] = {}
    bad["copy"] = cal / "calibration (copy).json"
    shutil.copy(good, bad["copy"])
    bad["truncated"] = cal / "25W_2500MHz_numpy.json"
    bad["truncated"].write_text(good.read_text()[:500])
    _, newer = make_calibration("test_cpu", "30W", 3000)
    newer["schema_version"] = 3
    bad["newer"] = write_json(cal / "30W_3000MHz_numpy.json", newer)
    _, invalid = make_calibration("test_cpu", "40W", 4000)
    del invalid["precision_matrix"]
    bad["invalid"] = write_json(cal / "40W_4000MHz_numpy.json", invalid)
    _, elsewhere = make_calibration("test_cpu", "50W", 5000)
    target = write_json(outside / "50W_5000MHz_numpy.json", elsewhere)
    bad["symlink"] = cal / "50W_5000MHz_numpy.json"
    bad["symlink"].symlink_to(target)
    _, wrong_key = make_calibration("test_cpu", "60W", 6000)
    bad["misnamed"] = write_json(cal / "60W_6001MHz_numpy.json", wrong_key)
    nospec = root / "cpu" / "no_spec_cpu" / "calibrations"
    _, doc = make_calibration("no_spec_cpu", "7W", 1000)
    write_json(nospec / "7W_1000MHz_numpy.json", doc)
    bad["nospec"] = root / "cpu" / "no_spec_cpu" / "spec.json"
    return bad


def test_listing_skips_each_bad_file_with_a_warning_naming_it(registry: Path, tmp_path: Path) -> None:
    bad = _break_registry(registry, tmp_path / "outside")
    reg = Registry(registry)
    with pytest.warns(RegistryWarning) as caught:
        entries = reg.list_calibrations()
    messages = [str(w.message) for w in caught]
    for kind, path in bad.items():
        assert any(m.startswith(f"{path}: ") for m in messages), (kind, messages)
    assert any("symlink pointing outside the registry" in m for m in messages)
    assert any("newer than this hwcal" in m and "upgrade" in m for m in messages)
    assert any("no spec.json" in m for m in messages)
    assert {e.path.name for e in entries} == {"7W_1000MHz_numpy.json", "15W_2000MHz_numpy.json",
                                              "15W_2000MHz_pytorch.json", "MAXNSUPER_3000MHz_numpy.json",
                                              "300W_1980MHz_pytorch.json"}
    assert reg.hardware_ids() == ["no_spec_cpu", "test_cpu", "test_gpu"]
    assert len(reg.list_calibrations("no_spec_cpu")) == 1  # a missing spec does not hide the calibration


@pytest.mark.parametrize(("kind", "reason"), [
    ("copy", r"misnamed: \$: file name 'calibration \(copy\).json' is not named"),
    ("truncated", "not valid JSON"),
    ("newer", r"schema_version 3 is newer than this hwcal reads \(2\); refused, upgrade hwcal \(pip install"),
    ("invalid", r"not a valid calibration: \$: 'precision_matrix' is a required property"),
    ("symlink", "symlink pointing outside the registry"),
    ("misnamed", r"misnamed: \$.key.freq_mhz: 6000 disagrees with the file name"),
])
def test_naming_a_bad_file_fails_with_the_reason(registry: Path, tmp_path: Path, kind: str, reason: str) -> None:
    path = _break_registry(registry, tmp_path / "outside")[kind]
    with pytest.raises(RegistryFileError, match=reason) as err:
        Registry(registry).read(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


def test_a_legacy_file_is_refused_with_the_import_command(tmp_path: Path) -> None:
    path = write_json(tmp_path / "calibrations" / "7W_306MHz_pytorch.json",
                      {"metadata": {"framework": "pytorch"}, "operation_profiles": {}, "precision_matrix": {}})
    with pytest.raises(RegistryFileError, match=r"original registry's format.*migrate_calibrations\.py"):
        read_calibration(path)


def test_a_file_outside_any_registry_may_have_any_name(tmp_path: Path) -> None:
    _, doc = make_calibration()
    path = write_json(tmp_path / "baseline (copy).json", doc)
    assert read_calibration(path).key.power_mode == "7W"


# ---- validation --------------------------------------------------------------------------------

def test_a_good_registry_is_valid(registry: Path) -> None:
    report = validate_registry(registry)
    assert report.ok, report.errors
    assert (report.specs_checked, report.calibrations_checked) == (2, 5)


def test_empty_or_missing_registry_is_valid(tmp_path: Path) -> None:
    assert validate_registry(tmp_path).ok
    (tmp_path / "cpu" / "x_cpu").mkdir(parents=True)
    (tmp_path / "cpu" / "x_cpu" / "spec.json").write_text(json.dumps(
        {"schema_version": 1, "id": "x_cpu", "model": "X", "device_type": "cpu", "theoretical_peaks": {},
         "peaks_source": "derived"}))
    assert validate_registry(tmp_path).ok  # no calibrations/ folder yet
    missing = validate_registry(tmp_path / "nope")
    assert missing.ok and "does not exist" in missing.notes[0]


def test_validation_reports_every_error_as_file_path_message(registry: Path, tmp_path: Path) -> None:
    bad = _break_registry(registry, tmp_path / "outside")
    (registry / "boards").mkdir()
    report = validate_registry(registry)
    assert not report.ok
    pattern = re.compile(r"^(?P<file>\S.*?): (?P<path>\$\S*): (?P<message>.+)$")
    assert all(pattern.match(e) for e in report.errors), report.errors
    text = "\n".join(report.errors)
    for path in bad.values():
        assert f"{path}: " in text
    assert f"{registry / 'boards'}: $: folder 'boards' is not a device type" in text
    assert f"{bad['misnamed']}: $.key.freq_mhz: 6000 disagrees with the file name" in text
    assert f"{bad['invalid']}: $: 'precision_matrix' is a required property" in text


def test_validation_checks_the_folder_and_metadata_against_the_key(registry: Path) -> None:
    path = registry / "cpu" / "test_cpu" / "calibrations" / "7W_1000MHz_numpy.json"
    doc = json.loads(path.read_text())
    doc["metadata"]["power_mode"] = "8W"
    path.write_text(json.dumps(doc))
    moved = registry / "gpu" / "test_gpu" / "calibrations" / "7W_1000MHz_numpy.json"
    shutil.copy(path, moved)
    errors = validate_registry(registry).errors
    assert f"{path}: $.metadata.power_mode: '8W' does not reduce to the key's power mode '7W'" in errors
    assert f"{moved}: $.key.hardware_id: 'test_cpu' disagrees with the folder 'test_gpu'" in errors
    assert f"{moved}: $.key.device_type: 'cpu' disagrees with the folder 'gpu'" in errors


def test_dates_are_utc(registry: Path) -> None:
    entry = Registry(registry).list_calibrations("test_gpu")[0]
    assert entry.calibration_date == BASE_DATE and entry.calibration_date.utcoffset().total_seconds() == 0
