"""CPU microarchitecture from /proc/cpuinfo, and the dense FLOPs per cycle per core it can issue.

The ISA flags alone cannot give a peak: Zen 4 runs AVX-512 on 256-bit datapaths (16 fp64
FLOPs/cycle, not 32), a Xeon Silver has one 512-bit FMA unit where a Xeon Platinum has two, and a
hypervisor hides flags (this project's EPYC VM lacks ``pku``, so archspec's flag matcher calls a
Zen 4 ``x86_64_v4``). So x86 is identified by CPUID family/model (which VMs pass through), Arm by
implementer/part, Apple by its brand string; archspec's flag matcher, fed the parsed flags, names
what the tables do not know. Never raises: unknown gives ``name=None`` and ``source`` says why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hwcal.machine.identity import live_flags, verify_identity
from hwcal.machine.sources import LOCAL, Sources

# ISA flags that decide a peak, in /proc/cpuinfo spelling (x86 "flags", Arm "Features").
ISA_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
             "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "amx_fp16", "asimd", "fphp",
             "asimdhp", "asimddp", "asimdfhm", "sve", "sve2", "svebf16", "svei8mm", "bf16", "i8mm", "sme")


@dataclass(frozen=True)
class Microarch:
    """Identity of the CPU's cores. ``name`` uses archspec's names where archspec has one."""

    name: str | None
    vendor: str | None = None
    family: int | None = None          # x86 CPUID family, model, stepping (decimal, as cpuinfo prints)
    model: int | None = None
    stepping: int | None = None
    implementer: str | None = None     # Arm MIDR fields, as cpuinfo prints them ("0x41", "0xd42")
    part: str | None = None
    variant: str | None = None
    revision: str | None = None
    flags: tuple[str, ...] = ()
    model_name: str | None = None
    model_name_built: bool = False     # True when built from ids (no "model name" line): generic for ids
    archspec_name: str | None = None   # archspec's flag matcher on the same flags (may be generic)
    source: str = ""


# AMD family -> (model ranges, name); Linux arch/x86/kernel/cpu/amd.c (bsp_init_amd: X86_FEATURE_ZEN1..5).
_AMD: dict[int, list[tuple[int, int, str]]] = {
    0x17: [(0x00, 0x2F, "zen"), (0x50, 0x5F, "zen"), (0x30, 0x4F, "zen2"), (0x60, 0x7F, "zen2"),
           (0x90, 0x91, "zen2"), (0xA0, 0xAF, "zen2")],
    0x19: [(0x00, 0x0F, "zen3"), (0x20, 0x5F, "zen3"), (0x10, 0x1F, "zen4"), (0x60, 0xAF, "zen4")],
    0x1A: [(0x00, 0x4F, "zen5"), (0x60, 0x7F, "zen5")],
    0x18: [(0x00, 0xFF, "zen")],  # Hygon Dhyana: a licensed Zen 1
}
# Intel family 6 model -> name; Linux arch/x86/include/asm/intel-family.h. 0x55 splits by stepping below.
_INTEL6: dict[int, str] = {
    0x3C: "haswell", 0x3F: "haswell", 0x45: "haswell", 0x46: "haswell",
    0x3D: "broadwell", 0x47: "broadwell", 0x4F: "broadwell", 0x56: "broadwell",
    0x4E: "skylake", 0x5E: "skylake", 0x8E: "skylake", 0x9E: "skylake", 0xA5: "skylake", 0xA6: "skylake",
    0x6A: "icelake", 0x6C: "icelake", 0x7D: "icelake", 0x7E: "icelake", 0x8C: "icelake", 0x8D: "icelake",
    0xA7: "icelake",  # Rocket Lake: Cypress Cove, a Sunny Cove back-port
    0x8F: "sapphirerapids", 0xCF: "sapphirerapids",  # Emerald Rapids: same Raptor Cove core
    0x97: "alderlake", 0x9A: "alderlake", 0xB7: "alderlake", 0xBA: "alderlake", 0xBF: "alderlake",
    0xC5: "arrowlake", 0xC6: "arrowlake",
}
_INTEL_CLIENT_AVX512 = {0x7D, 0x7E, 0x8C, 0x8D, 0xA7}  # Ice/Tiger/Rocket Lake client: one 512-bit FMA
# Arm (implementer, part) -> (name, core); Arm TRMs' MIDR values, Linux arch/arm64/include/asm/cputype.h.
_ARM: dict[tuple[str, str], tuple[str, str]] = {
    ("0x41", "0xd03"): ("cortex_a53", "ARM Cortex-A53"), ("0x41", "0xd05"): ("cortex_a55", "ARM Cortex-A55"),
    ("0x41", "0xd08"): ("cortex_a72", "ARM Cortex-A72"), ("0x41", "0xd0b"): ("cortex_a76", "ARM Cortex-A76"),
    ("0x41", "0xd0c"): ("neoverse_n1", "ARM Neoverse-N1"), ("0x41", "0xd40"): ("neoverse_v1", "ARM Neoverse-V1"),
    ("0x41", "0xd41"): ("cortex_a78", "ARM Cortex-A78"), ("0x41", "0xd42"): ("cortex_a78ae", "ARM Cortex-A78AE"),
    ("0x41", "0xd49"): ("neoverse_n2", "ARM Neoverse-N2"), ("0x41", "0xd4f"): ("neoverse_v2", "ARM Neoverse-V2"),
    ("0x46", "0x001"): ("a64fx", "Fujitsu A64FX"), ("0xc0", "0xac3"): ("ampere1", "Ampere AmpereOne"),
    ("0x61", "0x022"): ("m1", "Apple M1 Icestorm"), ("0x61", "0x023"): ("m1", "Apple M1 Firestorm"),
}

# Dense FLOPs (int8: OPs) per cycle per core. FMA = 2 FLOPs; a dot-product lane (VDPBF16PS, SDOT, BFDOT)
# counts its multiplies and adds. Only natively executed precisions are listed.
FLOPS_PER_CYCLE_PER_CORE: dict[str, dict[str, float]] = {
    # AMD SOG for family 17h (pub. 55723) sec. 2.11: two 128-bit FMA pipes (FP0, FP1); 256-bit ops split.
    "zen": {"fp64": 8, "fp32": 16},
    # AMD SOG family 17h models 30h+ (pub. 56305) sec. 2.11: two 256-bit FMA pipes.
    "zen2": {"fp64": 16, "fp32": 32},
    # AMD SOG family 19h (pub. 56665) sec. 2.11: two 256-bit FMA pipes, unchanged from Zen 2.
    "zen3": {"fp64": 16, "fp32": 32},
    # AMD SOG family 19h models 10h+ (pub. 57647) sec. 2.11: AVX-512 on the two 256-bit FMA pipes, a zmm op
    # takes both halves (Mysticial's Zen 4 AVX-512 teardown; measured here: 512-bit = 256-bit). bf16:
    # VDPBF16PS ymm 8 lanes x 2 pairs x 2 = 32 FLOPs, 2 per cycle; int8: VPDPBUSD ymm 8 x 4 x 2 = 64 OPs,
    # 2 per cycle (uops.info Zen 4 reciprocal throughput 0.5 for both, ymm; not re-measured here).
    "zen4": {"fp64": 16, "fp32": 32, "bf16": 64, "int8": 128},
    # AMD SOG family 1Ah (pub. 58455) sec. 2.11 and Mysticial's Zen 5 teardown: full 512-bit FMA datapaths
    # (desktop/server); mobile Strix/Krackan Point keep 256-bit ones (halved in peak_flops_per_cycle).
    "zen5": {"fp64": 32, "fp32": 64, "bf16": 128, "int8": 256},
    # Intel Optimization Reference Manual (248966) ch. 2 (Haswell/Broadwell/Skylake client): two 256-bit
    # FMA units, ports 0 and 1.
    "haswell": {"fp64": 16, "fp32": 32},
    "broadwell": {"fp64": 16, "fp32": 32},
    "skylake": {"fp64": 16, "fp32": 32},
    # Intel ORM sec. 2.x Skylake Server: ports 0+1 fuse to one 512-bit FMA, port 5 is the second on
    # Platinum / Gold 6xxx (one unit on Silver, Bronze, Gold 5xxx: see _avx512_fma_units).
    "skylake_avx512": {"fp64": 32, "fp32": 64},
    # as Skylake-SP plus AVX-512 VNNI: VPDPBUSD zmm 16 x 4 x 2 = 128 OPs, 2 per cycle (Intel ORM, VNNI).
    "cascadelake": {"fp64": 32, "fp32": 64, "int8": 256},
    # Intel ORM, Ice Lake (Sunny Cove): server parts have two 512-bit FMA units; client parts one.
    "icelake": {"fp64": 32, "fp32": 64, "int8": 256},
    # Intel ORM ch. 20 (AMX) and Intel Architecture Day 2021: AMX TMUL 1024 bf16 FLOPs and 2048 int8 OPs
    # per cycle per core; AVX-512 FP16 2 x 32 lanes x 2 = 128; two 512-bit FMA units.
    "sapphirerapids": {"fp64": 32, "fp32": 64, "fp16": 128, "bf16": 1024, "int8": 2048},
    # Intel ORM, Golden Cove with AVX-512 fused off: two 256-bit FMA (ports 0, 1); AVX-VNNI VPDPBUSD ymm
    # 64 OPs x 2 per cycle. Gracemont E-cores (2 x 128-bit FMA: 8/16) are not counted: see "gracemont".
    "alderlake": {"fp64": 16, "fp32": 32, "int8": 128},
    "arrowlake": {"fp64": 16, "fp32": 32, "int8": 128},
    # Intel ORM, Gracemont (E-core): two 128-bit FMA pipes; 256-bit ops split.
    "gracemont": {"fp64": 8, "fp32": 16},
    # Cortex-A72 Software Optimization Guide sec. 3: FMLA (Q-form) throughput 1/cycle over the F0/F1 pipes.
    "cortex_a72": {"fp64": 4, "fp32": 8},
    # Cortex-A76 / A78 / A78AE SOGs sec. 3 (ASIMD floating point): two 128-bit FMA pipes (V0, V1);
    # FMLA .8h with FEAT_FP16 twice the fp32 rate; SDOT 16 MACs = 32 OPs per 128-bit, 2 per cycle.
    # Cortex-A78AE is the Jetson AGX Orin / Orin NX / Orin Nano CPU.
    "cortex_a76": {"fp64": 8, "fp32": 16, "fp16": 32, "int8": 64},
    "cortex_a78": {"fp64": 8, "fp32": 16, "fp16": 32, "int8": 64},
    "cortex_a78ae": {"fp64": 8, "fp32": 16, "fp16": 32, "int8": 64},
    # Arm Neoverse N1 SOG sec. 3.x: two 128-bit ASIMD/FP pipes (V0, V1), FMLA throughput 2.
    "neoverse_n1": {"fp64": 8, "fp32": 16, "fp16": 32, "int8": 64},
    # Arm Neoverse N2 SOG: two 128-bit SVE2/ASIMD pipes; BFDOT = 2 x fp32 rate.
    "neoverse_n2": {"fp64": 8, "fp32": 16, "fp16": 32, "bf16": 32, "int8": 64},
    # Arm Neoverse V1 SOG sec. 3.x: four 128-bit ASIMD FMA pipes or two 256-bit SVE; BFDOT 2 x fp32, SDOT
    # 4 x fp32 (I8MM SMMLA can exceed it; not counted).
    "neoverse_v1": {"fp64": 16, "fp32": 32, "fp16": 64, "bf16": 64, "int8": 128},
    # Arm Neoverse V2 SOG sec. 3.x: four 128-bit SVE2/ASIMD FMA pipes (V0..V3); BFDOT, SDOT as V1.
    # NVIDIA Grace's core.
    "neoverse_v2": {"fp64": 16, "fp32": 32, "fp16": 64, "bf16": 64, "int8": 128},
    # Fujitsu A64FX Microarchitecture Manual: two 512-bit SVE FMA pipes.
    "a64fx": {"fp64": 32, "fp32": 64, "fp16": 128},
    # AmpereOne: Ampere's product brief, two 128-bit FP/ASIMD pipes.
    "ampere1": {"fp64": 8, "fp32": 16, "fp16": 32, "int8": 64},
    # Apple M1..M4 P-cores (Firestorm, Avalanche, Everest, M4 P): Dougall Johnson's Firestorm tables,
    # four 128-bit FMA pipes, FMLA throughput 4; fp16 twice fp32; SDOT 4 x fp32. E-cores not counted.
    "m1": {"fp64": 16, "fp32": 32, "fp16": 64, "int8": 128},
    "m2": {"fp64": 16, "fp32": 32, "fp16": 64, "bf16": 64, "int8": 128},
    "m3": {"fp64": 16, "fp32": 32, "fp16": 64, "bf16": 64, "int8": 128},
    "m4": {"fp64": 16, "fp32": 32, "fp16": 64, "bf16": 64, "int8": 128},
}


def _table_source(name: str) -> str:
    if name.startswith("zen"):
        return "AMD Software Optimization Guide for the family"
    if name.startswith(("cortex", "neoverse")):
        return "Arm Software Optimization Guide for the core"
    if re.fullmatch(r"m\d", name):
        return "Dougall Johnson's Apple Firestorm instruction tables"
    if name in ("a64fx", "ampere1"):
        return "the vendor's microarchitecture manual"
    return "Intel Optimization Reference Manual (248966)"


_GENERIC_MODEL_RE = re.compile(
    r"qemu|kvm|virtual|common .*processor|^(aarch64|armv\d+l?) processor|^unknown", re.IGNORECASE)
_BRAND_WORDS = {"amd", "intel", "epyc", "xeon", "ryzen", "core", "processor", "cpu", "genuineintel",
                "authenticamd", "arm", "scalable", "family"}


def is_generic_model_name(name: str | None) -> bool:
    """True for model strings that name no chip: a VM's "AMD EPYC", "Intel Xeon Processor (Icelake)",
    "QEMU Virtual CPU version 2.5+", "Intel(R) Xeon(R) CPU @ 2.20GHz", an Arm "AArch64 Processor rev 1",
    an empty one: once brand words, the clock and parenthesised notes are dropped, nothing is left."""
    if not name or not name.strip():
        return True
    if _GENERIC_MODEL_RE.search(name.strip()):
        return True
    stripped = re.sub(r"@\s*[0-9.]+\s*[GM]Hz|\([^)]*\)", " ", name)
    return not [w for w in re.split(r"[\s\-_,]+", stripped.lower()) if w and w not in _BRAND_WORDS]


def hardware_id_suffix(uarch: Microarch, model_name: str | None = None) -> str | None:
    """The microarchitecture name to join a hardware id built from a generic model string
    (``amd_epyc`` + ``zen4``); None when the model string names the chip or the uarch is unknown.
    ``model_name`` is the string the id is built from (default: the cpuinfo model name)."""
    if model_name is None and not uarch.model_name_built:
        model_name = uarch.model_name
    return uarch.name if uarch.name and is_generic_model_name(model_name) else None


def _first_blocks(text: str) -> list[dict[str, str]]:
    blocks: list[dict[str, str]] = []
    for chunk in text.strip().split("\n\n"):
        block = {k.strip(): v.strip() for k, sep, v in (line.partition(":") for line in chunk.splitlines()) if sep}
        if block:
            blocks.append(block)
    return blocks


def _int(value: str | None) -> int | None:
    try:
        if value is None:
            return None
        return int(value, 16) if value.lower().startswith("0x") else int(value)
    except ValueError:
        return None


def _x86_name(vendor: str, family: int | None, model: int | None, stepping: int | None) -> str | None:
    if family is None or model is None:
        return None
    if vendor == "AuthenticAMD" or vendor == "HygonGenuine":
        return next((n for lo, hi, n in _AMD.get(family, []) if lo <= model <= hi), None)
    if vendor == "GenuineIntel" and family == 6:
        if model == 0x55:  # Skylake-SP stepping 0-4, Cascade Lake 5-7, Cooper Lake 10-11 (no own entry)
            return "skylake_avx512" if (stepping or 0) < 5 else "cascadelake"
        return _INTEL6.get(model)
    return None


def _archspec_match(arch: str, vendor: str, flags: set[str], cpu_part: str) -> str | None:
    """archspec's own host-selection rule (``archspec.cpu.detect.host``) applied to parsed cpuinfo
    instead of the live /proc/cpuinfo. None when archspec is missing or its internals changed."""
    try:
        from archspec.cpu import TARGETS, detect
    except ImportError:
        return None
    try:
        info = detect.partial_uarch(vendor=vendor, features=flags, cpu_part=cpu_part)
        check = detect.COMPATIBILITY_CHECKS[arch]
        candidates = [t for t in TARGETS.values() if check(info, t)] or [TARGETS[arch]]
        key = lambda t: (len(t.ancestors), len(t.features))  # noqa: E731
        best_generic = max((c for c in candidates if c.vendor == "generic"), key=key)
        if cpu_part and any(c.cpu_part == cpu_part for c in candidates):
            candidates = [c for c in candidates if c.cpu_part == cpu_part]
        specific = [c for c in candidates if c > best_generic]
        return str(max(specific, key=key).name if specific else best_generic.name)
    except Exception:  # archspec internals are not a public API: any change means "no answer"
        return None


def _is_generic_archspec(name: str | None) -> bool:
    return not name or bool(re.fullmatch(r"x86(_64(_v\d)?)?|aarch64|armv[0-9.]+a|arm|generic", name))


def _masked_amx(vendor: str, name: str, flags: set[str]) -> bool:
    """A pre-AMX Intel model beside AMX flags: a hypervisor's mask (a KVM guest here: model 167 + amx_tile)."""
    return vendor == "GenuineIntel" and "amx_tile" in flags and name not in {"sapphirerapids", "graniterapids",
                                                                              "emeraldrapids"}


