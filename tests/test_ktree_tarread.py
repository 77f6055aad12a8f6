"""anondiff.ktree.tarread: a multi-block .tar.xz read by decompressing only the blocks that can
hold the files a tree policy needs, and read whole (still right) when its order says nothing.

The tarballs are made here, kernel-shaped (Documentation/, arch/, drivers/ around the few
directories that are needed), with GNU tar and xz --block-size, in the orders real tarballs
come in: sorted paths (Debian's linux-source), GNU tar --sort=name, GNU and pax long names,
and a shuffled one."""
from __future__ import annotations

import os
import random
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from anondiff.ktree import pack, source, tarread
from anondiff.ktree.source import TreeSpec, TreeSpecError, available, open_tree

pytestmark = pytest.mark.skipif(shutil.which("tar") is None or shutil.which("xz") is None,
                                reason="GNU tar and xz make the test tarballs")

TOP = "linux-source-6.99"
LONG = "include/linux/" + "a_header_whose_name_is_long_enough_to_need_a_gnu_or_pax_header_" \
    "of_its_own_in_any_tar_format.h"


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def make_tree(top: Path) -> None:
    rng = random.Random(6)

    def text(n: int) -> bytes:
        return rng.randbytes(n // 2).hex().encode()

    files: dict[str, bytes] = {"Makefile": b"VERSION = 6\nPATCHLEVEL = 99\nSUBLEVEL = 1\n",
                               "MAINTAINERS": text(30000), LONG: b"/* long */\n"}
    for d, n in (("Documentation/mm", 40), ("arch/x86/mm", 60), ("drivers/gpu", 400),
                 ("include/linux", 30), ("include/linux/sched", 5), ("include/asm-generic", 5),
                 ("include/net", 20), ("kernel", 10), ("lib", 10), ("mm", 30),
                 ("mm/damon", 3), ("net/ipv4", 50), ("scripts", 5), ("sound/soc", 150)):
        ext = ".h" if d.startswith("include") else ".c"
        for i in range(n):
            files[f"{d}/f{i:03}{ext}"] = text(rng.randrange(1000, 6000))
    files["mm/big.c"] = text(60_000)  # spans several blocks
    files["mm/Kconfig"] = b"config MMU\n"
    files["mm-extra.c"] = b"/* sorts between mm and mm/ in some orders */\n"
    for rel in ("kernel/fork.c", "lib/rbtree.c", "lib/interval_tree.c", "scripts/checkpatch.pl",
                "scripts/spelling.txt", "mm/rmap.c"):
        files[rel] = text(5000)
    for rel, data in files.items():
        (top / rel).parent.mkdir(parents=True, exist_ok=True)
        (top / rel).write_bytes(data)
    os.symlink("../include/linux/f000.h", top / "mm/link.h")


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tree, made once (creating 1,000 files takes seconds on a busy disk)."""
    out = tmp_path_factory.mktemp("src")
    make_tree(out / TOP)
    return out


def make_tarball(tmp_path: Path, src: Path, order: str, fmt: str = "gnu") -> Path:
    tar = tmp_path / f"{order}-{fmt}.tar"
    common = ["tar", f"--format={fmt}", "--owner=0", "--group=0", "--mtime=2026-01-01", "-C",
              str(src)]
    if order == "sorted-paths":  # Debian's: find | sort | tar -T -
        names = sorted(str(p.relative_to(src)) for p in (src / TOP).rglob("*")) + [TOP]
        listing = "\n".join(sorted(names)) + "\n"
        subprocess.run([*common, "--no-recursion", "-cf", str(tar), "-T", "-"],
                       input=listing, text=True, check=True)
    elif order == "sort-name":
        subprocess.run([*common, "--sort=name", "-cf", str(tar), TOP], check=True)
    else:
        names = sorted(str(p.relative_to(src)) for p in (src / TOP).rglob("*"))
        random.Random(1).shuffle(names)
        subprocess.run([*common, "--no-recursion", "-cf", str(tar), "-T", "-"],
                       input="\n".join([TOP] + names) + "\n", text=True, check=True)
    subprocess.run(["xz", "-0", "-T1", "--block-size=16KiB", "-f", str(tar)], check=True)
    return tar.with_name(tar.name + ".xz")


def reference(tarball: Path) -> dict[str, bytes]:
    """What tarfile reads for the made-available paths (links read through)."""
    out: dict[str, bytes] = {}
    with tarfile.open(tarball) as tf:
        for m in tf.getmembers():
            rel = m.name.removeprefix(TOP + "/")
            if available(rel) and (m.isfile() or m.issym()):
                f = tf.extractfile(m)
                assert f is not None
                out[rel] = f.read()
    return out


def decoded_blocks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    seen: list[int] = []
    real = tarread._Blocks._decompress

    def counting(self: tarread._Blocks, i: int) -> bytes:
        seen.append(i)
        return real(self, i)

    monkeypatch.setattr(tarread._Blocks, "_decompress", counting)
    return seen


@pytest.mark.parametrize("order,fmt", [("sorted-paths", "gnu"), ("sorted-paths", "posix"),
                                       ("sort-name", "gnu"), ("shuffled", "gnu")])
def test_multi_block_xz_gives_the_same_files(tmp_path: Path, src: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            order: str, fmt: str) -> None:
    tarball = make_tarball(tmp_path, src, order, fmt)
    fd = os.open(tarball, os.O_RDONLY)
    try:
        index = tarread.read_index(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)
    assert index is not None and len(index[1]) > 100
    seen = decoded_blocks(monkeypatch)
    tree = open_tree(TreeSpec(tarball, ()))
    expected = reference(tarball)
    assert LONG in expected and "mm/big.c" in expected and "mm/link.h" in expected
    assert sorted(pack.read_index(tree.root) or {}) == sorted(expected)
    for rel, data in expected.items():
        assert tree.read(rel) == data.decode(), rel
    assert tree.read("mm/link.h") == tree.read("include/linux/f000.h")
    assert tree.read("mm/Kconfig") is None and tree.read("mm-extra.c") is None
    if order == "shuffled":  # the blocks' first members are in no order: every block is read
        assert sorted(seen) == list(range(len(index[1])))
    else:  # include/ to scripts/ and the Makefile: under half the blocks
        assert len(seen) < len(index[1]) // 2, (len(seen), len(index[1]))


def test_a_member_out_of_order_inside_a_stretch_is_caught(tmp_path: Path, src: Path) -> None:
    """Sorted except for one member the probes cannot see: the walk notices and reads all."""
    names = sorted(str(p.relative_to(src)) for p in (src / TOP).rglob("*")) + [TOP]
    names.sort()
    names.remove(f"{TOP}/mm/rmap.c")
    names.insert(names.index(f"{TOP}/include/linux/f010.h"), f"{TOP}/mm/rmap.c")
    tar = tmp_path / "odd.tar"
    subprocess.run(["tar", "--format=gnu", "--no-recursion", "-C", str(src), "-cf", str(tar),
                    "-T", "-"], input="\n".join(names) + "\n", text=True, check=True)
    subprocess.run(["xz", "-0", "-T1", "--block-size=16KiB", "-f", str(tar)], check=True)
    tarball = tar.with_name("odd.tar.xz")
    tree = open_tree(TreeSpec(tarball, ()))
    expected = reference(tarball)
    assert sorted(pack.read_index(tree.root) or {}) == sorted(expected)
    assert tree.read("mm/rmap.c") == expected["mm/rmap.c"].decode()


def test_corrupt_block_is_one_line_and_leaves_nothing(tmp_path: Path, src: Path,
                                                      cache: Path) -> None:
    tarball = make_tarball(tmp_path, src, "sorted-paths")
    fd = os.open(tarball, os.O_RDONLY)
    index = tarread.read_index(fd, os.fstat(fd).st_size)
    os.close(fd)
    assert index is not None
    # a block in the middle of mm/: one of those the reader must decompress
    data = bytearray(tarball.read_bytes())
    with tarfile.open(tarball) as tf:
        offset = next(m.offset_data for m in tf.getmembers() if m.name.endswith("mm/big.c"))
    block = next(b for b in index[1] if b.uoff <= offset + 100_000 < b.uoff + b.usize)
    data[block.coff + block.csize // 2] ^= 0xFF
    tarball.write_bytes(bytes(data))
    with pytest.raises(TreeSpecError, match=rf"^{tarball}: cannot extract: xz: "):
        open_tree(TreeSpec(tarball, ()))
    assert [p.name for p in (cache / "anondiff" / "trees").iterdir()] == ["by-stat"]


def test_interrupted_extraction_leaves_nothing(tmp_path: Path, src: Path, cache: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    tarball = make_tarball(tmp_path, src, "sorted-paths")
    real = tarread.Found.take

    def interrupted(self: tarread.Found, *args: object) -> None:
        if len(self.files) == 20:
            raise KeyboardInterrupt
        real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(tarread.Found, "take", interrupted)
    with pytest.raises(KeyboardInterrupt):
        open_tree(TreeSpec(tarball, ()))
    assert [p.name for p in (cache / "anondiff" / "trees").iterdir()] == ["by-stat"]
    monkeypatch.setattr(tarread.Found, "take", real)
    assert open_tree(TreeSpec(tarball, ())).read("mm/rmap.c") is not None


def test_interrupted_stream_kills_its_decompressor(tmp_path: Path, src: Path, cache: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    tarball = make_tarball(tmp_path, src, "sorted-paths")
    monkeypatch.setattr(tarread, "extract_xz", lambda *a: None)  # the one-pass reader
    started: list[subprocess.Popen[bytes]] = []
    real_popen = subprocess.Popen

    def popen(*args, **kwargs):  # type: ignore[no-untyped-def]
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(subprocess, "Popen", popen)

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(tarread.Found, "take", interrupted)
    with pytest.raises(KeyboardInterrupt):
        open_tree(TreeSpec(tarball, ()))
    assert len(started) == 1 and started[0].returncode is not None
    assert [p.name for p in (cache / "anondiff" / "trees").iterdir()] == ["by-stat"]


def test_not_an_xz_or_a_single_block_goes_the_one_pass_way(tmp_path: Path, src: Path) -> None:
    tarball = make_tarball(tmp_path, src, "sorted-paths")
    single = tmp_path / "single.tar.xz"
    subprocess.run(f"xz -dc {tarball} | xz -0 -T1 -c > {single}", shell=True, check=True)
    assert tarread.extract_xz(single, TOP + "/", ["Makefile"], ["mm"], available) is None
    tree = open_tree(TreeSpec(single, ()))
    assert tree.read("mm/big.c") == reference(tarball)["mm/big.c"].decode()
    assert source._tar_prefix(single) == TOP + "/"
