"""Identity that checks itself: /proc/cpuinfo, platform.machine() and the CPU's own id register (Arm MIDR,
x86 CPUID) must name one CPU, and an emulator is named, never filed as the chip it pretends to be.

Why: under QEMU user mode (an arm64 root file system on an x86 host) /proc/cpuinfo is the host's, so a
run took the host's x86 identity (``amd_epyc_zen4``, AVX-512 flags, Zen 4 peaks) while running aarch64
code. /proc/cpuinfo is written by the running kernel for the CPU it runs on: a process whose own ISA
differs from it is emulated (or reads a cpuinfo passed through from elsewhere). The id register, read by
the process itself, is the third voice: QEMU's 'max' CPU answers MIDR implementer 0 part 0x051 ('Q').

``verify_identity`` decides; a conflict means the CPU facts cannot be trusted (the run stops in preflight,
or with ``--force`` files under ``generic_hardware_id``); an emulator means speeds mean nothing (stops,
or with ``--force`` is filed flagged). Never raises.
"""

from __future__ import annotations

import ctypes
import functools
import platform
import re
from dataclasses import dataclass, field

from hwcal.machine.cpuclock import executable, native_arch
from hwcal.machine.isa import A64_READ_MIDR, A64_SVE_BYTES, X86_CPUID
from hwcal.machine.sources import LOCAL, Sources
from hwcal.naming import hardware_id_token

_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "i686": "x86_64", "i386": "x86_64", "aarch64": "aarch64",
         "arm64": "aarch64", "armv8l": "aarch64", "armv7l": "aarch64"}
# Linux arch/arm64/include/uapi/asm/hwcap.h, bit -> the name /proc/cpuinfo "Features" prints.
_HWCAP = ("fp", "asimd", "evtstrm", "aes", "pmull", "sha1", "sha2", "crc32", "atomics", "fphp", "asimdhp", "cpuid",
          "asimdrdm", "jscvt", "fcma", "lrcpc", "dcpop", "sha3", "sm3", "sm4", "asimddp", "sha512", "sve", "asimdfhm",
          "dit", "uscat", "ilrcpc", "flagm", "ssbs", "sb", "paca", "pacg")
_HWCAP2 = ("dcpodp", "sve2", "sveaes", "svepmull", "svebitperm", "svesha3", "svesm4", "flagm2", "frint", "svei8mm",
           "svef32mm", "svef64mm", "svebf16", "i8mm", "bf16", "dgh", "rng", "bti", "mte")
_AT_HWCAP, _AT_HWCAP2 = 16, 26
_QEMU_MAX_MIDR = ("0x00", "0x051")  # target/arm/cpu64.c aarch64_max_initfn: implementer 0, part 'Q'
_EMULATING_HYPERVISORS = {"TCGTCGTCGTCG": "QEMU TCG (CPUID hypervisor leaf)"}
_MIDR_SYSFS = "/sys/devices/system/cpu/{cpu}/regs/identification/midr_el1"


@dataclass(frozen=True)
class LiveIds:
    """What this process's CPU says about itself (local machine only)."""

    arch: str | None = None
    flags: tuple[str, ...] = ()        # aarch64: AT_HWCAP/AT_HWCAP2 in cpuinfo spelling
    midr: int | None = None            # aarch64: MIDR_EL1 as the process reads it
    sve_bytes: int | None = None       # aarch64: SVE vector length
    cpuid: tuple[str, int, int] | None = None  # x86: vendor, family, model as Linux derives them
    hypervisor: str | None = None      # x86: CPUID leaf 0x40000000 signature, when the hypervisor bit is set
    notes: tuple[str, ...] = ()


def midr_fields(midr: int) -> tuple[str, str]:
    """(implementer, part) as /proc/cpuinfo prints them ("0x41", "0xd42")."""
    return f"0x{(midr >> 24) & 0xFF:02x}", f"0x{(midr >> 4) & 0xFFF:03x}"


def _read_arm(libc: ctypes.CDLL) -> LiveIds:
    libc.getauxval.restype, libc.getauxval.argtypes = ctypes.c_ulong, [ctypes.c_ulong]
    hwcap, hwcap2 = int(libc.getauxval(_AT_HWCAP)), int(libc.getauxval(_AT_HWCAP2))
    flags = tuple(n for i, n in enumerate(_HWCAP) if hwcap >> i & 1)
    flags += tuple(n for i, n in enumerate(_HWCAP2) if hwcap2 >> i & 1)
    notes: list[str] = []
    midr = sve = None
    if "cpuid" in flags:  # without HWCAP_CPUID the kernel does not emulate the read: SIGILL
        fn, _page = executable(A64_READ_MIDR, ctypes.CFUNCTYPE(ctypes.c_uint64))
        midr = int(fn())
    else:
        notes.append("no HWCAP_CPUID: MIDR_EL1 not read")
    if "sve" in flags:
        fn, _page = executable(A64_SVE_BYTES, ctypes.CFUNCTYPE(ctypes.c_uint64))
        sve = int(fn())
    return LiveIds("aarch64", flags, midr, sve, notes=tuple(notes))