def detect_microarchitecture(src: Sources = LOCAL) -> Microarch:
    """The CPU's microarchitecture from ``src``'s /proc/cpuinfo (macOS: sysctl brand string; Windows:
    the wmic Caption's family/model). Never raises."""
    text = src.read("/proc/cpuinfo")
    verdict = verify_identity(src)
    if verdict.conflict:  # a cpuinfo that is not this CPU's names nothing: generic, flags from the CPU itself
        flags = tuple(f for f in ISA_FLAGS if f in live_flags(src)) if src.is_local else ()
        return Microarch(None, flags=flags, source=f"generic: CPU identity conflict ({verdict.conflict})")
    if not text or not text.strip():
        return _other_os(src)
    blocks = _first_blocks(text)
    first = blocks[0] if blocks else {}
    if "CPU implementer" in first:
        return _arm(blocks)
    vendor = first.get("vendor_id", "")
    all_flags = set(first.get("flags", "").split())
    family, model, stepping = _int(first.get("cpu family")), _int(first.get("model")), _int(first.get("stepping"))
    flags = tuple(f for f in ISA_FLAGS if f in all_flags)
    model_name = re.sub(r"\s+", " ", first.get("model name", "")).strip() or None
    spec = _archspec_match("x86_64", vendor, all_flags, "") if vendor else None
    name = _x86_name(vendor, family, model, stepping)
    ids = f"{vendor or 'no vendor_id'} family {family} model {model} stepping {stepping}"
    if name and _masked_amx(vendor, name, all_flags):
        source = (f"CPUID reports {ids} ({name}), but the flags list AMX (amx_tile), which only Sapphire Rapids "
                  "and later Xeon cores have: a hypervisor's virtual CPU model; the AMX server core is taken "
                  f"(two 512-bit FMA units per core); archspec on the flags: {spec}")
        name = "sapphirerapids"
    elif name:
        source = f"CPUID {ids} (Linux amd.c / intel-family.h ranges); archspec on the flags: {spec}"
    elif spec and not _is_generic_archspec(spec):
        name, source = spec, f"archspec on the cpuinfo flags ({ids} not in the family/model table)"
    else:
        source = f"unknown: {ids} not in the family/model table; archspec on the flags: {spec or 'unavailable'}"
    return Microarch(name, vendor or None, family, model, stepping, flags=flags, model_name=model_name,
                     archspec_name=spec, source=source)


