"""The shared runtime conformance suite, run once against each real runtime.

`runtime` (conftest.py) is parametrized over `containerd` (CRI, which calls
CNI itself) and `docker` (the Docker Engine API, with the kubelet-side
adapter calling CNI), so every check of conformance.py is reported twice:

    test_conformance.py::TestRuntimeConformance::test_exec_and_logs[containerd] PASSED
    test_conformance.py::TestRuntimeConformance::test_exec_and_logs[docker] PASSED

Both use the same busybox image (imported into containerd, pulled by
dockerd through the local registry) and the same test bridge network, so a
difference in results is a difference between the adapters.
"""

from __future__ import annotations

import pytest

from localcluster import images
from tests.integration.runtime.conformance import ConformanceTarget, RuntimeConformance
from tests.integration.runtime.conftest import http_get

pytestmark = pytest.mark.root


@pytest.fixture
def target() -> ConformanceTarget:
    return ConformanceTarget(busybox=images.BUSYBOX_IMAGES[0], http_get=http_get)


class TestRuntimeConformance(RuntimeConformance):
    pass
