#!/usr/bin/env python3
"""Builds the `haven-dynamodb` wheel around an already compiled `haven` binary.

    python3 python/build_wheel.py --binary target/debug/haven --out dist/

Why not build the binary here: CI has just compiled `haven` for the test suite, and building it
again in another profile (what maturin's `bin` bindings do) would cost the 2-core runner most of
a workspace build. A wheel is a zip with a fixed layout (PEP 427), so packaging the binary that
exists takes the standard library and a second. Release wheels for an index would be built the
same way from a release binary on a manylinux image, tagged accordingly.

The wheel holds the `haven_dynamodb` package (a `HavenServer` helper, the pytest plugin), the
binary as `haven_dynamodb/bin/haven`, a `haven` console command, and the `pytest11` entry point
that registers the fixtures.
"""

import argparse
import base64
import hashlib
import re
import shutil
import subprocess
import sysconfig
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAME = "haven_dynamodb"


def workspace_version():
    """The version of Cargo.toml's [workspace.package]."""
    text = (ROOT / "Cargo.toml").read_text()
    section = text.split("[workspace.package]", 1)[1]
    return re.search(r'^version\s*=\s*"([^"]+)"', section, re.M).group(1)


def platform_tag():
    return re.sub(r"[-.]", "_", sysconfig.get_platform())


def metadata(version):
    return (
        "Metadata-Version: 2.1\n"
        "Name: haven-dynamodb\n"
        f"Version: {version}\n"
        "Summary: Haven, a DynamoDB-compatible server, with pytest fixtures\n"
        "License: Apache-2.0\n"
        "Requires-Python: >=3.8\n"
        "Requires-Dist: boto3\n"
    )


def record_line(arcname, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def stripped(binary, workdir):
    """A copy of the binary without debug symbols when `strip` is there (a debug build is mostly
    symbols), else the binary itself."""
    if shutil.which("strip") is None:
        return binary
    copy = Path(workdir) / "haven"
    subprocess.run(["strip", "-o", str(copy), str(binary)], check=True)
    return copy


def build(binary, out):
    version = workspace_version()
    tag = f"py3-none-{platform_tag()}"
    dist_info = f"{NAME}-{version}.dist-info"
    files = {}  # arcname -> (bytes, executable)
    for source in sorted((ROOT / "python" / NAME).glob("*.py")):
        files[f"{NAME}/{source.name}"] = (source.read_bytes(), False)
    with tempfile.TemporaryDirectory() as workdir:
        files[f"{NAME}/bin/haven"] = (stripped(binary, workdir).read_bytes(), True)
    files[f"{dist_info}/METADATA"] = (metadata(version).encode(), False)
    wheel = f"Wheel-Version: 1.0\nGenerator: haven build_wheel.py\nRoot-Is-Purelib: false\nTag: {tag}\n"
    files[f"{dist_info}/WHEEL"] = (wheel.encode(), False)
    entry_points = (
        "[console_scripts]\nhaven = haven_dynamodb:main\n\n"
        "[pytest11]\nhaven_dynamodb = haven_dynamodb.pytest_plugin\n"
    )
    files[f"{dist_info}/entry_points.txt"] = (entry_points.encode(), False)
    record = [record_line(name, data) for name, (data, _) in files.items()]
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record).encode() + b"\n", False)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{NAME}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, (data, executable) in files.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o100755 if executable else 0o100644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", type=Path, default=ROOT / "target/debug/haven")
    parser.add_argument("--out", type=Path, default=ROOT / "target/wheels")
    args = parser.parse_args()
    print(build(args.binary, args.out))


if __name__ == "__main__":
    main()