def _arm(blocks: list[dict[str, str]]) -> Microarch:
    """Arm: implementer/part; on a big.LITTLE board the core type with the highest fp32 rate."""
    cores = [b for b in blocks if "CPU implementer" in b]
    kinds = {(b["CPU implementer"].lower(), b.get("CPU part", "").lower()) for b in cores}
    known = [k for k in kinds if k in _ARM]
    rate = lambda k: FLOPS_PER_CYCLE_PER_CORE.get(_ARM[k][0], {}).get("fp32", 0)  # noqa: E731
    chosen = max(known, key=rate) if known else sorted(kinds)[0]
    block = next(b for b in cores if (b["CPU implementer"].lower(), b.get("CPU part", "").lower()) == chosen)
    features = set(block.get("Features", "").split())
    flags = tuple(f for f in ISA_FLAGS if f in features)
    cpuinfo_name = block.get("model name")
    spec = _archspec_match("aarch64", _arm_vendor(chosen[0]), features, chosen[1])
    name, built = _ARM.get(chosen, (None, f"Arm implementer {chosen[0]} part {chosen[1]}"))
    mixed = f"; core types {sorted(kinds)}, the fastest chosen" if len(kinds) > 1 else ""
    if name:
        source = f"MIDR implementer {chosen[0]} part {chosen[1]} (Arm TRM part numbers){mixed}; archspec: {spec}"
    elif spec and not _is_generic_archspec(spec):
        name, source = spec, f"archspec on the cpuinfo Features (part {chosen[1]} not in the table){mixed}"
    else:
        source = f"unknown: implementer {chosen[0]} part {chosen[1]} not in the table{mixed}; archspec: {spec}"
    return Microarch(name, _arm_vendor(chosen[0]), implementer=chosen[0], part=chosen[1],
                     variant=block.get("CPU variant"), revision=block.get("CPU revision"), flags=flags,
                     model_name=cpuinfo_name or built, model_name_built=not cpuinfo_name,
                     archspec_name=spec, source=source)


