"""async_refimport.cli."""
