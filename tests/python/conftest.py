"""Shared fixtures of the Python package's tests (tests/python.cmake runs them with Debian's
/usr/bin/python3; a missing dependency or environment variable fails, never skips).

Environment (set by tests/python.cmake): GRADCAM_LIBRARY (libgradcam_tool), GRADCAM_CLI (the command),
GRADCAM_CLI_FIXTURES (the seeded models of tests/test_cli.py `fixtures`), PYTHONPATH (python/)."""
import os
import subprocess

import numpy as np
import pytest

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEMO = os.path.join(SRC, "examples", "demo", "shapes_cnn.onnx")


def _env(name):
    v = os.environ.get(name)
    if not v:
        pytest.fail("%s is not set (tests/python.cmake sets it; run through ctest -R python)" % name)
    return v


@pytest.fixture(scope="session")
def cli():
    path = _env("GRADCAM_CLI")
    assert os.access(path, os.X_OK), path
    return path


@pytest.fixture(scope="session")
def fx():
    d = _env("GRADCAM_CLI_FIXTURES")
    assert os.path.exists(os.path.join(d, "r18dyn.onnx")), "run the cli_fixtures test first (ctest fixture cli_models)"
    return d


@pytest.fixture(scope="session")
def work(tmp_path_factory):
    return str(tmp_path_factory.mktemp("gradcam_py"))


@pytest.fixture(scope="session")
def mnv2(work):
    """A second torchvision model: mobilenet_v2 with seeded random weights, 64x64, exported here."""
    import torch
    import torchvision
    torch.manual_seed(21)
    m = torchvision.models.mobilenet_v2(weights=None, num_classes=10).eval()
    path = os.path.join(work, "mnv2.onnx")
    torch.onnx.export(m, torch.randn(1, 3, 64, 64), path, input_names=["input"], output_names=["out"],
                      opset_version=13, do_constant_folding=True)
    return path


def demo_input(seed=0, shape=(1, 3, 128, 128)):
    """A demo picture as the model takes it (--preprocess raw: RGB in [0, 1]) when seed is None, else
    uniform noise."""
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def run_cli(cli, *args):
    p = subprocess.run([cli] + list(args), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, "gradcam %s: exit %d\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr)
    return p