def _read_x86() -> LiveIds:
    fn, _page = executable(X86_CPUID, ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_void_p))
    regs = (ctypes.c_uint32 * 4)()

    def cpuid(leaf: int) -> tuple[int, int, int, int]:
        fn(leaf, ctypes.addressof(regs))
        return regs[0], regs[1], regs[2], regs[3]

    _, b, c, d = cpuid(0)
    vendor = b"".join(r.to_bytes(4, "little") for r in (b, d, c)).decode("ascii", "replace")
    eax, _, ecx, _ = cpuid(1)
    family = (eax >> 8) & 0xF
    family += (eax >> 20) & 0xFF if family == 0xF else 0
    model = ((eax >> 4) & 0xF) | ((((eax >> 16) & 0xF) << 4) if family >= 6 else 0)  # Linux x86_model()
    hypervisor = None
    if ecx >> 31 & 1:
        _, b, c, d = cpuid(0x40000000)
        hypervisor = b"".join(r.to_bytes(4, "little") for r in (b, c, d)).decode("ascii", "replace").rstrip("\x00")
    return LiveIds("x86_64", cpuid=(vendor, family, model), hypervisor=hypervisor)


@functools.lru_cache(maxsize=1)
def live_ids() -> LiveIds:
    """The id register and feature bits of this process's CPU, read once per process."""
    arch = native_arch()
    try:
        if arch == "aarch64":
            return _read_arm(ctypes.CDLL(None))
        if arch == "x86_64":
            return _read_x86()
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        return LiveIds(arch, notes=(f"id register unreadable ({type(exc).__name__}: {exc})",))
    return LiveIds(arch)


# ---- the decision -------------------------------------------------------------------------------------

def cpuinfo_arch(text: str | None) -> str | None:
    """"aarch64" for an Arm /proc/cpuinfo (CPU implementer lines), "x86_64" for an x86 one, else None."""
    if not text:
        return None
    if re.search(r"^CPU implementer\s*:", text, re.M):
        return "aarch64"
    if re.search(r"^(vendor_id|flags)\s*:", text, re.M):
        return "x86_64"
    return None


def _cpuinfo_ids(text: str) -> set[tuple[str, ...]]:
    """Arm (implementer, part) or x86 (vendor, family, model) of every core block."""
    ids: set[tuple[str, ...]] = set()
    for chunk in text.strip().split("\n\n"):
        kv = {k.strip(): v.strip() for k, sep, v in (ln.partition(":") for ln in chunk.splitlines()) if sep}
        if "CPU implementer" in kv:
            ids.add((kv["CPU implementer"].lower(), kv.get("CPU part", "").lower()))
        elif "vendor_id" in kv:
            ids.add((kv["vendor_id"], kv.get("cpu family", ""), kv.get("model", "")))
    return ids


def _describe(ids: set[tuple[str, ...]]) -> str:
    parts = [f"{i[0]} family {i[1]} model {i[2]}" if len(i) == 3 else f"implementer {i[0]} part {i[1]}"
             for i in sorted(ids)]
    return ", ".join(parts) or "no ids"


@dataclass(frozen=True)
class IdentityVerdict:
    """Whether the CPU facts can be trusted (``conflict`` says why not) and whether this is emulated."""

    machine: str | None
    cpuinfo_arch: str | None
    register: str | None = None
    conflict: str | None = None
    emulator: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def problem(self) -> str | None:
        """One line for the preflight: the conflict, else the emulator, else None."""
        if self.conflict:
            return f"CPU identity conflict: {self.conflict}"
        if self.emulator:
            return f"running under an emulator ({self.emulator}): speeds measured under emulation mean nothing"
        return None

    @property
    def advice(self) -> str:
        if self.conflict:
            return (f"calibrate natively on the machine itself; --force files this run under the generic id "
                    f"{generic_hardware_id(self.machine)}, flagged")
        return "calibrate natively on the board itself; --force files this run flagged as emulated"


def generic_hardware_id(machine: str | None) -> str:
    """The explicitly generic id a run with an unverifiable identity is filed under (``generic_aarch64``)."""
    return f"generic_{hardware_id_token(machine or 'unknown') or 'unknown'}"


def generic_model_name(machine: str | None) -> str:
    return f"generic {machine or 'unknown'} CPU (identity unverified)"


