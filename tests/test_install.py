"""lrsflows as people install it: a wheel built from this tree, installed into a fresh venv outside the checkout,
used from another folder (its commands, its packaged Hydra configs, its version, a trained flow loaded back).

The wheel is built once (`pip wheel --no-deps --no-build-isolation`) from a copy of the tree, so no build/ left
in the checkout can slip stale files into it. The fresh venv gets no packages of its own but the wheel: a .pth
file puts this venv's site-packages (torch, Hydra, ...) behind its own, so nothing is downloaded, and every test
checks that it runs the installed lrsflows, not the checkout's. (No build isolation: this venv's setuptools
builds the wheel, and torch 2.13 already requires setuptools >= 77, what pyproject.toml's license needs.)
"""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Left out of the copy the wheel is built from: the checkout's environment, outputs, data and build leftovers.
NOT_COPIED = {".git", ".venv", "outputs", "data", "build", "dist", ".pytest_cache", ".ruff_cache"}
STEPS = 50


def project_version() -> str:
    return re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.MULTILINE).group(1)


def run(command: list[str], cwd: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """`command` in `cwd` with this environment less anything that would put the checkout on sys.path."""
    environment = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run(
        command, cwd=cwd, env=environment | env, capture_output=True, text=True, timeout=timeout, check=False
    )


def succeeded(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, f"{done.args} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("source") / "lrsflows"
    shutil.copytree(
        REPO,
        source,
        ignore=lambda folder, names: [
            name
            for name in names
            if name == "__pycache__" or name.endswith(".egg-info") or (Path(folder) == REPO and name in NOT_COPIED)
        ],
    )
    out = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    succeeded(run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(source)], out))
    (built,) = out.glob("lrsflows-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> dict[str, Path]:
    """A fresh venv holding only the wheel (and, through a .pth file, this venv's packages): its paths by name."""
    root = tmp_path_factory.mktemp("venv") / "fresh"
    succeeded(run([sys.executable, "-m", "venv", "--without-pip", str(root)], root.parent))
    python = root / ("Scripts" if os.name == "nt" else "bin") / "python"
    query = "import json, sysconfig; print(json.dumps(sysconfig.get_paths()))"
    paths = json.loads(succeeded(run([str(python), "-c", query], root)).stdout)
    ours = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (Path(paths["purelib"]) / "lrsflows_test_dependencies.pth").write_text("".join(f"{path}\n" for path in ours))
    # pip itself comes from this venv through the .pth file; it installs into the fresh one (its sys.prefix).
    install = ["-m", "pip", "--disable-pip-version-check", "install", "-q", "--no-deps", "--no-build-isolation"]
    succeeded(run([str(python), *install, "--no-index", "--ignore-installed", str(wheel)], root))
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    return {"root": root, "python": python, "bin": Path(paths["scripts"]), "elsewhere": elsewhere}


@pytest.fixture(scope="module")
def trained(venv) -> Path:
    """A short toy2d run by the installed command, from a folder that is neither the checkout nor the venv."""
    run_dir = venv["elsewhere"] / "run"
    overrides = [f"trainer.max_steps={STEPS}", "trainer.val_every=25", "trainer.progress_bar=false"]
    # Small splits and batches: what is checked is the install, not the fit.
    overrides += ["trainer.batch_size=128", "dataset.num_train=5000", "dataset.num_val=1000", "dataset.num_test=1000"]
    command = [str(venv["bin"] / "lrsflows"), "experiment=toy2d", *overrides, f"hydra.run.dir={run_dir}"]
    succeeded(run(command, venv["elsewhere"], timeout=600))
    return run_dir


def test_the_fresh_venv_imports_the_installed_package_and_its_configs(venv):
    script = (
        "import json, sys, lrsflows, lrsflows.cli, lrsflows.data.command; "
        "print(json.dumps([lrsflows.__file__, lrsflows.cli.CONFIG_DIR, lrsflows.__version__, 'torch' in sys.modules]))"
    )
    package, configs, version, torch_imported = json.loads(
        succeeded(run([str(venv["python"]), "-c", script], venv["elsewhere"])).stdout
    )
    site_packages = venv["root"].resolve()
    assert Path(package).resolve().is_relative_to(site_packages), package
    assert Path(configs).resolve() == Path(package).resolve().parent / "conf"
    assert (Path(configs) / "config.yaml").is_file() and (Path(configs) / "experiment" / "toy2d.yaml").is_file()
    assert version == project_version()
    # The CLI checks its settings, and the download command runs, before torch is imported.
    assert not torch_imported


def test_version_is_ours_not_hydras(venv):
    expected = f"lrsflows {project_version()} (torch "
    for command in ([str(venv["bin"] / "lrsflows")], [str(venv["python"]), "-m", "lrsflows"]):
        out = succeeded(run([*command, "--version"], venv["elsewhere"])).stdout
        assert out.startswith(expected) and ", Python " in out and "Hydra" not in out, out


def test_installed_command_trains_from_another_folder(trained):
    results = json.loads((trained / "results.json").read_text())
    assert results["dataset"] == "eight_gaussians" and results["model"] == "lrs" and results["steps"] == STEPS
    assert (trained / "checkpoints" / "best.pt").is_file()


def test_tables_command(venv, trained):
    done = succeeded(run([str(venv["bin"] / "lrsflows-tables"), str(trained)], venv["elsewhere"]))
    assert "| Dataset | Model |" in done.stdout and "eight_gaussians" in done.stdout
    assert f"wrote {trained / 'tables'}" in done.stdout


def test_data_command_help(venv):
    done = succeeded(run([str(venv["bin"] / "lrsflows-data"), "--help"], venv["elsewhere"]))
    assert done.stdout.startswith("usage: lrsflows-data")
    assert "Download a dataset, verify its MD5 and unpack it into the data root" in done.stdout


def load_flow_step(venv, run_dir: Path) -> str:
    """The installed library in someone's own code: load the trained flow back and sample, with no data present
    (LRSFLOWS_DATA_DIR names an empty folder). Returns what the snippet printed."""
    snippet = (
        f"import lrsflows; f = lrsflows.load_flow({str(run_dir / 'checkpoints' / 'best.pt')!r}); "
        "print(f.sample(5).shape)"
    )
    no_data = venv["elsewhere"] / "no-data"
    no_data.mkdir(exist_ok=True)
    return succeeded(
        run([str(venv["python"]), "-c", snippet], venv["elsewhere"], LRSFLOWS_DATA_DIR=str(no_data))
    ).stdout


def test_load_flow_without_data(venv, trained):
    assert load_flow_step(venv, trained).strip() == "torch.Size([5, 2])"
