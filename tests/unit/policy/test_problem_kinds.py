"""Policy refusal kinds carry ACME error type names, so the wfe maps them without a table."""

from __future__ import annotations

import pytest

from certplane.policy.csr import CSRRejectionKind
from certplane.policy.identifiers import RejectionKind
from certplane.server.errors import ProblemType


@pytest.mark.parametrize("kind", [*RejectionKind, *CSRRejectionKind])
def test_kind_values_are_problem_types(kind: str):
    assert ProblemType(kind).value == kind
