"""Reading energy stacks from files and writing maps to files."""

from .maps_h5 import read_maps, write_maps
from .stacks import Stack, read_stack

__all__ = ["Stack", "read_maps", "read_stack", "write_maps"]
