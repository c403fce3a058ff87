"""Filename rules: make -> parse round-trips, and no token a user types can leave the registry."""

from __future__ import annotations

import argparse
import re
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hwcal.document.schema import schema_errors
from hwcal.errors import HwcalError
from hwcal.naming import (
    FRAMEWORKS,
    CalibrationKey,
    calibration_path,
    check_hardware_id,
    check_power_mode,
    hardware_id_token,
    history_dir,
    normalise_framework,
    parse_calibration_filename,
    power_mode_name_problem,
    power_mode_token,
    printable,
    spec_path,
)
from hwcal.plugin.options import parse_power_mode

POWER_MODE_TOKENS = st.from_regex(r"[A-Za-z0-9]{1,64}", fullmatch=True)
HARDWARE_IDS = st.from_regex(r"[a-z0-9]{1,8}(_[a-z0-9]{1,8}){0,4}", fullmatch=True)
FREQS = st.integers(min_value=1, max_value=10**7)
# Text that leans towards what breaks paths: separators, dots, unicode look-alikes, control characters.
NASTY_TEXT = st.text(
    alphabet=st.one_of(st.sampled_from([*"/\\._-~ \x00\n\t:*?$%AZaz09", "／", "．", "\u2215", "İ"]),
                       st.characters()),
    max_size=40,
)
TOKEN_RE = re.compile(r"[A-Za-z0-9]+")
# tmp_path is only used to compute paths (nothing is written), so sharing it across examples is fine.
_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_SETTINGS
@given(power_mode=POWER_MODE_TOKENS, freq=FREQS, framework=st.sampled_from(FRAMEWORKS), hw=HARDWARE_IDS)
def test_filename_round_trips(power_mode: str, freq: int, framework: str, hw: str) -> None:
    key = CalibrationKey("cpu", hw, power_mode, freq, framework)
    assert parse_calibration_filename(key.filename) == (power_mode, freq, framework)


@_SETTINGS
@given(name=st.one_of(
    st.from_regex(r"[A-Za-z0-9]{1,6}_[0-9]{1,5}MHz_(numpy|pytorch)\.json", fullmatch=False),
    st.text(max_size=30),
))
@example(name="7W_306MHz_pytorch.json")
@example(name="7W_306MHz_numpy.json\n")  # `$` matches before a trailing newline
@example(name="7W_0306MHz_numpy.json")  # would alias the key of 7W_306MHz_numpy.json
@example(name="7W_0MHz_numpy.json")  # no valid key has 0 MHz
def test_every_parsed_filename_is_a_key_filename(name: str) -> None:
    """parse -> make round-trips too: a name the parser accepts is exactly the name of its key."""
    try:
        power_mode, freq, framework = parse_calibration_filename(name)
    except HwcalError:
        return
    key = CalibrationKey("cpu", "test_cpu", power_mode, freq, framework)
    assert key.filename == name


@pytest.mark.parametrize("name", ["7W_306MHz.json", "7W_306MHz_tensorflow.json", "7_W_306MHz_numpy.json",
                                  "../7W_306MHz_numpy.json", "7W_306MHz_numpy.json.bak", "7W_abcMHz_numpy.json",
                                  "calibration.json", ""])
def test_off_pattern_filenames_are_refused(name: str) -> None:
    with pytest.raises(HwcalError, match="is not named"):
        parse_calibration_filename(name)


@_SETTINGS
@given(text=st.one_of(NASTY_TEXT, st.text()))
def test_power_mode_token_keeps_only_ascii_alphanumerics(text: str) -> None:
    token = power_mode_token(text)
    assert re.fullmatch(r"[A-Za-z0-9]*", token)
    assert "/" not in token and "\\" not in token and ".." not in token


@_SETTINGS
@given(text=st.one_of(NASTY_TEXT, st.text()))
@example(text="../../x")
@example(text="")
@example(text="MAXN/../../etc")
def test_check_power_mode_refuses_or_returns_a_safe_token(text: str) -> None:
    try:
        token = check_power_mode(text)
    except HwcalError as exc:
        assert repr(text) in str(exc)  # the error names the bad value
        return
    assert TOKEN_RE.fullmatch(token)
    assert not any(sep in text for sep in ("/", "\\", "..")), "a path-like power mode must be refused"


@pytest.mark.parametrize("text", ["", "../../x", "..", "a/b", "a\\b", "__", "  ", "--", "x/..", "..."])
def test_path_like_or_empty_power_modes_are_refused(text: str) -> None:
    with pytest.raises(HwcalError, match="power mode"):
        check_power_mode(text)


