"""async_refimport.aws."""