def _arm_vendor(implementer: str) -> str:
    return {"0x41": "ARM", "0x46": "Fujitsu", "0x4e": "NVIDIA", "0x61": "Apple", "0xc0": "Ampere",
            "0x48": "HiSilicon", "0x51": "Qualcomm"}.get(implementer, implementer)


def _other_os(src: Sources) -> Microarch:
    system = src.os_name()
    if system == "Darwin":
        brand = (src.run("sysctl", "-n", "machdep.cpu.brand_string") or "").strip()
        m = re.search(r"Apple M(\d+)", brand)
        if m:
            name = f"m{min(int(m.group(1)), 4)}"
            flags = ("asimd", "fphp", "asimdhp", "asimddp") + (("bf16", "i8mm") if name != "m1" else ())
            return Microarch(name, "Apple", flags=flags, model_name=brand,
                             source=f"sysctl machdep.cpu.brand_string {brand!r} (M5+ use the M4 entry)")
        return Microarch(None, model_name=brand or None, source=f"unknown: macOS brand string {brand!r}")
    if system == "Windows":
        vals = {k: _wmic(src, k) or "" for k in ("Caption", "Manufacturer", "Name")}
        m = re.search(r"Family (\d+) Model (\d+) Stepping (\d+)", vals.get("Caption", ""))
        if m:
            fam, mod, step = (int(g) for g in m.groups())
            vendor = vals.get("Manufacturer") or ""
            found = _x86_name(vendor, fam, mod, step)
            why = "wmic Caption family/model" if found else "unknown: wmic family/model not in the table"
            return Microarch(found, vendor or None, fam, mod, step, model_name=vals.get("Name") or None,
                             source=why)
    return Microarch(None, source=f"unknown: no /proc/cpuinfo and no {system} identity source")


