"""Machine detection from recorded machines: the registry key (hardware id, power mode, clock ceiling)
of a Jetson Orin Nano in 7W, an i7 with intel_pstate, a datacenter GPU (fake NVML), a Windows box
and this VM (no cpufreq), all read through ``Sources``; and bad input that must never crash or
silently give a wrong key.

Also the helpers the clock and preflight tests share: ``machine(name)`` and ``FakeNvml``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

import hwcal.machine.gpu as gpu_mod
from hwcal.errors import HwcalError
from hwcal.machine import (
    Sources,
    collect_gpu,
    detect_cpu_key,
    detect_gpu_key,
    detect_power_mode,
    registry_hardware_id,
)
from hwcal.machine.clock_ceiling import cpu_ceiling_mhz, jetson_gpu_ceiling_mhz, nvpmodel_conf_gpu_max_mhz
from hwcal.machine.cpu import collect_cpu, turbo_state
from hwcal.machine.power import clean_mode_name, parse_nvpmodel, parse_powercfg
from hwcal.naming import check_power_mode
from hwcal.plugin.options import parse_frequency_mhz, parse_power_mode

MACHINES = Path(__file__).parent / "data" / "machines"


def machine(name: str, root: Path | None = None, commands: dict[str, str | None] | None = None) -> Sources:
    """A recorded machine: files under ``root/``, command outputs, OS name and (where given) the process's
    ``platform.machine()`` from ``machine.json``.

    ``commands`` replace recorded outputs (None: the command is missing); ``root`` reads a modified copy.
    """
    meta = json.loads((MACHINES / name / "machine.json").read_text())
    return Sources(root=root or MACHINES / name / "root", commands={**meta["commands"], **(commands or {})},
                   system=meta["system"], machine=meta.get("machine"))


def machine_copy(name: str, tmp_path: Path) -> Path:
    """A writable copy of a recorded machine's files, for tests that change one reading."""
    dest = tmp_path / name
    shutil.copytree(MACHINES / name / "root", dest)
    return dest


class FakeNvmlError(Exception):
    pass


class FakeNvml:
    """The parts of pynvml hwcal uses, answering like an idle H100 SXM5 80GB at its 700 W limit."""

    NVML_CLOCK_SM = 0
    NVML_CLOCK_MEM = 2
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, **overrides: Any) -> None:
        self.values: dict[str, Any] = {
            "name": b"NVIDIA H100 80GB HBM3", "sm_max": 1980, "mem_max": 2619, "sm_now": 345, "sm_app": 1980,
            "limit_mw": 700_000, "default_limit_mw": 700_000, "power_mw": 71_500, "temp": 31, "slowdown": 87,
            "persistence": 1, "reasons": 0x1, "fail_clock_after": None,
        }
        self.values.update(overrides)
        self.clock_reads = 0

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        return f"gpu{index}"

    def nvmlDeviceGetHandleByPciBusId(self, bus: bytes) -> str:
        return "gpu0"

    def nvmlDeviceGetName(self, h: str) -> bytes:
        return self.values["name"]

    def nvmlSystemGetDriverVersion(self) -> str:
        return "550.54.15"

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        return 12040

    def nvmlDeviceGetUUID(self, h: str) -> str:
        return "GPU-00000000-1111-2222-3333-444444444444"

    def nvmlDeviceGetMaxClockInfo(self, h: str, kind: int) -> int:
        return self.values["sm_max"] if kind == self.NVML_CLOCK_SM else self.values["mem_max"]

    def nvmlDeviceGetClockInfo(self, h: str, kind: int) -> int:
        self.clock_reads += 1
        limit = self.values["fail_clock_after"]
        if limit is not None and self.clock_reads > limit:
            raise FakeNvmlError("NVML_ERROR_GPU_IS_LOST")
        now = self.values["sm_now"]
        return now[(self.clock_reads - 1) % len(now)] if isinstance(now, list) else now

    def nvmlDeviceGetApplicationsClock(self, h: str, kind: int) -> int:
        return self.values["sm_app"]

    def nvmlDeviceGetEnforcedPowerLimit(self, h: str) -> int:
        return self.values["limit_mw"]

    def nvmlDeviceGetPowerManagementDefaultLimit(self, h: str) -> int:
        return self.values["default_limit_mw"]

    def nvmlDeviceGetPowerUsage(self, h: str) -> int:
        return self.values["power_mw"]

    def nvmlDeviceGetTemperature(self, h: str, sensor: int) -> int:
        return self.values["temp"]

    def nvmlDeviceGetTemperatureThreshold(self, h: str, kind: int) -> int:
        return self.values["slowdown"]

    def nvmlDeviceGetPersistenceMode(self, h: str) -> int:
        return self.values["persistence"]

    def nvmlDeviceGetMemoryBusWidth(self, h: str) -> int:
        return 5120

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: str) -> int:
        reasons = self.values["reasons"]
        return reasons[(self.clock_reads - 1) % len(reasons)] if isinstance(reasons, list) else reasons


