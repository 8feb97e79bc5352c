"""Root pytest configuration: fixture modules are registered here as plugins.

Add your own module under ``tests/fixtures/`` and list it below; keep this file short.
"""

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.support",
    "tests.fixtures.knowledge",
    "tests.fixtures.interoperability",
    "tests.fixtures.acquisition",
]