def _wmic(src: Sources, key: str) -> str | None:
    m = re.search(rf"^{key}=(.+?)\s*$", src.run("wmic", "cpu", "get", key, "/value") or "", re.M)
    return m.group(1).strip() if m else None


def _isa_rule(flags: set[str]) -> tuple[dict[str, float], str]:
    """Today's flag rule (document/peaks.py), kept here so machine/ depends on nothing above it."""
    if "avx512f" in flags:
        table: dict[str, float] = {"fp64": 32, "fp32": 64}
        table |= {"fp16": 128} if "avx512_fp16" in flags else {}
        table |= {"int8": 256} if "avx512_vnni" in flags else {}
        return table, "ISA-flag rule (AVX-512 assumed full width)"
    if "avx2" in flags and "fma" in flags:
        return {"fp64": 16, "fp32": 32}, "ISA-flag rule (AVX2+FMA, two 256-bit FMA pipes)"
    if "avx" in flags:
        return {"fp64": 8, "fp32": 16}, "ISA-flag rule (AVX, separate add and multiply)"
    if "asimd" in flags:
        table = {"fp64": 8, "fp32": 16}
        table |= {"fp16": 32} if {"asimdhp", "fphp"} & flags else {}
        return table, "ISA-flag rule (NEON, two 128-bit FMA pipes assumed)"
    return {}, "ISA-flag rule: no vector FMA flag known"


