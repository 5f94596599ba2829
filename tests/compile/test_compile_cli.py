"""``python -m compile``: exit codes, one-line reasons, the bundle path as the last stdout line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from compile.cli import main


def run_cli(repo: Path, *args: str, doubles: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if doubles:
        env["PYTHONPATH"] = str(repo / "tests" / "doubles")
    return subprocess.run(
        [sys.executable, "-m", "compile", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line_failure(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in error_lines[0]


def test_build_default_prints_bundle_path_last_and_reuses(repo_root: Path, default_bundle: Path):
    # The session bundle was built in-process with the same inputs: the CLI must find and reuse it.
    result = run_cli(repo_root, "build", "--out", str(default_bundle.parent))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(default_bundle)
    assert "reusing" in result.stderr
    assert "untrained_default=True" in result.stdout
    assert "UNTRAINED DEFAULT" in result.stderr


def test_build_plan_names_the_version_and_writes_nothing(
    repo_root: Path, default_bundle: Path, tmp_path: Path
):
    # --plan is what playbooks/build.yml runs under --check: the same version `build` gives, nothing written.
    fresh = tmp_path / "bundles"
    result = run_cli(repo_root, "build", "--out", str(fresh), "--plan")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == str(fresh / default_bundle.name)
    assert "not built yet" in lines[-2]
    assert not fresh.exists()
    reused = run_cli(repo_root, "build", "--out", str(default_bundle.parent), "--plan")
    assert reused.returncode == 0, reused.stderr
    assert reused.stdout.strip().splitlines()[-2:] == [
        f"bundle {default_bundle.name} already built",
        str(default_bundle),
    ]


def test_build_trained_prints_figures(
    repo_root: Path, trained_onnx: Path, model_config: Path, tmp_path: Path
):
    result = run_cli(
        repo_root,
        "build",
        "--source",
        str(trained_onnx),
        "--config",
        str(model_config),
        "--out",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    bundle = Path(lines[-1])
    assert bundle.parent == tmp_path and (bundle / "model_metadata.json").is_file()
    assert any(line.startswith("verify: ") and "ONNX Runtime vs PyTorch" in line for line in lines)
    assert any("source ONNX vs export" in line for line in lines)
    assert any(line.startswith("int8 ") and "top-motif agreement" in line for line in lines)
    for stage in ("load", "motifs", "export", "verify", "int8"):
        assert f"{stage}: done in" in result.stderr
    assert "hailo_dataflow_compiler-3.33" in result.stderr  # the skip notice


@pytest.mark.parametrize(
    ("make", "fragments"),
    [
        (lambda d, s: s("models", "mock_not_a_real.hef"), ["mock_not_a_real.hef", "JSON text"]),
        (lambda d, s: s("models", "tcn_encoder_trunk_state_dict.pth"), ["fc_mu.weight", "trunk-only"]),
        (lambda d, s: d / "missing.pth", ["missing.pth", "No such file"]),
    ],
    ids=["mock-hef", "trunk-only", "nonexistent"],
)
def test_bad_sources_exit_1_with_one_line(repo_root: Path, tmp_path: Path, shared_file, make, fragments):
    result = run_cli(
        repo_root, "build", "--source", str(make(tmp_path, shared_file)), "--out", str(tmp_path / "o")
    )
    assert_one_line_failure(result, *fragments)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_truncated_checkpoint_exit_1(repo_root: Path, tmp_path: Path):
    path = tmp_path / "cut.pth"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 200)
    assert_one_line_failure(run_cli(repo_root, "export", "--source", str(path), "--out", "x.onnx"), "cut.pth")


def test_require_hef_without_dfc(repo_root: Path, tmp_path: Path):
    result = run_cli(repo_root, "build", "--out", str(tmp_path), "--require-hef")
    assert_one_line_failure(result, "--require-hef", "hailo_dataflow_compiler-3.33")


def test_require_hef_with_the_dfc_double(repo_root: Path, tmp_path: Path):
    result = run_cli(
        repo_root, "build", "--out", str(tmp_path), "--require-hef", "--hw-arch", "hailo8l", doubles=True
    )
    assert result.returncode == 0, result.stderr
    bundle = Path(result.stdout.strip().splitlines()[-1])
    assert (bundle / "tcn_encoder_hailo8l.hef").is_file()
    assert not (bundle / "tcn_encoder_hailo8.hef").exists()  # only the family asked for
    assert "hef: hailo8l tcn_encoder_hailo8l.hef (DFC 3.33.0+test-double)" in result.stdout


def test_bad_hw_arch_is_a_usage_error(repo_root: Path, tmp_path: Path):
    result = run_cli(repo_root, "build", "--out", str(tmp_path), "--hw-arch", "hailo10h")
    assert result.returncode == 2
    assert "invalid choice: 'hailo10h'" in result.stderr and "Traceback" not in result.stderr


# The stage subcommands run in-process through main(): same code path, without a second torch start-up.


def test_export_and_verify_subcommands(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    target = tmp_path / "model.onnx"
    assert main(["export", "--out", str(target)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(target)
    assert target.stat().st_size > 100_000
    assert main(["verify"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["onnxruntime_vs_torch"]["latent_max_abs"] <= 1e-4
    assert {"export", "verify", "int8"} <= set(figures["timings_s"])


def test_hef_subcommand_with_the_double(dfc_double, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["hef", "--out", str(tmp_path), "--hw-arch", "hailo8l"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(tmp_path / "tcn_encoder_hailo8l.hef")
    assert sorted(p.name for p in tmp_path.glob("*.har")) == [
        "tcn_encoder_hailo8l_compiled.har",
        "tcn_encoder_hailo8l_optimized.har",
        "tcn_encoder_hailo8l_parsed.har",
    ]
    assert not list(tmp_path.glob("dfc_*.json"))  # the contract's files stay in the scratch folder
    assert dict(dfc_double.CALLS)["ClientRunner"] == {"hw_arch": "hailo8l"}


def test_inspect_intact_and_damaged(default_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["inspect", str(default_bundle)]) == 0
    assert f"bundle {default_bundle.name}" in capsys.readouterr().out
    assert main(["inspect", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: bundle invalid: ") and "model_metadata.json: missing" in error


def test_dfc_version_probe_imports_no_model_tooling(repo_root: Path):
    # Preflight asks it on every run: it must not pay torch's and onnx's start-up.
    code = (
        "import sys\nfrom compile.cli import main\nmain(['dfc-version'])\n"
        "print(sorted({'torch', 'onnx', 'onnxruntime'} & set(sys.modules)))"
    )
    env = {k: v for k, v in os.environ.items() if k != "HAILO_PIPELINE_DFC_PYTHON"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=repo_root, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    answer, imported = result.stdout.strip().splitlines()
    assert json.loads(answer) == {"dfc_version": None, "dfc_python": None}
    assert imported == "[]"
