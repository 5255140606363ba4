"""`tinykube get nodes -o wide` shows what the agent works from: podCIDR and the VTEP MAC."""

from __future__ import annotations

from apimachinery import scheme
from cli import printers
from netplugin.constants import ANNOTATION_VTEP_MAC
from protos import core_pb2, meta_pb2


def test_node_wide_output_has_pod_cidr_and_vtep() -> None:
    done = core_pb2.Node(metadata=meta_pb2.ObjectMeta(name="node1"))
    done.spec.pod_cidr = "10.244.0.0/24"
    done.metadata.annotations[ANNOTATION_VTEP_MAC] = "02:00:00:00:00:01"
    fresh = core_pb2.Node(metadata=meta_pb2.ObjectMeta(name="node2"))
    text = printers.render_table(scheme.for_resource("nodes"), [done, fresh], wide=True, now=0)
    header, row1, row2 = (line.split() for line in text.splitlines())
    col = header.index("POD-CIDR")
    assert header[col + 1] == "VTEP"
    assert row1[col : col + 2] == ["10.244.0.0/24", "02:00:00:00:00:01"]
    assert row2[col : col + 2] == ["<none>", "<none>"]
    plain = printers.render_table(scheme.for_resource("nodes"), [done], now=0)
    assert "VTEP" not in plain
