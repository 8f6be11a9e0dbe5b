"""A results root is a Tiled path of safe keys (``xanes``, ``fxi/xanes``): anything that could
climb out of the tree or name an odd key is refused, with the reason, before anything is
written."""

import pytest
from pydantic import ValidationError

from xanes_stream.documents.identifiers import UnsafeIdentifier
from xanes_stream.live.config import ServiceConfig
from xanes_stream.store.roots import ensure_root, find_root, root_keys
from xanes_stream.store.tiled_store import TiledResultStore

REFUSED = {
    "../x": "is not a valid name",
    "fxi/../tes": "is not a valid name",
    "fxi/.hidden": "is not a valid name",
    "fxi//xanes": "empty segment",
    "/xanes": "empty segment",
    "xanes/": "empty segment",
    "": "is empty",
    "fxi xanes": "is not a valid name",
    "fxi/xa'nes": "is not a valid name",
    "fxi\\xanes": "is not a valid name",
    "fxi/x\x00": "is not a valid name",
}


class _Node(dict):
    """Stands in for a Tiled container: ``create_container`` makes a child."""

    def create_container(self, key, metadata=None):
        self[key] = _Node()
        self[key].metadata = metadata
        return self[key]


@pytest.mark.parametrize("root", ["xanes", "fxi/xanes", "a/b/c", "beamtime_2024.07"])
def test_a_path_of_safe_keys_is_a_root(root):
    assert root_keys(root) == root.split("/")
    assert ServiceConfig(results_root=root).results_root == root


@pytest.mark.parametrize("root, reason", REFUSED.items())
def test_a_root_that_is_not_safe_keys_is_refused_with_the_reason(root, reason):
    with pytest.raises(UnsafeIdentifier, match=reason):
        root_keys(root)
    with pytest.raises(UnsafeIdentifier, match=reason):
        TiledResultStore(client=None, root=root)
    with pytest.raises(ValidationError, match=f"results root .*{reason}"):
        ServiceConfig(results_root=root)


def test_nested_containers_are_made_as_needed_and_found():
    client = _Node()
    assert find_root(client, "fxi/xanes") is None
    node = ensure_root(client, "fxi/xanes", metadata={"about": "maps"})
    assert client["fxi"]["xanes"] is node and node.metadata == {"about": "maps"}
    assert ensure_root(client, "fxi/xanes") is node  # taken as it is, not made again
    ensure_root(client, "tes/xanes")
    assert sorted(client) == ["fxi", "tes"] and find_root(client, "fxi/xanes") is node
