"""Power-mode detection: a chain of sources, the first that answers wins, and the source is kept.

Order: ``--power-mode`` (applied by the caller), Jetson ``nvpmodel -q``, the enforced NVML power
limit of the GPU being calibrated, the Linux cpufreq governor (CPUs only), ACPI
``platform_profile``, the Windows active power plan, macOS low-power mode, else ``default``.
Every source that was tried and did not answer leaves a note, so a reader can see why a mode
was (or was not) found. Nothing here raises for a missing file or command.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from hwcal.machine.cpu import cpufreq_governor
from hwcal.machine.sources import Sources

DEFAULT_MODE = "default"

# Windows' built-in plans, by GUID: a plan named in another script (e.g. Chinese) still gets a token.
_WINDOWS_PLANS = {
    "381b4222-f694-41f0-9685-ff5bb260df2e": "Balanced",
    "8c5e7fda-e8bf-4a96-9a85-a6e23a8c635c": "High performance",
    "a1841308-3bcb-4aeb-b7d4-bd8e1e3f8b2c": "Power saver",
    "e9a42b02-d5df-448d-aa00-03f14749eb61": "Ultimate Performance",
}
_JETSON_RE = re.compile(
    r"Jetson\s+(AGX\s+Orin|Orin\s+NX|Orin\s+Nano|AGX\s+Thor|Thor|AGX\s+Xavier|Xavier\s+NX|Nano|TX2)", re.I)
_GUID_RE = re.compile(r"([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\s*(?:\((.*)\))?")


@dataclass(frozen=True)
class PowerMode:
    """A detected power mode: ``name`` is safe for the key (no path separators), ``raw`` as read."""

    name: str
    source: str
    mode_id: int | None = None
    raw: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"name": self.name, "source": self.source}
        if self.mode_id is not None:
            d["id"] = self.mode_id
        if self.raw is not None and self.raw != self.name:
            d["raw"] = self.raw
        if self.notes:
            d["notes"] = list(self.notes)
        return d


def clean_mode_name(raw: str) -> str:
    """A detected name made safe for the key: accents folded, path separators and '..' turned into spaces.

    The original stays in ``PowerMode.raw``; a name with no letters or digits left becomes ''.
    """
    folded = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode()
    folded = re.sub(r"[\\/]+|\.\.+", " ", folded)
    folded = re.sub(r"\s+", " ", folded).strip()
    return folded if re.search(r"[A-Za-z0-9]", folded) else ""


# ---- Jetson ---------------------------------------------------------------------------------------
def jetson_model(src: Sources) -> str | None:
    """The Jetson family ('Orin Nano', 'AGX Orin' ...) from the device tree, or None off a Jetson."""
    dt = src.read("/proc/device-tree/model") or src.read("/sys/firmware/devicetree/base/model")
    if dt:
        m = _JETSON_RE.search(dt.replace("\x00", " "))
        if m:
            return re.sub(r"\s+", " ", m.group(1)).strip()
    if src.read("/etc/nv_tegra_release"):
        return "unknown Jetson"
    return None


def parse_nvpmodel(text: str | None) -> tuple[str, int | None] | None:
    """``nvpmodel -q`` output -> (mode name, mode id); None when it names no mode.

    The output is ``NV Power Mode: <NAME>`` followed by the id on its own line, possibly after
    ``NVPM WARN`` lines and a fan-mode line. The name is taken from that line only: the original
    tool took the first digit anywhere and filed 15W, 25W and 7W as mode ids 15, 25 and 7.
    """
    if not text:
        return None
    lines = [ln.strip() for ln in text.splitlines()]
    for i, line in enumerate(lines):
        m = re.match(r"^NV Power Mode\s*:\s*(.*?)\s*$", line, re.I)
        if not m or not m.group(1):
            continue
        name = m.group(1)
        mode_id = None
        for nxt in lines[i + 1:]:
            if not nxt:
                continue
            if re.fullmatch(r"[0-9]+", nxt):
                mode_id = int(nxt)
            break
        return name, mode_id
    return None


def _nvpmodel_mode(src: Sources) -> tuple[PowerMode | None, str | None]:
    out = src.run("nvpmodel", "-q")
    if out is None:
        return None, "nvpmodel -q: not found or failed"
    parsed = parse_nvpmodel(out)
    if parsed is None:
        first = next((ln.strip() for ln in out.splitlines() if ln.strip()), "")
        return None, f"nvpmodel -q printed no 'NV Power Mode:' line (first line: {first[:80]!r})"
    raw, mode_id = parsed
    name = clean_mode_name(raw)
    if not name:
        return None, f"nvpmodel -q named mode {raw!r}, which has no letters or digits"
    return PowerMode(name, "nvpmodel -q", mode_id, raw), None


# ---- GPU, Linux, Windows, macOS -------------------------------------------------------------------
def _nvml_power_limit(gpu: dict[str, object] | None) -> tuple[PowerMode | None, str | None]:
    if gpu is None:
        return None, None
    limit = gpu.get("power_limit_w")
    if not isinstance(limit, (int, float)) or limit <= 0:
        return None, "NVML enforced power limit: unavailable"
    name = f"{round(float(limit))}W"
    default = gpu.get("power_default_limit_w")
    note = () if default in (None, limit) else (f"default power limit {default} W",)
    return PowerMode(name, "NVML enforced power limit", notes=note), None


def _linux_mode(src: Sources, device_type: str) -> tuple[PowerMode | None, list[str]]:
    notes: list[str] = []
    if device_type == "cpu":
        governor = cpufreq_governor(src)
        if governor and clean_mode_name(governor):
            return PowerMode(clean_mode_name(governor), "cpufreq scaling_governor", raw=governor), notes
        notes.append("cpufreq scaling_governor: absent (no cpufreq driver, e.g. a VM)")
    profile = src.read_first_line("/sys/firmware/acpi/platform_profile")
    if profile and clean_mode_name(profile):
        return PowerMode(clean_mode_name(profile), "ACPI platform_profile", raw=profile), notes
    notes.append("ACPI platform_profile: absent")
    return None, notes


def parse_powercfg(text: str | None) -> tuple[str, str] | None:
    """``powercfg /getactivescheme`` -> (GUID, plan name); the line is
    ``Power Scheme GUID: 381b4222-...  (Balanced)`` in every Windows language but the label."""
    if not text:
        return None
    m = _GUID_RE.search(text)
    if not m:
        return None
    return m.group(1).lower(), (m.group(2) or "").strip()


def _windows_mode(src: Sources) -> tuple[PowerMode | None, str | None]:
    parsed = parse_powercfg(src.run("powercfg", "/getactivescheme"))
    if parsed is None:
        return None, "powercfg /getactivescheme: no active scheme read"
    guid, label = parsed
    name = clean_mode_name(label) or _WINDOWS_PLANS.get(guid) or f"plan {guid[:8]}"
    return PowerMode(name, "Windows active power plan (powercfg)", raw=label or guid,
                     notes=(f"plan GUID {guid}",)), None


def _macos_mode(src: Sources) -> tuple[PowerMode | None, str | None]:
    out = src.run("pmset", "-g")
    m = re.search(r"^\s*lowpowermode\s+([01])\s*$", out or "", re.M)
    if not m:
        return None, "pmset -g: no lowpowermode setting"
    return PowerMode("LowPower" if m.group(1) == "1" else "Normal", "macOS pmset lowpowermode"), None


def detect_power_mode(src: Sources, *, device_type: str = "cpu", gpu: dict[str, object] | None = None,
                      override: str | None = None) -> PowerMode:
    """The power mode, first source that answers wins; never raises.

    On a Jetson whose ``nvpmodel`` cannot be read the mode is ``unknown`` (not the governor: the
    old registry filed Jetson runs as ``schedutil``), and the preflight check stops the run.
    """
    if override:
        return PowerMode(override, "--power-mode")
    notes: list[str] = []
    if jetson_model(src):
        mode, note = _nvpmodel_mode(src)
        if mode is not None:
            return mode
        return PowerMode("unknown", "nvpmodel unreadable on a Jetson", notes=(note or "",))
    mode, note = _nvml_power_limit(gpu)
    if mode is not None:
        return mode
    if note:
        notes.append(note)
    system = src.os_name()
    if system == "Linux":
        mode, linux_notes = _linux_mode(src, device_type)
        notes.extend(linux_notes)
    elif system == "Windows":
        mode, note = _windows_mode(src)
        notes.append(note or "")
    elif system == "Darwin":
        mode, note = _macos_mode(src)
        notes.append(note or "")
    if mode is not None:
        return PowerMode(mode.name, mode.source, mode.mode_id, mode.raw, mode.notes + tuple(n for n in notes if n))
    return PowerMode(DEFAULT_MODE, f"no power-mode source answered on {system or 'this OS'}",
                     notes=tuple(n for n in notes if n))
