"""async_refimport.worker.intakes."""
