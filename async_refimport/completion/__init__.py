"""async_refimport.completion."""
