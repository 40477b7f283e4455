"""Session-wide test bed: each real part is a pytest plugin module in tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.workdir",
    "tests.fixtures.temporal",
    "tests.fixtures.kube",
    "tests.fixtures.vcsim",
    "tests.fixtures.product",
]
