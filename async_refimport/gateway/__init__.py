"""The HealthOmics seam: :mod:`~async_refimport.gateway.base` (the interface and its values, nothing
else), :mod:`~async_refimport.gateway.aws` (over AWS) and :mod:`~async_refimport.gateway.memory`
(in memory, public as :mod:`async_refimport.testing`)."""