def install_fake_nvml(monkeypatch: pytest.MonkeyPatch, nvml: FakeNvml | None) -> None:
    """Make hwcal's NVML calls answer from ``nvml`` (None: NVML missing); torch.cuda is bypassed."""
    monkeypatch.setattr(gpu_mod, "_nvml", lambda: nvml)
    monkeypatch.setattr(gpu_mod, "_handle_for", lambda nv, index: nv.nvmlDeviceGetHandleByIndex(index))


# ---- the five machines -------------------------------------------------------------------------------
def test_jetson_orin_nano_7w_cpu_key() -> None:
    key = detect_cpu_key(machine("jetson_orin_nano_7w"))
    assert (key.hardware_id, key.power_mode, key.power_mode_id, key.freq_mhz) == ("jetson_orin_nano_cpu", "7W", 1, 960)
    assert key.power_mode_source == "nvpmodel -q"
    assert key.freq_source == "cpufreq scaling_max_freq"  # not the idle 729.6 MHz the old registry filed


def test_jetson_orin_nano_7w_gpu_key() -> None:
    torch_facts = {"name": "Orin", "compute_capability": "8.7", "sm_count": 8, "source": "torch.cuda"}
    key = detect_gpu_key(torch_facts, machine("jetson_orin_nano_7w"))
    assert (key.hardware_id, key.power_mode, key.freq_mhz) == ("jetson_orin_nano_gpu", "7W", 408)
    assert key.freq_source == "devfreq 17000000.ga10b max_freq"  # not the idle 306 MHz cur_freq


def test_jetson_gpu_ceiling_falls_back_to_nvpmodel_conf(tmp_path: Path) -> None:
    root = machine_copy("jetson_orin_nano_7w", tmp_path)
    shutil.rmtree(root / "sys" / "class" / "devfreq")
    src = machine("jetson_orin_nano_7w", root=root)
    assert jetson_gpu_ceiling_mhz(src, 1) == (408.0, "/etc/nvpmodel.conf GPU MAX_FREQ of mode 1")
    assert nvpmodel_conf_gpu_max_mhz(src, 0) == 624.75
    assert nvpmodel_conf_gpu_max_mhz(src, 7) is None


def test_i7_intel_pstate_key() -> None:
    src = machine("i7_12700k_pstate")
    key = detect_cpu_key(src)
    assert key.hardware_id == "intel_12th_gen_intelr_coretm_i7_12700k"  # the seed registry's id, next to its spec
    assert (key.power_mode, key.power_mode_source) == ("powersave", "cpufreq scaling_governor")
    # no_turbo=1 caps scaling_max_freq at the P-core base clock; the idle cpu MHz lines vary 800..3600
    assert (key.freq_mhz, key.freq_source) == (3600, "cpufreq scaling_max_freq")
    assert turbo_state(src) == (False, "intel_pstate/no_turbo")
    cpu = collect_cpu(src)
    assert cpu["physical_cores"] == 12 and cpu["logical_cores"] == 20
    assert "avx2" in cpu["isa_flags"] and "avx512f" not in cpu["isa_flags"]


def test_datacenter_gpu_key_from_fake_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_nvml(monkeypatch, FakeNvml())
    facts = collect_gpu(0)
    assert facts["power_limit_w"] == 700.0 and facts["sm_clock_max_mhz"] == 1980
    assert facts["clock_event_reasons"] == ["gpu_idle"] and facts["persistence_mode"] is True
    key = detect_gpu_key(facts, machine("vm_epyc_no_cpufreq"))
    assert (key.hardware_id, key.power_mode) == ("h100_sxm5", "700W")
    assert key.power_mode_source == "NVML enforced power limit"
    assert (key.freq_mhz, key.freq_source) == (1980, "NVML max SM clock")  # not the idle 345 MHz


def test_datacenter_gpu_capped_applications_clock_keys_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_nvml(monkeypatch, FakeNvml(sm_app=1590, limit_mw=500_000))
    key = detect_gpu_key(collect_gpu(0), machine("vm_epyc_no_cpufreq"))
    assert (key.power_mode, key.freq_mhz) == ("500W", 1590)
    assert "applications" in key.freq_source
    assert "default power limit 700.0 W" in key.notes


