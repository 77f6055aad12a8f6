"""The compiled fork makes its VMAs, anon_vmas and chains in bulk (anondiff.ktree.binding:
new_vmas, new_anon_vmas, new_chains): the objects must be those the constructors make."""
from __future__ import annotations

from anondiff.kernel.objects import AnonVma, AnonVmaChain, Mm, Vma
from anondiff.ktree import binding


def state(obj: object) -> dict[str, object]:
    """Every slot's value; a reference to the object itself as "self", a fresh container as
    its type and contents."""
    out: dict[str, object] = {}
    for name in type(obj).__slots__:  # type: ignore[attr-defined]
        value = getattr(obj, name)
        out[name] = "self" if value is obj else (type(value), list(value)) \
            if isinstance(value, (list, dict)) else value
    return out


def test_the_bulk_path_is_taken() -> None:
    """The classes still have the slots the bulk makers fill (else they use constructors)."""
    assert binding.BULK


def test_bulk_objects_equal_constructed_ones() -> None:
    mm = Mm("C")
    rw, none = frozenset({"read", "write"}), frozenset()
    cols = ([1, 5], [2, 9], [0, 3], [rw, none], [none, frozenset({"dontcopy"})], [None, "f"],
            ["a", "b"])
    bulk = binding.new_vmas(mm, *cols)
    made = [Vma(mm, *args[:6], args[6]) for args in zip(*cols)]
    assert [state(v) for v in bulk] == [state(v) for v in made]
    assert bulk[0].avcs is not bulk[1].avcs          # a list each
    avs = binding.new_anon_vmas(3)
    assert [state(av) for av in avs] == [state(AnonVma()) for _ in range(3)]
    assert avs[0].tree is not avs[1].tree
    avcs = binding.new_chains(bulk, avs[:2], 41)
    assert [state(c) for c in avcs] == [state(AnonVmaChain(v, av, s))
                                        for v, av, s in zip(bulk, avs, (42, 43))]
