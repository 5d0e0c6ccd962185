"""Builds every overlay and broken fixture once, in parallel, before the tests read them."""

from manifests import FIXTURES, KUBERNETES, discover_overlays, prebuild


def pytest_collection_finish(session):
    fixtures = [
        path.relative_to(KUBERNETES).as_posix() for path in (FIXTURES / "checker-broken").iterdir() if path.is_dir()
    ]
    prebuild(discover_overlays() + fixtures)
