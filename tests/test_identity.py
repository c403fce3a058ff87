"""Identity: a hardware id that tells apart chips a VM names alike, identity facts in spec.json, and a run
refused (before it starts, and at filing) when its chip is not the one the folder's spec.json describes."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from test_machine import machine

from hwcal.document.schema import schema_errors
from hwcal.document.spec import build_cpu_spec, identity_conflict
from hwcal.errors import HwcalError
from hwcal.machine import Sources, collect_host, detect_cpu_key
from hwcal.machine.cpu import collect_cpu
from hwcal.measure.session import CalibrationOptions, CalibrationSession
from hwcal.naming import CalibrationKey
from hwcal.plugin.clocks import start_machine_state
from hwcal.plugin.filing import check_before_run, check_identity
from hwcal.registry.writer import dumps

DATE = datetime(2026, 12, 1, tzinfo=timezone.utc)
# An Arm server whose /proc/cpuinfo has no "model name" line and which has no device tree: Neoverse N1.
NEOVERSE_N1_CPUINFO = "".join(
    f"processor\t: {i}\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp "
    "asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
    "CPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n\n" for i in range(4))


def _arm_server(tmp_path: Path, cpuinfo: str = NEOVERSE_N1_CPUINFO) -> Sources:
    (tmp_path / "proc").mkdir(parents=True)
    (tmp_path / "proc" / "cpuinfo").write_text(cpuinfo)
    return Sources(root=tmp_path, commands={}, system="Linux")


def test_generic_epyc_names_get_their_microarchitecture() -> None:
    assert detect_cpu_key(machine("vm_epyc_zen4")).hardware_id == "amd_epyc_zen4"
    assert detect_cpu_key(machine("vm_epyc_no_cpufreq")).hardware_id == "amd_epyc_zen3"
    # A model string that names the chip keeps its id as before.
    assert detect_cpu_key(machine("i7_12700k_pstate")).hardware_id == "intel_12th_gen_intelr_coretm_i7_12700k"
    assert detect_cpu_key(machine("jetson_orin_nano_7w")).hardware_id == "jetson_orin_nano_cpu"


def test_cpu_facts_carry_the_identity() -> None:
    cpu = collect_cpu(machine("vm_epyc_zen4"))
    assert (cpu["microarchitecture"], cpu["cpu_family"], cpu["cpu_model"], cpu["cpu_stepping"]) == ("zen4", 25, 17, 1)
    assert {"avx512f", "avx512bw", "avx512vl", "avx512_bf16", "avx512_vnni", "avx2", "fma"} <= set(cpu["isa_flags"])
    assert "family 25 model 17" in str(cpu["microarchitecture_source"])
    jetson = collect_cpu(machine("jetson_orin_nano_7w"))
    ids = (jetson["microarchitecture"], jetson["cpu_implementer"], jetson["cpu_part"])
    assert ids == ("cortex_a78ae", "0x41", "0xd42")
    assert "asimddp" in jetson["isa_flags"]  # the dot-product flag decides the int8 peak


def test_no_model_name_identity_from_implementer_and_part(tmp_path: Path) -> None:
    src = _arm_server(tmp_path)
    cpu = collect_cpu(src)
    assert cpu["model"] == "ARM Neoverse-N1"  # from the MIDR ids, not this host's platform.processor()
    assert (cpu["vendor"], cpu["microarchitecture"], cpu["cpu_part"]) == ("ARM", "neoverse_n1", "0xd0c")
    assert detect_cpu_key(src).hardware_id == "arm_neoverse_n1"  # the name already says the core: no suffix
    spec = build_cpu_spec("arm_neoverse_n1", {"cpu": cpu}, 3000.0, DATE)
    assert schema_errors(spec, "spec") == []
    assert spec["identity"]["cpu_implementer"] == "0x41" and spec["microarchitecture"] == "neoverse_n1"


def test_unknown_arm_part_without_model_name_still_gets_a_distinct_id(tmp_path: Path) -> None:
    src = _arm_server(tmp_path, NEOVERSE_N1_CPUINFO.replace("0xd0c", "0xd99"))
    key = detect_cpu_key(src)
    assert key.hardware_id == "arm_implementer_0x41_part_0xd99"
    cpu = collect_cpu(src)
    # Not in the MIDR table: archspec's flag matcher names it, and the source says so.
    assert "not in the table" in str(cpu["microarchitecture_source"])


def test_spec_keeps_identity_facts_and_validates() -> None:
    host = {"cpu": collect_cpu(machine("vm_epyc_zen4"))}
    spec = build_cpu_spec("amd_epyc_zen4", host, 2596.0, DATE)
    assert schema_errors(spec, "spec") == []
    assert spec["microarchitecture"] == "zen4"
    assert spec["identity"]["cpu_family"] == 25 and spec["identity"]["cpu_model"] == 17
    assert "avx512f" in spec["identity"]["isa_flags"]


def test_old_spec_without_identity_stays_valid() -> None:
    # spec.json as hwcal filed it before identity facts (the real Zen 3 VM's, 2026-11)
    old = {"schema_version": 1, "id": "amd_epyc", "model": "AMD EPYC", "device_type": "cpu",
           "theoretical_peaks": {"fp64": 78.24, "fp32": 156.48}, "peaks_source": "derived",
           "peaks_note": "2 cores x FLOPs/cycle for AVX2+FMA x 2445 MHz", "platform": "x86_64",
           "created": "2026-11-26T19:44:36.328737+00:00", "vendor": "AuthenticAMD", "compute_units": 2}
    assert schema_errors(old, "spec") == []
    assert identity_conflict(old, collect_cpu(machine("vm_epyc_zen4"))) is None


def _zen3_spec() -> dict:
    return build_cpu_spec("amd_epyc_zen3", {"cpu": collect_cpu(machine("vm_epyc_no_cpufreq"))}, 2445.0, DATE)


def test_a_different_microarchitecture_is_a_conflict_naming_both() -> None:
    why = identity_conflict(_zen3_spec(), collect_cpu(machine("vm_epyc_zen4")))
    assert why is not None and "zen3" in why and "zen4" in why and "cpu/amd_epyc_zen3" in why
    assert identity_conflict(_zen3_spec(), collect_cpu(machine("vm_epyc_no_cpufreq"))) is None


def test_filing_refuses_with_the_fix() -> None:
    key = CalibrationKey("cpu", "amd_epyc_zen3", "default", 2445, "numpy")
    with pytest.raises(HwcalError) as err:
        check_identity(_zen3_spec(), collect_cpu(machine("vm_epyc_zen4")), key, "amd_epyc_zen4")
    text = str(err.value)
    assert "zen3" in text and "zen4" in text and "--hardware-id ID" in text and "amd_epyc_zen4" in text


def test_check_before_run_refuses_a_zen4_into_the_zen3_folder(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    folder = registry / "cpu" / "amd_epyc_zen3"
    folder.mkdir(parents=True)
    (folder / "spec.json").write_text(dumps(_zen3_spec()))
    opts = CalibrationOptions(None, "numpy", "cpu", 2445, "amd_epyc_zen3", registry, True, None, 1.0, 1.0,
                              False, False)
    cal = CalibrationSession(opts)
    cal.machine_state = start_machine_state(cal, machine("vm_epyc_zen4"))
    try:
        with pytest.raises(HwcalError, match=r"describes a zen3 .*this machine is a zen4.*--hardware-id ID"):
            check_before_run(cal, {"partial": False})
        # Its own id is accepted (no spec yet: the first run creates it).
        cal_own = CalibrationSession(CalibrationOptions(None, "numpy", "cpu", 2445, None, registry, True, None, 1.0,
                                                        1.0, False, False))
        cal_own.machine_state = start_machine_state(cal_own, machine("vm_epyc_zen4"))
        check_before_run(cal_own, {"partial": False})
        cal_own.machine_state.monitor.stop()
    finally:
        cal.machine_state.monitor.stop()


def test_this_machine_has_a_microarchitecture_or_says_why() -> None:
    cpu = collect_host()["cpu"]
    assert cpu.get("microarchitecture") or "unknown" in str(cpu.get("microarchitecture_source", "unknown"))
