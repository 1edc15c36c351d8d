"""The example policy in docs/policy.md is a valid policy (the documentation stays true)."""

from __future__ import annotations

import re
from pathlib import Path

from certplane.policy.document import parse_policy

DOC = Path(__file__).parents[3] / "docs" / "policy.md"


def test_the_documented_example_parses():
    block = re.search(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    assert block is not None
    policy = parse_policy(block.group(1), media_type="application/yaml")
    assert policy.profiles == {"default": "", "short": "7-day certificates"}
    assert policy.uses_cel
