"""Machine code for the probes, from one kernel description and one encoder per ISA (x86-64, A64).

Why hand-encoded machine code rather than numba: the probes must run exactly the instructions they
claim (``vfmadd231pd zmm``, ``FMLA v.2d``, SVE ``FMLA z.d``), in a fixed number of independent chains,
at a vector width chosen here; a JIT picks its own instructions and width (SVE needs flags LLVM does
not default to), costs seconds of compiling per kernel out of a 1.5 s budget (minutes under an
emulator), and adds llvmlite (~40 MB) to the dependencies. A few hundred bytes, checked against
objdump in the tests and verified lane by lane before any timing, cost none of that.

The kernels are written once (``fma_kernel``, ``add_chain_kernel``) against the ``Encoder`` interface;
``X86`` and ``A64`` encode the same steps for their ISA. Register choice keeps to the caller-saved
registers of each ABI (System V: every vector register; AAPCS64: v0-v7 and v16-v31, whose SVE
z-register extensions are caller-saved too), so no kernel saves or restores anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

PRECISION_BITS = {"fp64": 64, "fp32": 32, "fp16": 16}


class Encoder(Protocol):
    """The steps a kernel is made of, for one ISA and one vector form."""

    @property
    def arch(self) -> str: ...
    @property
    def acc_regs(self) -> tuple[int, ...]: ...  # vector accumulators, one FMA chain each
    @property
    def x_reg(self) -> int: ...
    @property
    def y_reg(self) -> int: ...

    def prologue(self, precision: str) -> bytes: ...
    def load(self, reg: int, slot: int) -> bytes: ...   # vector register <- buf[slot] (slot in vectors)
    def store(self, reg: int, slot: int) -> bytes: ...
    def fma(self, precision: str, acc: int) -> bytes: ...  # acc += x * y, every lane
    def loop_back(self, loop_start: int, here: int) -> bytes: ...  # counter -= 1; branch to loop_start if not 0
    def epilogue(self) -> bytes: ...
    # the dependent-add chain: ``uint64 f(uint64 n, uint64 step)`` returns step * (1 + adds * n)
    def add_chain_start(self) -> bytes: ...
    def add(self) -> bytes: ...
    def add_chain_end(self) -> bytes: ...


def fma_kernel(enc: Encoder, precision: str) -> bytes:
    """``void k(uint64 n, void *buf)``: buf holds one vector per accumulator, then x, then y. The accumulators
    and operands are loaded, advanced ``n`` iterations of ``len(acc_regs)`` independent FMAs, stored back."""
    chains = len(enc.acc_regs)
    code = enc.prologue(precision)
    code += b"".join(enc.load(reg, slot) for slot, reg in enumerate(enc.acc_regs))
    code += enc.load(enc.x_reg, chains) + enc.load(enc.y_reg, chains + 1)
    loop = len(code)
    code += b"".join(enc.fma(precision, reg) for reg in enc.acc_regs)
    code += enc.loop_back(loop, len(code))
    code += b"".join(enc.store(reg, slot) for slot, reg in enumerate(enc.acc_regs))
    return code + enc.epilogue()


ADDS_PER_ITERATION = 16


def add_chain_kernel(enc: Encoder) -> bytes:
    """``uint64 f(uint64 n, uint64 step)``: ``ADDS_PER_ITERATION`` dependent adds a loop, result returned."""
    code = enc.add_chain_start()
    loop = len(code)
    code += enc.add() * ADDS_PER_ITERATION
    code += enc.loop_back(loop, len(code))
    return code + enc.add_chain_end()


# ---- x86-64 (System V: rdi = n, rsi = buf / step) -------------------------------------------------------

def _vex3(r: int, b: int, mmmmm: int, w: int, vvvv: int, l256: int, pp: int) -> bytes:
    """3-byte VEX prefix (C4); r, b are the high (bit 3) register bits, stored inverted."""
    byte1 = ((~r & 1) << 7) | (1 << 6) | ((~b & 1) << 5) | mmmmm
    byte2 = (w << 7) | ((~vvvv & 0xF) << 3) | (l256 << 2) | pp
    return bytes([0xC4, byte1, byte2])


def _evex(r: int, b: int, mm: int, w: int, vvvv: int, pp: int) -> bytes:
    """EVEX prefix (62) for 512-bit ops on registers 0..15, no masking, no broadcast."""
    p0 = ((~r & 1) << 7) | (1 << 6) | ((~b & 1) << 5) | (1 << 4) | mm  # X=1, R'=1 (regs < 16)
    p1 = (w << 7) | ((~vvvv & 0xF) << 3) | (1 << 2) | pp
    p2 = (0b10 << 5) | (1 << 3)  # L'L = 10 (512-bit), V'=1
    return bytes([0x62, p0, p1, p2])


@dataclass(frozen=True)
class X86:
    """AVX2+FMA (VEX, ``width`` 256) or AVX-512F (EVEX, 512): ``vfmadd231pd/ps`` on ymm/zmm."""

    width: int = 256
    arch: str = "x86_64"
    acc_regs: tuple[int, ...] = tuple(range(12))  # 12 chains: 4-cycle FMA latency x 2 pipes, with room
    x_reg: int = 14
    y_reg: int = 15

    def prologue(self, precision: str) -> bytes:
        if precision not in ("fp64", "fp32"):
            raise ValueError(f"no {precision} vfmadd231 form encoded")
        return b""

    def fma(self, precision: str, acc: int) -> bytes:
        """vfmadd231p[d|s] acc, x, y (acc += x * y): 66.0F38 B8 /r, W1 = pd, W0 = ps."""
        w = 1 if precision == "fp64" else 0
        modrm = 0xC0 | ((acc & 7) << 3) | (self.y_reg & 7)
        if self.width == 256:
            prefix = _vex3(acc >> 3, self.y_reg >> 3, 0b00010, w, self.x_reg, 1, 0b01)
        else:
            prefix = _evex(acc >> 3, self.y_reg >> 3, 0b10, w, self.x_reg, 0b01)
        return prefix + bytes([0xB8, modrm])

    def _mov(self, reg: int, slot: int, store: bool) -> bytes:
        """vmovups reg <-> [rsi + disp32] (0F 10 load, 0F 11 store); bits are bits, so ps serves pd too."""
        modrm = 0x80 | ((reg & 7) << 3) | 0b110  # mod=10 (disp32, never EVEX-compressed), rm=rsi
        prefix = (_vex3(reg >> 3, 0, 0b00001, 0, 0, 1, 0b00) if self.width == 256
                  else _evex(reg >> 3, 0, 0b01, 0, 0, 0b00))
        disp = slot * self.width // 8
        return prefix + bytes([0x11 if store else 0x10, modrm]) + disp.to_bytes(4, "little", signed=True)

    def load(self, reg: int, slot: int) -> bytes:
        return self._mov(reg, slot, store=False)

    def store(self, reg: int, slot: int) -> bytes:
        return self._mov(reg, slot, store=True)

    def loop_back(self, loop_start: int, here: int) -> bytes:
        rel = loop_start - (here + 3 + 6)
        return bytes([0x48, 0xFF, 0xCF, 0x0F, 0x85]) + rel.to_bytes(4, "little", signed=True)  # dec rdi; jnz rel32

    def epilogue(self) -> bytes:
        return bytes([0xC5, 0xF8, 0x77, 0xC3])  # vzeroupper ; ret

    def add_chain_start(self) -> bytes:
        return bytes([0x48, 0x89, 0xF0])  # mov rax, rsi

    def add(self) -> bytes:
        # Register-register: recent Intel cores fold immediate adds at rename, which would break the chain.
        return bytes([0x48, 0x01, 0xF0])  # add rax, rsi

    def add_chain_end(self) -> bytes:
        return bytes([0xC3])  # ret (the result is in rax)


# ---- A64 (AAPCS64: x0 = n, x1 = buf / step) -------------------------------------------------------------

def _words(*words: int) -> bytes:
    return b"".join(w.to_bytes(4, "little") for w in words)


_RET = 0xD65F03C0
_SUBS_X0_1 = 0xF1000400  # subs x0, x0, #1
# NEON FMLA (vector), Q=1: fp64 .2d and fp32 .4s (sz bit 22), fp16 .8h (FEAT_FP16, its own opcode).
_NEON_FMLA = {"fp64": 0x4E60CC00, "fp32": 0x4E20CC00, "fp16": 0x4E400C00}
# SVE FMLA (vectors, predicated) Zda.T, Pg/M, Zn.T, Zm.T: size 11 = .d, 10 = .s, 01 = .h (bits 23:22).
_SVE_FMLA_SIZE = {"fp64": 0b11, "fp32": 0b10, "fp16": 0b01}
_PTRUE_P0_B = 0x2518E3E0  # ptrue p0.b, ALL: every predicate bit set, so p0 governs every lane of any size


@dataclass(frozen=True)
class A64:
    """NEON (``sve=False``, 128-bit ``FMLA v.2d/.4s/.8h``) or SVE (predicated ``FMLA z.d/.s/.h``, any VL)."""

    sve: bool = False
    arch: str = "aarch64"
    # 20 chains: FMLA latency x FMA pipes is 8 on Cortex-A78, 16 on Neoverse V1/V2, 18 on A64FX (9 x 2).
    acc_regs: tuple[int, ...] = (*range(8), *range(16, 28))
    x_reg: int = 28
    y_reg: int = 29

    def prologue(self, precision: str) -> bytes:
        if precision not in PRECISION_BITS:
            raise ValueError(f"no {precision} FMLA form")
        return _words(_PTRUE_P0_B) if self.sve else b""

    def fma(self, precision: str, acc: int) -> bytes:
        if self.sve:
            word = 0x65200000 | (_SVE_FMLA_SIZE[precision] << 22) | (self.y_reg << 16) | (self.x_reg << 5) | acc
        else:
            word = _NEON_FMLA[precision] | (self.y_reg << 16) | (self.x_reg << 5) | acc
        return _words(word)

    def _mem(self, reg: int, slot: int, store: bool) -> bytes:
        if self.sve:  # LDR/STR Zt, [x1, #slot, MUL VL]: signed imm9 split 6 high (bits 21:16) / 3 low (12:10)
            if not -256 <= slot < 256:
                raise ValueError(f"slot {slot} out of SVE LDR range")
            imm = slot & 0x1FF
            word = (0xE5804000 if store else 0x85804000) | ((imm >> 3) << 16) | ((imm & 7) << 10)
        else:  # LDR/STR Qt, [x1, #slot*16]: unsigned imm12 scaled by 16
            if not 0 <= slot < 4096:
                raise ValueError(f"slot {slot} out of LDR Q range")
            word = (0x3D800000 if store else 0x3DC00000) | (slot << 10)
        return _words(word | (1 << 5) | reg)

    def load(self, reg: int, slot: int) -> bytes:
        return self._mem(reg, slot, store=False)

    def store(self, reg: int, slot: int) -> bytes:
        return self._mem(reg, slot, store=True)

    def loop_back(self, loop_start: int, here: int) -> bytes:
        rel = (loop_start - (here + 4)) // 4  # b.ne sits after the subs
        return _words(_SUBS_X0_1, 0x54000001 | ((rel & 0x7FFFF) << 5))  # subs x0, x0, #1 ; b.ne loop

    def epilogue(self) -> bytes:
        return _words(_RET)

    def add_chain_start(self) -> bytes:
        return _words(0xAA0103E2)  # mov x2, x1

    def add(self) -> bytes:
        return _words(0x8B010042)  # add x2, x2, x1 (1-cycle latency on every Arm core of note)

    def add_chain_end(self) -> bytes:
        return _words(0xAA0203E0, _RET)  # mov x0, x2 ; ret


# ---- reading the CPU's own id register ------------------------------------------------------------------

# uint64 f(void): mrs x0, midr_el1 ; ret. EL0 reads trap to the kernel, which answers them where it sets
# HWCAP_CPUID (Linux >= 4.11); QEMU user mode answers with the MIDR of the CPU it emulates.
A64_READ_MIDR = _words(0xD5380000, _RET)
# uint64 f(void): cntb x0 ; ret -- the SVE vector length in bytes.
A64_SVE_BYTES = _words(0x0420E3E0, _RET)
# void f(uint32 leaf, uint32 out[4]): push rbx ; mov eax, edi ; xor ecx, ecx ; cpuid ;
# mov [rsi], eax ; mov [rsi+4], ebx ; mov [rsi+8], ecx ; mov [rsi+12], edx ; pop rbx ; ret
X86_CPUID = bytes([0x53, 0x89, 0xF8, 0x31, 0xC9, 0x0F, 0xA2, 0x89, 0x06, 0x89, 0x5E, 0x04, 0x89, 0x4E, 0x08,
                   0x89, 0x56, 0x0C, 0x5B, 0xC3])