def test_windows_box_key() -> None:
    key = detect_cpu_key(machine("windows_balanced"))
    assert (key.power_mode, key.power_mode_source) == ("Balanced", "Windows active power plan (powercfg)")
    assert (key.freq_mhz, key.freq_source) == (3610, "wmic cpu MaxClockSpeed")


def test_this_vm_without_cpufreq() -> None:
    key = detect_cpu_key(machine("vm_epyc_no_cpufreq"))
    # A Zen 3 (family 25 model 1) the VM names "AMD EPYC": the microarchitecture joins the generic name.
    assert (key.hardware_id, key.power_mode, key.freq_mhz) == ("amd_epyc_zen3", "default", 2445)
    assert key.freq_source == "/proc/cpuinfo cpu MHz (nominal; no cpufreq)"
    assert key.power_mode_source == "no power-mode source answered on Linux"
    assert any("scaling_governor: absent" in n for n in key.notes)


def test_same_mode_same_key_whatever_the_idle_clock(tmp_path: Path) -> None:
    """The old registry filed one CPU in one mode under 8 frequencies: the ceiling does not move."""
    root = machine_copy("jetson_orin_nano_7w", tmp_path)
    keys = set()
    for khz in ("729600", "883200", "960000"):
        for cpu in range(4):
            (root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq").write_text(khz + "\n")
        key = detect_cpu_key(machine("jetson_orin_nano_7w", root=root))
        keys.add((key.power_mode, key.freq_mhz))
    assert keys == {("7W", 960)}


# ---- the power-mode chain ----------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("NV Power Mode: 15W\n2\n", ("15W", 2)),
    ("NVPM WARN: fan mode is not set!\nNV Power Mode: 7W\n1\n", ("7W", 1)),
    ("NV Fan Mode:quiet\nNV Power Mode: MAXN_SUPER\n2\n", ("MAXN_SUPER", 2)),
    ("NV Power Mode: MODE_25W\n\n3", ("MODE_25W", 3)),
    ("NV Power Mode: 15W\n", ("15W", None)),
    ("NV Power Mode: 10W_DESKTOP\nnot a number\n", ("10W_DESKTOP", None)),
])
def test_parse_nvpmodel_takes_the_name_and_the_id(text: str, expected: tuple[str, int | None]) -> None:
    assert parse_nvpmodel(text) == expected


@pytest.mark.parametrize("text", ["", "Segmentation fault\n", "NVPM ERROR: failed to read /etc/nvpmodel.conf\n",
                                  "NV Power Mode:\n0\n", "15W 2", None])
def test_parse_nvpmodel_garbage_is_none(text: str | None) -> None:
    assert parse_nvpmodel(text) is None


@pytest.mark.parametrize("nvpmodel", [None, "Segmentation fault (core dumped)\n", "NV Power Mode: ///\n0\n"])
def test_jetson_with_unreadable_nvpmodel_is_unknown_not_the_governor(nvpmodel: str | None) -> None:
    mode = detect_power_mode(machine("jetson_orin_nano_7w", commands={"nvpmodel -q": nvpmodel}))
    assert mode.name == "unknown" and mode.source == "nvpmodel unreadable on a Jetson"
    assert mode.notes and "nvpmodel -q" in mode.notes[0]


def test_power_mode_override_wins() -> None:
    mode = detect_power_mode(machine("jetson_orin_nano_7w"), override="MAXN")
    assert (mode.name, mode.source) == ("MAXN", "--power-mode")


def test_acpi_platform_profile_when_no_governor(tmp_path: Path) -> None:
    root = machine_copy("vm_epyc_no_cpufreq", tmp_path)
    (root / "sys/firmware/acpi/platform_profile").write_text("low-power\n")
    mode = detect_power_mode(machine("vm_epyc_no_cpufreq", root=root))
    assert (mode.name, mode.source) == ("low-power", "ACPI platform_profile")
    assert check_power_mode(mode.name) == "lowpower"


def test_gpu_calibration_ignores_the_cpu_governor(tmp_path: Path) -> None:
    mode = detect_power_mode(machine("i7_12700k_pstate"), device_type="gpu", gpu={"name": "x"})
    assert mode.name == "default"
    assert "NVML enforced power limit: unavailable" in mode.notes


