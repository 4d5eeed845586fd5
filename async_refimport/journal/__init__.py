"""async_refimport.journal."""
