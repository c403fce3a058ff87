"""What reads or steers the model-layer families: ``--full`` (its parse function and its conflict with
``--quick``), the roofline picture's layer points and the site's layer tables."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from hwcal.document.builder import build_calibration
from hwcal.errors import HwcalError
from hwcal.plugin.options import OPTIONS, parse_flag, resolve, resolve_options
from tests.conftest import make_input
from tests.fakes import dram_sweep
from tests.test_nn_document import STATUS, _records

FULL = next(s for s in OPTIONS if s.flag == "--full")


def test_full_is_a_flag_whose_env_value_is_parsed() -> None:
    assert FULL.is_flag and FULL.env == "HWCAL_FULL" and FULL.default is False
    assert resolve(FULL, True) is True
    assert resolve(FULL, False, None, {"HWCAL_FULL": "yes"}) is True
    assert resolve(FULL, False, "off", {}) is False
    with pytest.raises(HwcalError, match="environment variable HWCAL_FULL: 'maybe' is not on or off"):
        resolve(FULL, False, None, {"HWCAL_FULL": "maybe"})
    with pytest.raises(argparse.ArgumentTypeError):
        parse_flag("2")


def test_quick_and_full_contradict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HWCAL_FULL", raising=False)
    values = {s.dest: None for s in OPTIONS}
    values.update(hwcal_quick=True, hwcal_full=True)
    with pytest.raises(HwcalError, match="--quick and --full contradict"):
        resolve_options(values.get, lambda name: None, Path("."))
    values.update(hwcal_quick=False)
    options = resolve_options(values.get, lambda name: None, Path("."))
    assert options.full is True and options.kernel_names is True  # --full names the CUDA kernels too
    values.update(hwcal_full=False)
    assert resolve_options(values.get, lambda name: None, Path(".")).kernel_names is False


def _doc() -> dict[str, Any]:
    return build_calibration(make_input(memory=dram_sweep(20.0), nn=_records(), nn_status=STATUS))


def test_the_roofline_shows_the_layers_under_the_ceilings() -> None:
    pytest.importorskip("matplotlib")
    from hwcal.report.figures import roofline_figure, series_gids

    gids = series_gids(roofline_figure(_doc()))
    assert {"series-layers-conv-fp32", "series-layers-conv_bn_relu-fp32", "series-layers-attention-fp32"} <= set(gids)
    assert not any("fused" in g for g in gids)  # no FLOPs filed: not on a FLOP roofline
    plain = series_gids(roofline_figure(build_calibration(make_input(memory=dram_sweep(20.0)))))
    assert not any(g.startswith("series-layers-") for g in plain)


def test_the_site_page_has_a_model_layers_section() -> None:
    from hwcal.site.pages import calibration_page

    page = calibration_page(_doc(), path="cpu/x/p.html", json_href="cpu/x/p.json", key_href="cpu/x/index.html",
                            superseded=False, power_mode_name="7W", fig_key=None, why_none="no figures")
    assert 'id="layers"' in page and "Convolutions (5, grid default)" in page
    assert "r50.stem" in page and "oneDNN test" in page and "no Float8 conv" in page
    assert "2*N*K*(C/groups)*R*S*P*Q" in page
    bare = calibration_page(build_calibration(make_input()), path="cpu/x/p.html", json_href="j", key_href="k",
                            superseded=False, power_mode_name="7W", fig_key=None, why_none="no figures")
    assert 'id="layers"' not in bare
