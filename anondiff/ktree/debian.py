"""Debian's ``linux-source-*`` packages as kernel trees: fetched once, cached for good.

``fetch("linux-source-7.2")`` returns ``$XDG_CACHE_HOME/anondiff/debian/linux-source-7.2.tar.xz``
(default ``~/.cache``), the tarball Debian ships in ``/usr/src``; the first call downloads the
``.deb`` with a private apt configuration (sources, lists and archive cache under
``anondiff/debian/apt/``, the machine's own apt state is neither read nor changed), later calls
only look at the file. ``cached(package)`` never touches the network.

Each package comes from one suite, so a tree is a known kernel version: ``linux-source-5.10``
from bullseye, ``linux-source-6.1`` from bookworm, ``linux-source-6.12`` from trixie (or
bookworm-backports), ``linux-source-7.2`` from sid. Their Release files are checked with the
machine's ``debian-archive-keyring``; when a suite is signed by a key it does not know yet, the
newer ``debian-archive-keyring`` package is fetched from a suite that does verify and its
keyring used instead.

    python -m anondiff.ktree.debian linux-source-5.10 linux-source-6.1 linux-source-7.2

prints one tarball path per package (exit 2 with one line on stderr when a fetch fails).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from anondiff.errors import AnondiffError

from .source import cache_dir

ARCHIVE = "http://deb.debian.org/debian"

# Where each package is taken from, first suite first; unknown linux-source-N.M packages are
# looked for in every suite, newest first.
SUITES: dict[str, tuple[str, ...]] = {
    "linux-source-5.10": ("bullseye",),
    "linux-source-6.1": ("bookworm",),
    "linux-source-6.12": ("trixie", "bookworm-backports"),
    "linux-source-7.2": ("sid",),
}
ALL_SUITES: tuple[str, ...] = ("sid", "trixie", "bookworm-backports", "bookworm", "bullseye")
SYSTEM_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")

_PACKAGE = re.compile(r"linux-source-\d+\.\d+")
_KEY_TROUBLE = re.compile(r"NO_PUBKEY|EXPKEYSIG|KEYEXPIRED|is not signed|invalid signature",
                          re.IGNORECASE)


class FetchError(AnondiffError):
    """A linux-source package that could not be downloaded or unpacked."""


def _debian_dir() -> Path:
    return cache_dir() / "debian"


def _check_package(package: str) -> None:
    if not _PACKAGE.fullmatch(package):
        raise FetchError(f"{package}: not a Debian kernel source package "
                         "(expected linux-source-N.M, e.g. linux-source-6.1)")


def cached(package: str) -> Path | None:
    """The tarball of ``package`` if it was fetched before, else None (no network)."""
    _check_package(package)
    path = _debian_dir() / f"{package}.tar.xz"
    return path if path.is_file() else None


def cached_version(package: str) -> str | None:
    """The Debian version of the cached tarball (``7.2.13-1``), None when not cached."""
    try:
        return (_debian_dir() / f"{package}.version").read_text().strip() or None
    except FileNotFoundError:
        return None


def fetch(package: str) -> Path:
    """The cached tarball of ``package``, downloading it the first time."""
    path = cached(package)
    if path is not None:
        return path
    apt = _Apt(_debian_dir() / "apt")
    suites = SUITES.get(package, ALL_SUITES)
    apt.update(suites)
    with tempfile.TemporaryDirectory(dir=_debian_dir(), prefix=f".{package}.") as tmp:
        work = Path(tmp)
        deb, version = apt.download(package, suites, work)
        tarball = _unpack_source(deb, package, work)
        final = _debian_dir() / f"{package}.tar.xz"
        os.replace(tarball, final)
        (_debian_dir() / f"{package}.version").write_text(version + "\n")
        # The .deb is only a wrapper around the tarball: no point keeping both.
        deb.unlink()
    return final


def _unpack_source(deb: Path, package: str, work: Path) -> Path:
    """``dpkg-deb --fsys-tarfile DEB | tar -x usr/src/linux-source-*.tar.xz``: only the tarball."""
    member = f"./usr/src/{package}.tar.xz"
    dpkg = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    tar = subprocess.run(["tar", "-x", "-C", str(work), "--wildcards", member],
                         stdin=dpkg.stdout, capture_output=True, text=True)
    assert dpkg.stdout is not None
    dpkg.stdout.close()
    dpkg_err = dpkg.stderr.read().decode(errors="replace") if dpkg.stderr else ""
    if dpkg.wait() != 0 or tar.returncode != 0:
        why = (dpkg_err or tar.stderr).strip().splitlines()
        raise FetchError(f"{deb.name}: cannot unpack usr/src/{package}.tar.xz"
                         + (f": {why[-1]}" if why else ""))
    return work / "usr" / "src" / f"{package}.tar.xz"


class _Apt:
    """apt-get with every path of its own under ``root`` (sources, lists, archives, keyring)."""

    def __init__(self, root: Path):
        self.root = root
        for sub in ("lists/partial", "archives/partial", "sources.list.d", "preferences.d"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        own = root / "debian-archive-keyring.gpg"
        self.keyring = own if own.is_file() else SYSTEM_KEYRING

    def _options(self) -> list[str]:
        opts = {
            "Dir::Etc::sourcelist": self.root / "sources.list",
            "Dir::Etc::sourceparts": self.root / "sources.list.d",
            "Dir::Etc::preferencesparts": self.root / "preferences.d",
            "Dir::State::Lists": self.root / "lists",
            "Dir::Cache": self.root,
            "Dir::Cache::archives": self.root / "archives",
            "Acquire::Languages": "none",
            "APT::Get::List-Cleanup": "0",
            "Debug::NoLocking": "1",
        }
        args: list[str] = []
        for name, value in opts.items():
            args += ["-o", f"{name}={value}"]
        if os.geteuid() == 0:
            # apt drops to _apt for downloads, which cannot write into root's cache directory.
            args += ["-o", "APT::Sandbox::User=root"]
        return args

    def _run(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        if shutil.which("apt-get") is None:
            raise FetchError("apt-get not found: Debian's linux-source packages need apt")
        env = dict(os.environ, LC_ALL="C", DEBIAN_FRONTEND="noninteractive")
        return subprocess.run(["apt-get", "-q", *self._options(), *args], cwd=cwd, env=env,
                              capture_output=True, text=True)

    def _write_sources(self, suites: tuple[str, ...]) -> None:
        lines = [f"deb [signed-by={self.keyring}] {ARCHIVE} {suite} main" for suite in suites]
        (self.root / "sources.list").write_text("\n".join(lines) + "\n")

    def update(self, suites: tuple[str, ...]) -> None:
        self._write_sources(suites)
        result = self._run("update")
        if _KEY_TROUBLE.search(result.stdout + result.stderr) and self.keyring == SYSTEM_KEYRING:
            self._newer_keyring(suites, result.stdout + result.stderr)
            self._write_sources(suites)
            result = self._run("update")
        trouble = [line for line in (result.stdout + result.stderr).splitlines()
                   if line.startswith(("E:", "W:", "Err:"))]
        if result.returncode != 0 or any(line.startswith(("E:", "Err:")) for line in trouble):
            raise FetchError(f"apt-get update ({', '.join(suites)}) failed: "
                             + (trouble[0] if trouble else f"exit status {result.returncode}"))

    def _newer_keyring(self, suites: tuple[str, ...], log: str) -> None:
        """Fetch debian-archive-keyring from a suite whose signature the system keyring verifies."""
        bad = {s for s in suites if re.search(rf"\b{re.escape(s)}\b[^\n]*(NO_PUBKEY|not signed|"
                                              rf"EXPKEYSIG|KEYEXPIRED|invalid signature)", log)}
        good = tuple(s for s in ALL_SUITES if s not in bad) or ("bookworm",)
        self._write_sources(good)
        self._run("update")
        with tempfile.TemporaryDirectory(dir=self.root) as tmp:
            deb, _ = self.download("debian-archive-keyring", good, Path(tmp))
            subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True, capture_output=True)
            shutil.copyfile(Path(tmp) / "usr/share/keyrings/debian-archive-keyring.gpg",
                            self.root / "debian-archive-keyring.gpg")
        self.keyring = self.root / "debian-archive-keyring.gpg"

    def download(self, package: str, suites: tuple[str, ...], into: Path) -> tuple[Path, str]:
        """``apt-get download package/suite`` from the first suite that has it."""
        errors: list[str] = []
        for suite in suites:
            result = self._run("download", f"{package}/{suite}", cwd=into)
            debs = sorted(into.glob(f"{package}_*.deb"))
            if result.returncode == 0 and debs:
                version = debs[0].name.split("_")[1].replace("%3a", ":")
                return debs[0], version
            errors += [line for line in (result.stdout + result.stderr).splitlines()
                       if line.startswith("E:")] or [f"exit status {result.returncode}"]
        raise FetchError(f"{package}: not downloadable from {', '.join(suites)}: {errors[0]}")


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m anondiff.ktree.debian linux-source-N.M ...", file=sys.stderr)
        return 2
    status = 0
    for package in argv:
        try:
            print(fetch(package), flush=True)
        except (AnondiffError, OSError, subprocess.SubprocessError) as exc:
            print(f"anondiff.ktree.debian: {exc}", file=sys.stderr)
            status = 2
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
