"""Real sandbox server fixture for this directory (see tests/rewards/helpers.py)."""

from tests.rewards.helpers import sandbox_url  # noqa: F401
