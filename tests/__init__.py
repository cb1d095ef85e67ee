"""Integration and end-to-end tests, and the test world they run in."""

import pytest

# The contract suites' asserts say what differed, as a test module's do (registered here,
# before any module of this package is imported).
pytest.register_assert_rewrite("tests.source_contract", "provisioning.contract")
