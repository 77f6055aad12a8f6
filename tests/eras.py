"""Which shipped scenarios a policy's kernel would refuse before the replay gets anywhere."""
from __future__ import annotations

from anondiff.kernel.fork import ABSENT
from anondiff.policies import get
from anondiff.policies.base import Policy
from anondiff.scenario import Madvise, Scenario


def accepts(sc: Scenario, policy: Policy | str) -> bool:
    """False where a step is EINVAL in the policy's era: madvise(MADV_WIPEONFORK or
    MADV_KEEPONFORK) before commit d2cd9ede6e19 ("mm,fork: introduce MADV_WIPEONFORK") (v4.14:
    always-new, v3.19).  tests/test_policies.py checks that the replay says so."""
    p = get(policy) if isinstance(policy, str) else policy
    return p.dup_mmap.wipeonfork != ABSENT or not any(
        isinstance(s, Madvise) and s.advice in ("wipeonfork", "keeponfork") for s in sc.steps)