def judge(text: str | None, machine: str | None, sysfs_midrs: list[int], live: LiveIds | None,
          binfmt: str | None = None, maps: str | None = None) -> IdentityVerdict:
    """The verdict from what was read: cpuinfo ``text``, ``machine`` (platform.machine()), the kernel's
    midr_el1 files, the live id register, the binfmt_misc entry for qemu-<machine>, /proc/self/maps."""
    info_arch, mach_arch = cpuinfo_arch(text), _ARCH.get((machine or "").lower())
    ids = _cpuinfo_ids(text or "")
    conflicts: list[str] = []
    emulator: list[str] = []
    if info_arch and mach_arch and info_arch != mach_arch:
        conflicts.append(f"/proc/cpuinfo describes an {info_arch} CPU ({_describe(ids)}) but this process runs "
                         f"{machine} code")
        emulator.append(f"{machine} code on a kernel whose /proc/cpuinfo is {info_arch}: user-mode emulation or a "
                        "cpuinfo passed through from another machine")
    sys_ids: set[tuple[str, ...]] = {midr_fields(m) for m in sysfs_midrs}
    if sys_ids and info_arch == "x86_64":
        conflicts.append(f"the kernel's midr_el1 ({_describe(sys_ids)}) is Arm's, /proc/cpuinfo x86's")
    elif sys_ids and info_arch == "aarch64" and not sys_ids <= ids:
        conflicts.append(f"the kernel's midr_el1 names {_describe(sys_ids - ids)}, /proc/cpuinfo {_describe(ids)}")
    register, unexplained = _live_register(live, info_arch, ids, emulator)
    if binfmt and binfmt.lstrip().startswith("enabled"):
        emulator.append(f"binfmt_misc runs {machine} programs through qemu-{machine}")
    if maps and "qemu" in maps.lower():
        emulator.append("/proc/self/maps maps a qemu binary")
    if unexplained and not emulator:  # a live id that differs with no emulator in sight: the files lie
        conflicts.append(unexplained)
    return IdentityVerdict(machine, info_arch, register, "; ".join(conflicts) or None, "; ".join(emulator) or None,
                           [unexplained] if unexplained and emulator else [])


def _live_register(live: LiveIds | None, info_arch: str | None, ids: set[tuple[str, ...]],
                   emulator: list[str]) -> tuple[str | None, str | None]:
    """(what the register said, a mismatch with cpuinfo's ids or None); QEMU's own signatures join ``emulator``."""
    if live is None:
        return None, None
    if live.midr is not None:
        impl, part = midr_fields(live.midr)
        said = f"MIDR_EL1 0x{live.midr:08x} (implementer {impl} part {part})"
        if (impl, part) == _QEMU_MAX_MIDR:
            emulator.append(f"{said}: QEMU's 'max' CPU")
        if info_arch == "aarch64" and (impl, part) not in ids:
            return said, f"the MIDR register reads implementer {impl} part {part}, /proc/cpuinfo lists {_describe(ids)}"
        return said, None
    if live.cpuid is not None:
        vendor, family, model = live.cpuid
        said = f"CPUID {vendor} family {family} model {model}" + (f", hypervisor {live.hypervisor}"
                                                                   if live.hypervisor else "")
        if live.hypervisor in _EMULATING_HYPERVISORS:
            emulator.append(_EMULATING_HYPERVISORS[live.hypervisor])
        if info_arch == "x86_64" and (vendor, str(family), str(model)) not in ids:
            return said, f"CPUID reads {vendor} family {family} model {model}, /proc/cpuinfo lists {_describe(ids)}"
        return said, None
    return None, None


def _sysfs_midrs(src: Sources) -> list[int]:
    out = []
    for cpu in src.list_dir("/sys/devices/system/cpu"):
        if re.fullmatch(r"cpu[0-9]+", cpu):
            raw = src.read_first_line(_MIDR_SYSFS.format(cpu=cpu))
            if raw and re.fullmatch(r"0x[0-9a-fA-F]+", raw):
                out.append(int(raw, 16))
    return out


def src_machine(src: Sources) -> str | None:
    """platform.machine() of the machine ``src`` reads: faked, or this one's when local."""
    return src.machine or (platform.machine() if src.is_local else None)


def verify_identity(src: Sources = LOCAL) -> IdentityVerdict:
    """The identity verdict for the machine ``src`` reads (the live register only when it is this one)."""
    machine = src_machine(src)
    return judge(src.read("/proc/cpuinfo"), machine, _sysfs_midrs(src), live_ids() if src.is_local else None,
                 src.read(f"/proc/sys/fs/binfmt_misc/qemu-{(machine or '').lower()}") if machine else None,
                 src.read("/proc/self/maps"))


def cpu_identity_conflict(src: Sources = LOCAL) -> str | None:
    """Why the CPU facts of ``src`` cannot be trusted (cpuinfo, platform and id register disagree), or None."""
    return verify_identity(src).conflict


def detect_emulator(src: Sources = LOCAL) -> str | None:
    """The evidence that ``src``'s code runs under an emulator, or None."""
    return verify_identity(src).emulator


def live_flags(src: Sources = LOCAL) -> set[str]:
    """ISA flags this process's CPU can execute: aarch64 from AT_HWCAP (what the kernel, or QEMU, enables),
    x86 from /proc/cpuinfo when it is an x86 one (else none: a foreign cpuinfo says nothing about this CPU)."""
    live = live_ids()
    if live.arch == "aarch64" and live.flags:
        return set(live.flags)
    text = src.read("/proc/cpuinfo") or ""
    if cpuinfo_arch(text) != live.arch:
        return set()
    m = re.search(r"^(flags|Features)\s*:(.*)$", text, re.M)
    return set(m.group(2).split()) if m else set()