@pytest.mark.parametrize(("given_mode", "token"), [("MAXN_SUPER", "MAXNSUPER"), ("7W", "7W"), ("15W", "15W"),
                                                   ("MAXN", "MAXN"), ("25W-AI", "25WAI"), ("mode 0", "mode0")])
def test_power_mode_token_matches_the_original_registry(given_mode: str, token: str) -> None:
    assert power_mode_token(given_mode) == token
    assert check_power_mode(given_mode) == token


@_SETTINGS
@given(hw=st.one_of(NASTY_TEXT, st.text(), HARDWARE_IDS), power_mode=st.one_of(NASTY_TEXT, st.text()),
       freq=st.integers(min_value=-5, max_value=10**6), framework=st.one_of(NASTY_TEXT, st.sampled_from(
           ["numpy", "torch", "NumPy", "pytorch"])), device_type=st.sampled_from(["cpu", "gpu", "board", "..", "/"]))
@example(hw="..", power_mode="7W", freq=1, framework="numpy", device_type="cpu")
@example(hw="test_cpu", power_mode="../../x", freq=1, framework="numpy", device_type="cpu")
@example(hw="test_cpu", power_mode="7W", freq=1, framework="../numpy", device_type="cpu")
def test_calibration_path_never_leaves_the_registry(tmp_path: Path, hw: str, power_mode: str, freq: int,
                                                      framework: str, device_type: str) -> None:
    """Whatever the text, an accepted key's path resolves inside the registry folder."""
    registry = tmp_path / "registry"
    for hardware_id in (hw, hardware_id_token(hw)):  # as given (--hardware-id) and as detected (model string)
        try:
            key = CalibrationKey(device_type, check_hardware_id(hardware_id), check_power_mode(power_mode), freq,
                                 normalise_framework(framework))
        except HwcalError:
            continue
        for path in (calibration_path(registry, key), history_dir(registry, key),
                     spec_path(registry, key.device_type, key.hardware_id)):
            assert path.resolve().is_relative_to(registry.resolve())
        path = calibration_path(registry, key)
        assert path.parent == registry / device_type / key.hardware_id / "calibrations"
        assert path.name == key.filename


@_SETTINGS
@given(hw=st.one_of(NASTY_TEXT, st.text()), power_mode=st.one_of(NASTY_TEXT, st.text()), freq=FREQS)
def test_raw_text_in_a_key_is_refused_or_safe(tmp_path: Path, hw: str, power_mode: str, freq: int) -> None:
    """CalibrationKey checks its own fields: raw text either fails or cannot escape the registry."""
    registry = tmp_path / "registry"
    try:
        key = CalibrationKey("cpu", hw, power_mode, freq, "numpy")
    except HwcalError:
        return
    assert calibration_path(registry, key).resolve().is_relative_to(registry.resolve())


@pytest.mark.parametrize("hw", ["", "..", "Test_CPU", "a__b", "_a", "a_", "a/b", "a-b", "a b"])
def test_bad_hardware_ids_are_refused(hw: str) -> None:
    with pytest.raises(HwcalError, match="hardware id"):
        check_hardware_id(hw)


def test_hardware_id_token_of_a_model_string() -> None:
    assert hardware_id_token("12th Gen Intel(R) Core(TM) i7-12700K") == "12th_gen_intel_r_core_tm_i7_12700k"
    assert hardware_id_token("AMD EPYC 7B13 64-Core Processor") == "amd_epyc_7b13_64_core_processor"
    assert hardware_id_token("../..") == ""


@pytest.mark.parametrize(("field", "value"), [("device_type", "phone"), ("power_mode", "MAXN_SUPER"),
                                              ("power_mode", ""), ("freq_mhz", 0), ("freq_mhz", -5),
                                              ("freq_mhz", True), ("framework", "tensorflow"),
                                              ("hardware_id", "Bad Id")])
def test_calibration_key_checks_its_fields(field: str, value: object) -> None:
    fields: dict[str, object] = {"device_type": "cpu", "hardware_id": "test_cpu", "power_mode": "7W",
                                 "freq_mhz": 2450, "framework": "numpy", field: value}
    with pytest.raises(HwcalError):
        CalibrationKey(**fields)  # type: ignore[arg-type]


