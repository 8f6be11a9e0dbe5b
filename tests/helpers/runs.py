"""Small energy scans as event-model composes them, for tests that alter their documents."""

import uuid

import numpy as np
from event_model import compose_run

SHAPE = (8, 8)


def a_run(uid=None, n=3, md=None, shape=SHAPE, stop=True, **start_md):
    """The documents of a small inline energy scan (dark, flat, n energies)."""
    bundle = compose_run(uid=uid or str(uuid.uuid4()), metadata={
        "plan_name": "xanes_scan", "num_points": n, "xanes": md or {}, **start_md})  # fmt: skip
    docs = [("start", bundle.start_doc)]
    for stream, value in (("dark", 10.0), ("flat", 1000.0)):
        desc = bundle.compose_descriptor(name=stream, data_keys={
            "camera_image": {"dtype": "array", "shape": list(shape), "source": "sim"}})  # fmt: skip
        docs.append(("descriptor", desc.descriptor_doc))
        event = desc.compose_event(
            data={"camera_image": np.full(shape, value)}, timestamps={"camera_image": 0.0}
        )
        docs.append(("event", event))
    primary = bundle.compose_descriptor(name="primary", data_keys={
        "camera_image": {"dtype": "array", "shape": list(shape), "source": "sim"},
        "energy": {"dtype": "number", "shape": [], "source": "sim"}})  # fmt: skip
    docs.append(("descriptor", primary.descriptor_doc))
    for i in range(min(n, 5)):
        docs.append(("event", primary.compose_event(
            data={"camera_image": np.full(shape, 500.0), "energy": 8300.0 + i},
            timestamps={"camera_image": 0.0, "energy": 0.0})))  # fmt: skip
    if stop:
        docs.append(("stop", bundle.compose_stop()))
    return docs
