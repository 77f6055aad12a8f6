"""The generator draws random.Random's numbers without random.py's Python frames
(anondiff/search/generate.py): the same numbers from the same state, or scenario *i* of seed
*s* would change with the speed-up."""
from __future__ import annotations

import random

import pytest

from anondiff.search import generate as gen


def pairs(seed: int) -> tuple[random.Random, object]:
    return random.Random(seed), gen.rng_for(0, seed)


@pytest.mark.parametrize("seed", [0, 1, 7, 12345, (3 << 40) ^ 99])
def test_rng_for_is_seeded_as_random_random(seed: int) -> None:
    ours = gen.rng_for(seed >> 40, seed & ((1 << 40) - 1))
    theirs = random.Random(seed)
    assert [ours.random() for _ in range(50)] == [theirs.random() for _ in range(50)]


def test_rng_for_forgets_what_was_drawn_before() -> None:
    """rng_for() seeds the module's one generator again: nothing of the scenario before
    (past a twist of the Mersenne Twister's state, after an odd number of words) is left."""
    ours = gen.rng_for(0, 3)
    for _ in range(700):
        ours.random()
    ours.getrandbits(5)
    theirs = random.Random(3)
    again = gen.rng_for(0, 3)
    assert [again.random() for _ in range(700)] == [theirs.random() for _ in range(700)]


@pytest.mark.parametrize("seed", range(6))
def test_randint_and_below_draw_what_random_random_draws(seed: int) -> None:
    theirs, ours = pairs(seed)
    # every range the generator asks for, and the awkward ones: n a power of two (one more bit
    # than n - 1 needs), n = 1 (draws a bit all the same)
    for a, b in [(0, 0), (1, 1), (0, 1), (0, 2), (2, 6), (1, 3), (1, 6), (0, 6), (0, 7), (0, 8),
                 (5, 20), (0, 1 << 20)] * 20:
        assert gen._randint(ours.getrandbits, a, b) == theirs.randint(a, b), (a, b)
    for n in list(range(1, 40)) * 5:
        assert gen._below(ours.getrandbits, n) == theirs.randrange(n), n
    assert ours.random() == theirs.random()          # and left in the same state


@pytest.mark.parametrize("seed", range(6))
def test_sample_draws_what_random_random_draws(seed: int) -> None:
    theirs, ours = pairs(seed)
    for n in range(0, 22):
        for k in range(0, n + 1):
            assert gen._sample(ours.getrandbits, n, k) == theirs.sample(range(n), k), (n, k)
    assert ours.random() == theirs.random()


def _canon(x):  # type: ignore[no-untyped-def]
    # the records with their type names; sets sorted (their order is the string hash's)
    if isinstance(x, (set, frozenset)):
        return sorted(x)
    if isinstance(x, tuple):
        return [type(x).__name__] + [_canon(v) for v in x]
    return x


#: sha256 of the scenarios below as the generator drew them when it kept its page model in
#: dicts (main at 2df79ac): scenario i of seed s must not change with the generator's speed-ups
DRAWN = "b953fdcc48a281deb1f97e8ff09520318d213629ecd4f08b33830ed833ffbc2f"


def test_the_scenarios_drawn_are_those_drawn_since_the_generator_was_written() -> None:
    import hashlib
    budgets = [gen.Budget(), gen.Budget(processes=3, vmas=2, steps=10, generations=2),
               gen.Budget(events=("fork", "exit", "mprotect", "write")),
               gen.Budget(events=("fork", "mremap")),
               gen.Budget(processes=20, vmas=8, steps=60, generations=10),
               gen.Budget(events=("mmap", "munmap", "madvise"))]
    h = hashlib.sha256()
    for budget in budgets:
        for seed in (0, 7):
            for i in range(150):
                h.update(repr(_canon(gen.generate(seed, i, budget))).encode())
    assert h.hexdigest() == DRAWN


THREADS = """
import sys, threading
from anondiff.search.generate import Budget, generate
sys.setswitchinterval(1e-6)                  # switch threads between almost any two draws
budget = Budget()
alone = [repr(generate(0, i, budget)) for i in range(150)]
out = {}
def run(k):
    out[k] = [repr(generate(0, i, budget)) for i in range(150)]
threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(all(out[k] == alone for k in range(3)))
"""


def test_threads_draw_their_scenarios_each_from_their_own_generator() -> None:
    """A Dask worker runs chunks in threads: scenarios drawn in three threads at once are
    those drawn alone (the pure-Python generator, which another thread interrupts)."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "ANONDIFF_PURE": "1", "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", THREADS], cwd=root, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True"]