@_SETTINGS
@given(text=st.one_of(NASTY_TEXT, st.text(max_size=100)))
@example(text="A" * 65)
def test_every_accepted_power_mode_gives_a_key_the_schema_accepts(text: str) -> None:
    """A power mode must be refused when the option is parsed, not after the whole run by the schema."""
    try:
        token = check_power_mode(text)
    except HwcalError:
        return
    key = CalibrationKey("cpu", "test_cpu", token, 2450, "numpy")
    errors = [e for e in schema_errors({"key": key.as_dict()}) if e.startswith("$.key")]
    assert errors == []


@_SETTINGS
@given(hw=HARDWARE_IDS)
@example(hw="a" * 121)
def test_every_accepted_hardware_id_gives_a_key_the_schema_accepts(hw: str) -> None:
    """Same rule for --hardware-id: accepted at parse time means accepted by the schema."""
    try:
        check_hardware_id(hw)
    except HwcalError:
        return
    key = CalibrationKey("cpu", hw, "7W", 2450, "numpy")
    errors = [e for e in schema_errors({"key": key.as_dict()}) if e.startswith("$.key")]
    assert errors == []


def test_calibration_path_layout(tmp_path: Path) -> None:
    key = CalibrationKey("cpu", "test_cpu", check_power_mode("MAXN_SUPER"), 2450, "numpy")
    assert calibration_path(tmp_path, key) == tmp_path / "cpu/test_cpu/calibrations/MAXNSUPER_2450MHz_numpy.json"
    assert history_dir(tmp_path, key) == tmp_path / "cpu/test_cpu/calibrations/history"
    assert spec_path(tmp_path, "cpu", "test_cpu") == tmp_path / "cpu/test_cpu/spec.json"


# ---- names a user cannot see as they are filed ---------------------------------------------------------
@pytest.mark.parametrize(("text", "says"), [
    ("7W\n", r"'7W\\n' contains a control character \(U\+000A\).*e\.g\. 7W$"),
    ("７Ｗ", r"contains letters, digits or accents outside ASCII \('７', 'Ｗ'\).*e\.g\. 7W$"),
    ("\x1b[31m7W", r"control character \(U\+001B\)"),
    ("MAXN\u202e", r"control character \(U\+202E\)"),
    ("Modo económico", r"outside ASCII \('ó'\).*e\.g\. Modoeconomico$"),
    ("eco\u0301", r"outside ASCII \(U\+0301\)"),
])
def test_power_modes_that_would_file_under_a_token_the_user_does_not_see_are_refused(text: str, says: str) -> None:
    """Refused, not cleaned (the choice: a newline or a full-width letter is a typing accident), with the reason
    and the ASCII spelling; never 'no letters or digits'."""
    with pytest.raises(HwcalError, match=says) as info:
        check_power_mode(text)
    assert "no letters" not in str(info.value) and "\n" not in str(info.value)
    assert power_mode_name_problem(text) == str(info.value)  # the same rule for a file's metadata and a filter
    with pytest.raises(argparse.ArgumentTypeError, match=says):
        parse_power_mode(text)  # --power-mode: refused before the run, not after it


@_SETTINGS
@given(text=st.one_of(NASTY_TEXT, st.text(max_size=40)))
def test_an_accepted_power_mode_has_no_hidden_or_foreign_characters(text: str) -> None:
    try:
        check_power_mode(text)
    except HwcalError:
        return
    assert power_mode_name_problem(text) is None
    for ch in text:
        assert unicodedata.category(ch)[0] != "C" and unicodedata.category(ch) not in ("Zl", "Zp"), repr(ch)
        assert ch.isascii() or unicodedata.category(ch)[0] not in "LNM", repr(ch)


def test_a_full_width_hardware_id_gets_its_ascii_spelling_as_the_example() -> None:
    with pytest.raises(HwcalError, match=r"\(e\.g\. 'nvidia'\)"):
        check_hardware_id("ｎｖｉｄｉａ")


def test_printable_escapes_what_could_forge_an_output_line() -> None:
    forged = "alice\n\x1b[2Jroot (pid 1 on host, since now)\u202e"
    assert printable(forged) == "alice\\n\\x1b[2Jroot (pid 1 on host, since now)\\u202e"
    assert printable("a\\nb") == "a\\\\nb"  # a backslash in the text is not taken for an escape
    assert printable(["x"]) == "['x']" and printable(None) == "None"
    assert printable("x" * 500, 64) == "x" * 63 + "…"


@_SETTINGS
@given(text=st.one_of(NASTY_TEXT, st.text()))
def test_printable_is_always_one_printable_line(text: str) -> None:
    out = printable(text)
    assert out.isprintable() and len(out) <= 80
