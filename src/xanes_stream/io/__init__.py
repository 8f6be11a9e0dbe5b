"""Reading energy stacks from files and writing maps to files."""

from xanes_stream.io.maps_file import read_maps, write_maps
from xanes_stream.io.stacks import Stack, read_stack

__all__ = ["Stack", "read_maps", "read_stack", "write_maps"]
