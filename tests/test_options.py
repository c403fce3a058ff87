"""Option parse functions (errors name the bad value) and the resolver (CLI > env > ini > default)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hwcal.errors import HwcalError
from hwcal.plugin.options import (
    OPTIONS,
    OptionSpec,
    parse_device,
    parse_framework,
    parse_frequency_mhz,
    parse_hardware_id,
    parse_nonneg_float,
    parse_positive_float,
    parse_power_mode,
    parse_sizes,
    resolve,
    resolve_options,
)

SPECS: dict[str, OptionSpec] = {spec.flag: spec for spec in OPTIONS}


def _refused(parse: Callable[[str], Any], value: str, *fragments: str) -> str:
    """Assert ``parse(value)`` raises argparse's error naming the value; returns the message."""
    with pytest.raises(argparse.ArgumentTypeError) as info:
        parse(value)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message
    return message


@pytest.mark.parametrize("value", ["-5", "abc", "0", "-0", "nan", "inf", "-inf", "1e400", "", "5 GHz"])
def test_frequency_refused(value: str) -> None:
    _refused(parse_frequency_mhz, value, repr(value))


def test_frequency_that_rounds_to_zero_is_refused() -> None:
    # 0.4 MHz passes the "> 0" check but rounds to 0, which the plugin then treats as "not given".
    _refused(parse_frequency_mhz, "0.4", "'0.4'")


@pytest.mark.parametrize(("value", "mhz"), [("2450", 2450), ("1109.6", 1110), (" 306 ", 306), ("1e3", 1000)])
def test_frequency_accepted(value: str, mhz: int) -> None:
    assert parse_frequency_mhz(value) == mhz


@pytest.mark.parametrize(("value", "named"), [("0,-1", "'0'"), ("-1", "'-1'"), ("32,abc", "'abc'"),
                                              ("32,0", "'0'"), ("1.5", "'1.5'"), ("32;64", "'32;64'")])
def test_sizes_refused(value: str, named: str) -> None:
    _refused(parse_sizes, value, named, "not a positive whole number")


@pytest.mark.parametrize("value", ["", ",", " , "])
def test_sizes_naming_no_size_refused(value: str) -> None:
    _refused(parse_sizes, value, "name no size")


@pytest.mark.parametrize(("value", "sizes"), [("32,64", [32, 64]), ("64,32,64", [32, 64]), (" 32, 64 ", [32, 64]),
                                              ("4096", [4096]), ("32,", [32])])
def test_sizes_accepted_sorted_unique(value: str, sizes: list[int]) -> None:
    assert parse_sizes(value) == sizes


def test_framework_refused_names_what_is_supported() -> None:
    _refused(parse_framework, "tensorflow", "'tensorflow'", "numpy", "pytorch")


@pytest.mark.parametrize(("value", "framework"), [("numpy", "numpy"), ("NumPy", "numpy"), ("np", "numpy"),
                                                  ("torch", "pytorch"), ("pytorch", "pytorch"), (" torch ", "pytorch")])
def test_framework_aliases(value: str, framework: str) -> None:
    assert parse_framework(value) == framework


@pytest.mark.parametrize(("value", "device"), [("cpu", "cpu"), ("CPU", "cpu"), ("cuda", "cuda:0"),
                                               ("cuda:0", "cuda:0"), ("cuda:3", "cuda:3"), ("CUDA:1", "cuda:1")])
def test_device_accepted(value: str, device: str) -> None:
    assert parse_device(value) == device


@pytest.mark.parametrize("value", ["gpu", "cuda:", "cuda:x", "cuda:-1", "cuda0", "mps", "", "cuda:1:2"])
def test_device_refused(value: str) -> None:
    _refused(parse_device, value, repr(value), "cpu, cuda or cuda:N")


@pytest.mark.parametrize("value", ["cuda:²", "cuda:١"])
def test_device_index_must_be_ascii_digits(value: str) -> None:
    # str.isdigit() accepts superscripts and other scripts' digits; torch would fail on them much later.
    _refused(parse_device, value, repr(value))


@pytest.mark.parametrize("value", ["", "../../x", "a/b", "a\\b", "..", "_-_"])
def test_power_mode_refused(value: str) -> None:
    _refused(parse_power_mode, value, repr(value))


def test_power_mode_keeps_the_original_string() -> None:
    # The token is for the filename; the metadata keeps what the user gave.
    assert parse_power_mode("MAXN_SUPER") == "MAXN_SUPER"


def test_hardware_id_refused_with_a_suggestion() -> None:
    _refused(parse_hardware_id, "Jetson Orin", "'Jetson Orin'", "'jetson_orin'")


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "abc", ""])
def test_nonneg_float_refused(value: str) -> None:
    _refused(parse_nonneg_float, value, repr(value))


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "abc"])
def test_positive_float_refused(value: str) -> None:
    _refused(parse_positive_float, value, repr(value))


def test_nonneg_float_accepts_zero() -> None:
    assert parse_nonneg_float("0") == 0.0


# --- the resolver -----------------------------------------------------------------------------------------------

