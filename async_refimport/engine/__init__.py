"""async_refimport.engine."""