def _avx512_fma_units(uarch: Microarch, sku: str) -> tuple[int, str]:
    """512-bit FMA units on Intel AVX-512 cores: Intel ORM / Xeon Scalable product briefs. Skylake-SP
    and Cascade Lake: two on Platinum and Gold 6xxx, one on Silver, Bronze and Gold 5xxx (Gold 5122 and
    5222 are the documented exceptions with two); client Ice/Tiger/Rocket Lake: one."""
    if uarch.name == "icelake" and uarch.model in _INTEL_CLIENT_AVX512:
        return 1, "client Ice/Tiger/Rocket Lake: one 512-bit FMA unit"
    if uarch.name in ("skylake_avx512", "cascadelake"):
        if re.search(r"\b(Silver|Bronze)\b", sku) or (re.search(r"Gold\s+5\d{3}", sku)
                                                       and not re.search(r"Gold\s+5[12]22", sku)):
            return 1, "Xeon Silver/Bronze/Gold 5xxx: one 512-bit FMA unit"
        if not re.search(r"Platinum|Gold|W-\d", sku):
            return 2, "SKU not recognised in the model name: two 512-bit FMA units assumed"
    return 2, ""


def peak_flops_per_cycle(uarch: Microarch, sku_hint: str | None = None) -> tuple[dict[str, float], str]:
    """Dense FLOPs (int8: OPs) per cycle per core by precision, and the basis naming where it came from.
    ``sku_hint`` (default: the model name) separates SKUs of one microarchitecture."""
    table = FLOPS_PER_CYCLE_PER_CORE.get(uarch.name or "")
    if table is None:
        rates, rule = _isa_rule(set(uarch.flags))
        return rates, f"unknown microarchitecture {uarch.name or 'unknown'}: {rule}, marked"
    rates = dict(table)
    name = uarch.name or ""
    basis = f"FLOPS_PER_CYCLE_PER_CORE[{name!r}] ({_table_source(name)}; see the entry's comment)"
    sku = sku_hint or uarch.model_name or ""
    units, why = _avx512_fma_units(uarch, sku)
    if units == 1:
        rates["fp64"], rates["fp32"] = rates["fp64"] / 2, rates["fp32"] / 2
        rates |= {"int8": rates["int8"] / 2} if "int8" in rates else {}
    if name == "zen5" and uarch.model is not None and (0x20 <= uarch.model <= 0x2F or 0x60 <= uarch.model <= 0x6F):
        rates = {p: v / 2 for p, v in rates.items()}
        why = "mobile Zen 5 (Strix/Krackan Point): 256-bit FP datapaths"
    return rates, f"{basis}; {why}" if why else basis


def x86_microarchitecture(vendor: str, family: int | None, model: int | None,
                          stepping: int | None = None) -> str | None:
    """The microarchitecture of recorded CPUID ids (``AuthenticAMD``, 25, 1 -> ``zen3``); None if unknown."""
    return _x86_name(vendor, family, model, stepping)