@pytest.mark.parametrize(("label", "guid", "name"), [
    ("Balanced", "381b4222-f694-41f0-9685-ff5bb260df2e", "Balanced"),
    ("High performance", "8c5e7fda-e8bf-4a96-9a85-a6e23a8c635c", "High performance"),
    ("Gaming/Streaming", "11111111-2222-3333-4444-555555555555", "Gaming Streaming"),
    ("平衡", "381b4222-f694-41f0-9685-ff5bb260df2e", "Balanced"),
    ("Économie d'énergie", "a1841308-3bcb-4aeb-b7d4-bd8e1e3f8b2c", "Economie d'energie"),
    ("", "deadbeef-2222-3333-4444-555555555555", "plan deadbeef"),
])
def test_windows_plan_names_become_safe_keys(label: str, guid: str, name: str) -> None:
    out = f"Power Scheme GUID: {guid}  ({label})\r\n" if label else f"Power Scheme GUID: {guid}\r\n"
    mode = detect_power_mode(machine("windows_balanced", commands={"powercfg /getactivescheme": out}))
    assert mode.name == name
    check_power_mode(mode.name)  # never a path separator, never empty
    assert parse_powercfg(out) == (guid, label)


def test_windows_without_powercfg_is_default() -> None:
    mode = detect_power_mode(machine("windows_balanced", commands={"powercfg /getactivescheme": None}))
    assert mode.name == "default" and "powercfg /getactivescheme: no active scheme read" in mode.notes


@pytest.mark.parametrize(("out", "name"), [(" lowpowermode         1\n", "LowPower"), (" lowpowermode 0\n", "Normal"),
                                          ("Sleep On Power Button 1\n", "default")])
def test_macos_low_power_mode(out: str, name: str) -> None:
    src = Sources(root=MACHINES / "windows_balanced" / "root", commands={"pmset -g": out}, system="Darwin")
    assert detect_power_mode(src).name == name


@pytest.mark.parametrize(("raw", "clean"), [("MAXN_SUPER", "MAXN_SUPER"), ("a/b", "a b"), ("..", ""),
                                            ("../../etc", "etc"), ("C:\\plan", "C: plan"), ("  15 W ", "15 W")])
def test_clean_mode_name(raw: str, clean: str) -> None:
    assert clean_mode_name(raw) == clean


# ---- bad input on the command line ---------------------------------------------------------------------
@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "fast"])
def test_frequency_option_refuses_non_positive_and_garbage(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(repr(value))):
        parse_frequency_mhz(value)


def test_power_mode_option_with_spaces_files_under_its_token() -> None:
    assert parse_power_mode("High performance") == "High performance"  # kept in the metadata
    assert check_power_mode("High performance") == "Highperformance"


@pytest.mark.parametrize("value", ["7W/../../x", "a\\b", "..", "/"])
def test_power_mode_option_with_slashes_is_refused(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"path separator|no letters"):
        parse_power_mode(value)
    with pytest.raises(HwcalError):
        check_power_mode(value)


# ---- small pieces -----------------------------------------------------------------------------------------
def test_cpu_ceiling_prefers_the_model_name_clock_over_cpuinfo_mhz(tmp_path: Path) -> None:
    root = tmp_path / "old_xeon"
    (root / "proc").mkdir(parents=True)
    (root / "proc/cpuinfo").write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz\n"
                                       "cpu MHz\t\t: 1199.871\n")
    src = Sources(root=root, commands={}, system="Linux")
    assert cpu_ceiling_mhz(src, collect_cpu(src)) == (2400.0, "nominal clock in the CPU model name (no cpufreq)")


def test_nothing_known_means_zero_and_says_so(tmp_path: Path) -> None:
    src = Sources(root=tmp_path, commands={}, system="Linux")
    assert cpu_ceiling_mhz(src, {}) == (None, "unknown (no cpufreq, no nominal clock)")


def test_registry_ids() -> None:
    vm = machine("vm_epyc_no_cpufreq")
    assert registry_hardware_id("NVIDIA H100 80GB HBM3", "gpu", vm) == "h100_sxm5"
    assert registry_hardware_id("NVIDIA H100 PCIe", "gpu", vm) == "nvidia_h100_pcie"
    assert registry_hardware_id("NVIDIA H200", "gpu", vm) == "nvidia_h200"
    assert registry_hardware_id("anything", "gpu", machine("jetson_orin_nano_7w")) == "jetson_orin_nano_gpu"


def test_nvml_missing_gives_no_power_limit_and_no_ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_nvml(monkeypatch, None)
    facts = collect_gpu(0)
    assert "power_limit_w" not in facts
    key = detect_gpu_key({**facts, "name": "NVIDIA H100 80GB HBM3"}, machine("vm_epyc_no_cpufreq"))
    assert key.freq_mhz == 0 and key.freq_source == "unknown (NVML unavailable)"  # preflight stops the run