def test_resolver_precedence_cli_env_ini_default() -> None:
    spec = SPECS["--frequency-mhz"]
    env = {"HWCAL_FREQUENCY_MHZ": "2000"}
    assert resolve(spec, 1000, "3000", env) == 1000
    assert resolve(spec, None, "3000", env) == 2000
    assert resolve(spec, None, "3000", {}) == 3000
    assert resolve(spec, None, None, {}) is None
    assert resolve(spec, None, "", {"HWCAL_FREQUENCY_MHZ": ""}) is None  # empty means unset


def test_resolver_cli_wins_over_a_bad_env_value() -> None:
    assert resolve(SPECS["--frequency-mhz"], 1000, None, {"HWCAL_FREQUENCY_MHZ": "abc"}) == 1000


def test_resolver_cli_zero_is_a_value_not_absence() -> None:
    # --min-gflops 0 turns the throughput cut-off off; `0.0 in (None, False)` is True, so it was ignored.
    spec = SPECS["--min-gflops"]
    assert resolve(spec, 0.0, None, {}) == 0.0
    assert resolve(spec, 0.0, "3", {"HWCAL_MIN_GFLOPS": "5"}) == 0.0


def test_resolver_env_zero_is_a_value() -> None:
    assert resolve(SPECS["--min-gflops"], None, "3", {"HWCAL_MIN_GFLOPS": "0"}) == 0.0


def test_resolver_default() -> None:
    assert resolve(SPECS["--min-gflops"], None, None, {}) == 1.0
    assert resolve(SPECS["--framework"], None, None, {}) == "numpy"
    assert resolve(SPECS["--quick"], False, None, {}) is False


@pytest.mark.parametrize(("ini", "expected"), [("true", True), ("1", True), ("yes", True), ("false", False),
                                               ("0", False)])
def test_resolver_flag_from_ini(ini: str, expected: bool) -> None:
    assert resolve(SPECS["--quick"], False, ini, {}) is expected


@pytest.mark.parametrize(("flag", "bad"), [("--frequency-mhz", "abc"), ("--frequency-mhz", "-5"), ("--sizes", "0,-1"),
                                           ("--framework", "tensorflow"), ("--power-mode", "../../x"),
                                           ("--device", "gpu"), ("--min-gflops", "-1")])
def test_resolver_error_names_env_source(flag: str, bad: str) -> None:
    spec = SPECS[flag]
    assert spec.env is not None
    with pytest.raises(HwcalError) as info:
        resolve(spec, None, None, {spec.env: bad})
    message = str(info.value)
    assert message.startswith(f"environment variable {spec.env}: ")
    assert repr(bad) in message or bad in message


@pytest.mark.parametrize(("flag", "bad"), [("--frequency-mhz", "abc"), ("--sizes", "0,-1"),
                                           ("--framework", "tensorflow")])
def test_resolver_error_names_ini_source(flag: str, bad: str) -> None:
    spec = SPECS[flag]
    with pytest.raises(HwcalError) as info:
        resolve(spec, None, bad, {})
    assert str(info.value).startswith(f"ini key {spec.dest}: ")
    assert repr(bad) in str(info.value)


def _resolve_with(cli: dict[str, Any], ini: dict[str, Any] | None = None, rootdir: Path = Path("/proj")) -> Any:
    ini = ini or {}
    return resolve_options(lambda dest: cli.get(dest), lambda dest: ini.get(dest), rootdir)


def test_resolve_options_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for spec in OPTIONS:
        if spec.env:
            monkeypatch.delenv(spec.env, raising=False)
    opts = _resolve_with({})
    assert opts.framework == "numpy"
    assert opts.device == "cpu"
    assert opts.registry == Path("/proj/registry")
    assert opts.sizes is None
    assert opts.min_gflops == 1.0
    assert opts.max_call_s == 0.3
    assert (opts.quick, opts.dry_run, opts.force) == (False, False, False)


def test_a_gpu_skips_square_gemms_over_a_tenth_of_a_second_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    for spec in OPTIONS:
        if spec.env:
            monkeypatch.delenv(spec.env, raising=False)
    gpu = {"hwcal_framework": "pytorch", "hwcal_device": "cuda"}
    assert _resolve_with(gpu).max_call_s == 0.1
    assert _resolve_with({**gpu, "hwcal_max_call_s": 0.5}).max_call_s == 0.5


def test_resolve_options_numpy_on_cuda_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HWCAL_FRAMEWORK", raising=False)
    with pytest.raises(HwcalError, match="numpy runs on the CPU only"):
        _resolve_with({"hwcal_device": "cuda:0"})


def test_resolve_options_env_and_ini(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HWCAL_SIZES", "64,32")
    monkeypatch.delenv("HWCAL_REGISTRY", raising=False)
    opts = _resolve_with({"hwcal_power_mode": "MAXN_SUPER"}, {"hwcal_sizes": "128", "hwcal_registry": "/data/reg"})
    assert opts.sizes == [32, 64]  # env beats ini
    assert opts.registry == Path("/data/reg")
    assert opts.power_mode == "MAXN_SUPER"


def test_every_option_has_a_metavar_or_is_a_flag_and_an_env_or_is_a_flag() -> None:
    for spec in OPTIONS:
        assert spec.flag.startswith("--")
        if not spec.is_flag:
            assert spec.metavar and spec.parse is not None, spec.flag
            assert spec.env and spec.env.startswith("HWCAL_"), spec.flag
