#!/usr/bin/env bash
# CI: rehearse a Jetson's CPU (aarch64) on this x86 machine under QEMU user emulation, on every change.
#   1. an arm64 Debian root file system (debootstrap stage one; the rest unpacked natively, no maintainer
#      script runs under emulation) with a venv holding the dependencies' aarch64 wheels from PyPI (resolved,
#      unpacked and byte-compiled by the host's pip: pip under QEMU took minutes): built once, cached in
#      $HWCAL_JETSON_CACHE (default ~/.cache/hwcal/jetson-rehearsal), rebuilt when the dependencies change;
#   2. a hard-linked copy per run (the cache stays clean, runs do not collide), the project's wheel installed
#      into it as a user would;
#   3. quick calibrations (the FMA ceiling and GEMM fp64/fp32/fp16 at n = 64 and 128, AGX at 64: the whole
#      --quick suite takes 3.5 minutes under QEMU) against recorded Jetson facts in the root's /proc, /sys and /etc, with a fake
#      nvpmodel: Orin Nano 7W and AGX Orin MAXN (cpuinfo with MIDR, device tree, nvpmodel, cpufreq, devfreq,
#      INA3221 rails). They stop in preflight unless --force (an emulator's speeds mean nothing) and, with it, must
#      file under the Jetson's key with Cortex-A78AE peaks, the A64 FMLA ceiling and the emulator named;
#   4. the host's own x86 /proc/cpuinfo seen from aarch64 code: refused in one line, filed as generic_aarch64
#      with --force;
#   5. every A64 FMA kernel verified lane by lane, SVE at 128, 512 and 2048 bits (QEMU_CPU), and the machine and
#      plugin tests under aarch64 (the ones that calibrate this machine end to end skip there, saying why).
# Needs root (chroot, binfmt_misc; re-runs itself with sudo -n when not root) and installs qemu-user-static,
# binfmt-support and debootstrap when missing.
# HWCAL_SKIP_JETSON_REHEARSAL=1 skips it, saying so.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
if [ "${HWCAL_SKIP_JETSON_REHEARSAL:-}" = 1 ]; then
    echo "jetson rehearsal: SKIPPED (HWCAL_SKIP_JETSON_REHEARSAL=1)"
    exit 0
