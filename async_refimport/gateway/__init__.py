"""async_refimport.gateway."""
