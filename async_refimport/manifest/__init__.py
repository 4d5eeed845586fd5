"""async_refimport.manifest."""
