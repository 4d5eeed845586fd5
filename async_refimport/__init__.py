"""async_refimport: bulk, crash-safe reference genome imports into AWS HealthOmics."""
