"""async_refimport.worker."""
