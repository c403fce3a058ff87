"""``hwcal-predict --ops FILE`` reads hostile input: every bound holds, and every refusal is one short line that
quotes a value, never the input (found by the adversarial pass of issue 22: an alias bomb expanded to 8 GB and
printed a 100 MB error; a million operations and dimensions like 1e29 were accepted)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hwcal.cli.ops import MAX_DIM, MAX_FILE_BYTES, MAX_OPS, read_ops
from hwcal.cli.predict import main as predict_main
from hwcal.errors import HwcalError

H100 = Path(__file__).parent / "data" / "predict" / "h100_sxm5_700W_1980MHz_pytorch.json"
GEMM = {"op": "gemm", "precision": "bf16", "m": 4096, "n": 4096, "k": 4096}
SHORT = 400  # characters: what "one short line" means here

yaml = pytest.importorskip("yaml")


def _refused(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Run the tool on ``path``; it must exit 1 with one short line on stderr and nothing on stdout."""
    assert predict_main([str(H100), "--ops", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and len(err) < SHORT, err[:1000]
    assert err.startswith("predict.py: error: ") and str(path) in err
    return err


def test_the_example_files_are_read(capsys: pytest.CaptureFixture[str]) -> None:
    docs = Path(__file__).resolve().parents[1] / "docs"
    for name in ("transformer_layer.yaml", "transformer_layer_cpu.yaml"):
        assert read_ops(docs / name)


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\nops: *i\n")  # 9**9 = 387 million strings once expanded
    assert bomb.stat().st_size < 1000
    err = _refused(bomb, capsys)
    assert "YAML aliases (*name) are not accepted" in err and "line 2" in err


def test_a_harmless_alias_is_refused_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ops.yaml"
    path.write_text("- &g {op: gemm, precision: bf16, m: 64, n: 64, k: 64}\n- *g\n")
    assert "aliases" in _refused(path, capsys)


def test_too_many_operations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ops.json"
    path.write_text(json.dumps([{"op": "dot", "precision": "fp32", "n": 64}] * (MAX_OPS + 1)))
    assert f"{MAX_OPS + 1:,} operations, more than the {MAX_OPS:,}" in _refused(path, capsys)
    path.write_text(json.dumps([{"op": "dot", "precision": "fp32", "n": 64}] * MAX_OPS))
    assert len(read_ops(path)) == MAX_OPS


@pytest.mark.parametrize(("suffix", "text"), [
    (".json", '[{"op": "gemm", "precision": "bf16", "m": 1e29, "n": 64, "k": 64}]'),
    (".json", '[{"op": "gemm", "precision": "bf16", "m": 100000000000000000000000000000, "n": 64, "k": 64}]'),
    (".yaml", "- {op: gemm, precision: bf16, m: 1.0e+29, n: 64, k: 64}\n"),
    (".yaml", "- {op: gemm, precision: bf16, m: 1e29, n: 64, k: 64}\n"),  # a string to YAML 1.1
    (".json", '[{"op": "dot", "precision": "fp32", "n": 4096, "count": 1e29}]'),
    (".json", '[{"op": "dot", "precision": "fp32", "n": 0}]'),
    (".json", '[{"op": "dot", "precision": "fp32", "n": 64.5}]'),
    (".json", '[{"op": "dot", "precision": "fp32", "n": true}]'),
])
def test_dimensions_and_counts_are_bounded(tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str,
                                           text: str) -> None:
    path = tmp_path / f"ops{suffix}"
    path.write_text(text)
    err = _refused(path, capsys)
    assert "operation 1:" in err and "must be a whole number from 1 to 2^40" in err


def test_the_largest_dimension_is_predicted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ops.json"
    path.write_text(json.dumps([{"op": "dot", "precision": "fp32", "n": MAX_DIM, "count": MAX_DIM},
                                {**GEMM, "m": MAX_DIM, "n": MAX_DIM, "k": MAX_DIM, "batch": MAX_DIM}]))
    assert predict_main([str(H100), "--ops", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert all(isinstance(o["total_s"], float) and o["total_s"] > 0 for o in data["operations"])


def test_a_huge_file_is_not_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ops.json"
    with open(path, "wb") as fh:
        fh.truncate(MAX_FILE_BYTES + 1)  # sparse: nothing to read, and the tool must not try
    assert "more than the 2 MiB an operations file may have" in _refused(path, capsys)


def test_a_fifo_is_refused_without_hanging(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ops.json"
    os.mkfifo(path)
    assert "a FIFO, not a regular file" in _refused(path, capsys)


@pytest.mark.parametrize(("text", "message"), [
    ('[[1, 2, 3]]', "operation 1: is a list, not a mapping"),
    ('["gemm bf16 4096"]', "operation 1: is a string, not a mapping"),
    ('"gemm"', "expected a non-empty list of operations (or an object with 'ops'), got a string"),
    ('{"layers": []}', "got a mapping"),
    ("[]", "got a list"),
    ('[{"op": "gemm"}]', "needs 'precision'"),
    ('[{"precision": "bf16"}]', "needs 'op'"),
    ('[{"op": "conv", "precision": "bf16"}]', "op 'conv' is not one of gemm"),
    ('[{"op": "dot", "precision": "bf16\\u001b[2J", "n": 4}]', "precision 'bf16\\x1b[2J' is not a precision"),
])
def test_what_is_not_a_list_of_operations(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
                                          message: str) -> None:
    path = tmp_path / "ops.json"
    path.write_text(text)
    assert message in _refused(path, capsys)


def test_a_huge_value_is_quoted_short(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ops.json"
    big = "x" * 1_000_000
    for item in ({**GEMM, big: 1}, {**GEMM, "op": big}, {**GEMM, "name": big}, {**GEMM, "m": big}):
        path.write_text(json.dumps([item]))
        assert "more characters)" in _refused(path, capsys)


def test_deep_nesting_and_broken_files_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, text, message in (("deep.json", "[" * 100_000, "not valid JSON"),
                                ("deep.yaml", "[" * 100_000, "not valid YAML"),
                                ("nan.json", '[{"op": "dot", "precision": "fp32", "n": NaN}]', "not valid JSON"),
                                ("bad.yaml", "- {op: gemm\n  - x: [\n", "not valid YAML"),
                                ("latin1.json", "[{\"name\": \"\xe9\"}]", "not UTF-8")):
        path = tmp_path / name
        path.write_bytes(text.encode("latin-1"))
        err = _refused(path, capsys)
        assert message in err or "nested too deep" in err, err


def test_a_name_cannot_forge_a_line_of_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ops.json"
    path.write_text(json.dumps([{**GEMM, "name": "qkv\ntotal: 0 s\x1b[2K"}]))
    assert predict_main([str(H100), "--ops", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and [ln for ln in out.splitlines() if ln.startswith("total:")] != ["total: 0 s"]
    assert "qkv\\ntotal: 0 s\\x1b[2K" in out


def test_read_ops_raises_the_user_error_type(tmp_path: Path) -> None:
    path = tmp_path / "ops.yaml"
    path.write_text("ops:\n  - {op: gemm, precision: bf16, m: 64, n: 64, k: 64, count: 3, name: qkv}\n")
    (spec,) = read_ops(path)
    assert (spec.operation, spec.precision, spec.dims, spec.count, spec.label) == (
        "gemm", "bf16", {"m": 64, "n": 64, "k": 64}, 3, "qkv")
    path.write_text("ops: 3\n")
    with pytest.raises(HwcalError, match="got a number"):
        read_ops(path)


def test_a_path_is_read_as_a_file_never_looked_up_as_hardware(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "cal.json"
    os.mkfifo(fifo)
    for selector, message in (("/dev/null", "is a character device"), (str(fifo), "is a FIFO"),
                              (str(tmp_path / "none.json"), "no such calibration file"),
                              (str(tmp_path), "is a folder")):
        assert predict_main([selector, "gemm", "bf16", "64"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