fi
suite=bookworm  # Python 3.11; JetPack 6 has 3.10 on Ubuntu 22.04, whose ports archive is not reachable from here
mirror="${HWCAL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
cache="${HWCAL_JETSON_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hwcal/jetson-rehearsal}"
base="$cache/$suite-arm64"
helper="$repo/.ci/jetson_check.py"
t0=$(date +%s)
say() { printf '\n== [%3d s] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }
fail() { echo "jetson rehearsal: FAIL: $*" >&2; exit 1; }
if [ "$(id -u)" -ne 0 ]; then
    # chroot and binfmt_misc need root (a hosted CI runner has passwordless sudo): run the whole rehearsal as
    # root, with this user's tools on PATH; pip's cache goes with the rehearsal's, not into ~/.cache/pip.
    sudo -n true 2>/dev/null || fail "needs root or passwordless sudo (chroot, binfmt_misc); or set HWCAL_SKIP_JETSON_REHEARSAL=1"
    exec sudo -n env PATH="$PATH" HOME="$HOME" HWCAL_JETSON_CACHE="$cache" PIP_CACHE_DIR="$cache/pip" \
        ${HWCAL_DEBIAN_MIRROR:+HWCAL_DEBIAN_MIRROR="$HWCAL_DEBIAN_MIRROR"} bash "$0" "$@"
fi

say "host: qemu-user-static, binfmt_misc"
missing=()
command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
command -v update-binfmts >/dev/null || missing+=(binfmt-support)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
binfmt=/proc/sys/fs/binfmt_misc
[ -e "$binfmt/status" ] || mount -t binfmt_misc binfmt_misc "$binfmt"
[ -e "$binfmt/qemu-aarch64" ] || update-binfmts --enable qemu-aarch64 || update-binfmts --import qemu-aarch64
grep -q '^enabled' "$binfmt/qemu-aarch64" || fail "binfmt_misc entry qemu-aarch64 is disabled"
interpreter="$(sed -n 's/^interpreter //p' "$binfmt/qemu-aarch64")"
# Without the F flag the kernel opens the interpreter inside the chroot: it must be there too.
fix_binary=$(grep -q '^flags:.*F' "$binfmt/qemu-aarch64" && echo 1 || echo 0)
qemu-aarch64-static --version | head -1

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9  # one build of the cache at a time; each run then works in its own copy
state=warm
if [ ! -f "$base/.hwcal-rootfs-1" ]; then
    state=cold
    say "cold cache: arm64 $suite root file system (debootstrap --foreign, unpacked natively)"
    rm -rf "$base" "$base.tmp"
    debootstrap --foreign --arch=arm64 --variant=minbase --include=python3,python3-venv \
        "$suite" "$base.tmp" "$mirror" >"$cache/debootstrap.log" 2>&1 || { tail -20 "$cache/debootstrap.log"; fail "debootstrap"; }
    # Stage one unpacked the essential set; python3 and what it needs lie in the archive cache: unpack them here,
    # with the host's dpkg-deb. Their maintainer scripts would only byte-compile and register alternatives.
    for deb in "$base.tmp"/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$base.tmp"; done
    rm -f "$base.tmp"/var/cache/apt/archives/*.deb
    [ "$fix_binary" = 1 ] || install -D "$interpreter" "$base.tmp$interpreter"
    # base-passwd's maintainer script would have written these: getpass.getuser() needs root's entry.
    cp "$base.tmp/usr/share/base-passwd/passwd.master" "$base.tmp/etc/passwd"
    cp "$base.tmp/usr/share/base-passwd/group.master" "$base.tmp/etc/group"
    chroot "$base.tmp" /usr/bin/env -i PATH=/usr/bin:/bin /usr/bin/python3 -m venv --without-pip /opt/hwcal
    touch "$base.tmp/.hwcal-rootfs-1"
    mv "$base.tmp" "$base"
fi
# pip inside the root trusts what the host trusts (a proxy's CA included), should it need the index.
install -D -m 644 /etc/ssl/certs/ca-certificates.crt "$base/etc/ssl/certs/ca-certificates.crt"
cp -L /etc/resolv.conf "$base/etc/resolv.conf" 2>/dev/null || true
python3 "$helper" requirements "$repo/pyproject.toml" >"$cache/requirements.txt"
deps="$(sha256sum "$cache/requirements.txt" | cut -c1-16)"
site="$base/opt/hwcal/lib/python3.11/site-packages"
if [ ! -f "$base/.hwcal-deps-$deps" ]; then
    [ "$state" = cold ] || state="warm (dependencies changed)"
    say "dependencies: their aarch64 wheels from PyPI, unpacked and byte-compiled natively into the root's venv"
    # The host's pip resolves and unpacks the manylinux aarch64 wheels (pip itself among them, for the project's
    # own install under emulation below); Python 3.11 bytecode is the same on both sides.
    rm -rf "$site" && mkdir -p "$site"
    python3 -m pip install -q --disable-pip-version-check --no-warn-conflicts --root-user-action=ignore \
        --target "$site" --only-binary=:all: \
        --implementation cp --python-version 3.11 --platform manylinux2014_aarch64 \
        --platform manylinux_2_28_aarch64 --platform linux_aarch64 pip -r "$cache/requirements.txt"
    rm -f "$base"/.hwcal-deps-*
    touch "$base/.hwcal-deps-$deps"
fi
flock -u 9

say "this run's copy of the root ($state cache), the project's wheel installed into it"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/root"
cp -al "$base" "$root"
python3 -m pip wheel -q --no-deps -w "$root/tmp/dist" "$repo" 2>"$work/wheel.log" || { cat "$work/wheel.log"; fail "wheel"; }
mkdir -p "$root/src" "$root/work"
(cd "$repo" && git ls-files -z -co --exclude-standard | tar --null -T - -cf -) | tar -xf - -C "$root/src"
cp -r "$repo/bench" "$root/work/"
run() {  # run ARGS...: in the arm64 root, with a clean environment (QEMU_CPU passes through to QEMU)
    chroot "$root" /usr/bin/env -i PATH=/opt/hwcal/bin:/usr/sbin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
        HWCAL_STATE_DIR=/tmp/hwcal-state ${QEMU_CPU:+QEMU_CPU="$QEMU_CPU"} "$@"
}
run sh -c 'python -m pip install -q --no-deps --no-index /tmp/dist/hwcal-*.whl'
run python -c 'import platform, hwcal.version as v; print("hwcal", v.__version__, "on", platform.machine())'

set_machine() {  # set_machine NAME|none: the recorded machine's /proc, /sys, /etc files and its nvpmodel
    rm -rf "$root/proc" "$root/sys" "$root/etc/nv_tegra_release" "$root/etc/nvpmodel.conf" "$root/usr/sbin/nvpmodel"
    mkdir -p "$root/proc" "$root/sys"
    [ "$1" = none ] && return 0
    cp -a "$repo/tests/data/machines/$1/root/." "$root/"
    python3 "$helper" nvpmodel "$repo/tests/data/machines/$1/machine.json" >"$root/usr/sbin/nvpmodel"
    chmod 755 "$root/usr/sbin/nvpmodel"
}
GEMM=(python -m pytest bench/test_compute_ceiling.py bench/test_gemm.py -q -p no:randomly --quick
      -k "compute_ceiling or fp64 or fp32 or fp16")
calibrate() {  # calibrate MACHINE HARDWARE_ID MODE MHZ SIZES
    say "calibration on a faked $1 (the FMA ceiling; GEMM fp64/fp32/fp16 at n = $5)"
    set_machine "$1"
    local log="$work/$1.log" rc=0
    if [ "$1" = jetson_orin_nano_7w ]; then  # once is enough: the preflight stop costs a pytest start-up
        run sh -c "cd /work && ${GEMM[*]@Q} --sizes $5 --registry /tmp/reg-$1" >"$log" 2>&1 || rc=$?
        if [ "$rc" -eq 0 ] || ! grep -q "running under an emulator" "$log"; then
            cat "$log"; fail "$1: expected a preflight stop naming the emulator (exit $rc)"
        fi
        echo "without --force: stopped in preflight ($(grep -m1 -o 'cpu_identity: running under an emulator ([^:]*' "$log"))"
    fi
    run sh -c "cd /work && ${GEMM[*]@Q} --sizes $5 --force --registry /tmp/reg-$1" >"$log" 2>&1 \
        || { tail -40 "$log"; fail "$1: calibration"; }
    grep "calibration written" "$log" | tail -1
    run hwcal-validate --registry "/tmp/reg-$1" | tail -1
    python3 "$helper" calibration "$root/tmp/reg-$1/cpu/$2/calibrations/$3_$4MHz_numpy.json" "$2" "$3" "$4"
}
calibrate jetson_orin_nano_7w jetson_orin_nano_cpu 7W 960 64,128
calibrate jetson_agx_orin_maxn jetson_agx_orin_cpu MAXN 2202 64

say "the host's x86 /proc/cpuinfo read by aarch64 code (QEMU with the host's /proc)"
set_machine none
cp /proc/cpuinfo /proc/meminfo "$root/proc/"
log="$work/conflict.log"
rc=0
HOST=(python -m pytest bench/test_gemm.py -q -p no:randomly --sizes 64 -k fp64 --frequency-mhz 2000 --registry /tmp/reg-host)
run sh -c "cd /work && ${HOST[*]@Q}" >"$log" 2>&1 || rc=$?
if [ "$rc" -eq 0 ] || ! grep -q "cpu_identity: CPU identity conflict" "$log"; then
    cat "$log"; fail "host cpuinfo: expected a preflight stop on the identity conflict (exit $rc)"
fi
grep -m1 "cpu_identity: CPU identity conflict" "$log" | cut -c1-220
run sh -c "cd /work && ${HOST[*]@Q} --force" >"$log" 2>&1 || { tail -30 "$log"; fail "host cpuinfo with --force"; }
python3 "$helper" conflict "$(find "$root/tmp/reg-host" -path '*/calibrations/*.json' | head -1)"

say "FMA kernels verified lane by lane under QEMU (SVE at 128, 512 and 2048 bits)"
set_machine jetson_orin_nano_7w
for vl in 16 64 256; do
    echo "QEMU_CPU=max,sve-default-vector-length=$vl:"
    QEMU_CPU="max,sve-default-vector-length=$vl" run python /src/.ci/jetson_check.py lanes
done
QEMU_CPU="max,sve-default-vector-length=16" run sh -c "cd /src && python -m pytest -q -p no:randomly tests/test_fma_ceiling.py" \
    | tail -1 | sed 's/^/SVE 128-bit: /'

# The early-termination test (26 s under QEMU) checks sweep logic no ISA changes: it runs natively in .ci/run.
say "machine and plugin tests under aarch64 (on the faked Orin Nano)"
run sh -c "cd /src && python -m pytest -q -p no:randomly -rs tests/test_fma_ceiling.py tests/test_identity_check.py \
    tests/test_machine.py tests/test_uarch.py tests/test_identity.py tests/test_peaks_uarch.py tests/test_preflight.py \
    tests/test_clocks.py tests/test_interference.py tests/test_energy_meters.py tests/test_ceiling_session.py \
    tests/test_options.py tests/test_plugin_e2e.py --deselect tests/test_plugin_e2e.py::test_early_termination_skips_with_the_reason" \
    >"$work/tests.log" 2>&1 \
    || { tail -60 "$work/tests.log"; fail "tests under aarch64"; }
grep -E "^SKIPPED" "$work/tests.log" | cut -c1-160
tail -1 "$work/tests.log"
say "jetson rehearsal passed ($state cache) in $(( $(date +%s) - t0 )) s"
