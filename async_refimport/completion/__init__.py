"""Completion detection: knowing, at few calls, the moment an import job has ended.

* :mod:`~async_refimport.completion.base`: the seam, interface only
  (:class:`~async_refimport.CompletionWatcher`, which ``Importer(watcher=...)`` takes);
* :mod:`~async_refimport.completion.polling`: predictive polling (the default);
* :mod:`~async_refimport.completion.events`: HealthOmics' job status events through EventBridge
  and SQS, with sparse polls as a safety net.
"""
