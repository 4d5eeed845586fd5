"""The worker's SQS intake: import requests arrive as messages on a standard queue.

A message body is one of::

    {"requests": [{"source_file": "s3://b/hg38.fa", "name": "hg38", "store_id": "..."}, ...]}
    {"manifest": "s3://bucket/refs.csv"}              (optionally "format": "csv"|"tsv"|"jsonl")

The rows take the fields of ``POST /v1/imports`` (those of a manifest row); a manifest object is
read through S3 and parsed exactly as ``refimport import`` parses a file: downloaded into a
temporary file a chunk at a time, checked whole, then journaled a chunk at a time read again, so
a manifest of any size costs the worker one chunk of requests. Manifest messages are read one at
a time (``SqsIntakeSettings.max_manifests``; the others wait their turn, hidden); messages of rows
given inline do not wait for them.

Delivery rules (SQS delivers at least once, to any worker of the fleet):

* A message is deleted only after its rows are journaled, under the submission id = its SQS
  MessageId: a redelivered message finds its rows journaled already (one row per store and name)
  and its result document owed already (one outbox entry per submission).
* While a message is being read and journaled its visibility is extended, so a large manifest is
  not handed to a second worker half-way.
* An invalid message (not JSON, invalid rows, a manifest object that does not exist or cannot be
  read; a body larger than 1 MiB or nested deeper than 32 levels, refused before it is parsed; a
  key given twice in one object, refused as the manifest reader refuses it; any body that makes
  reading it fail) is rejected as a whole, like an invalid ``POST``: nothing is journaled, the
  errors are logged and sent as its result document (when there is a results queue), and the
  message is deleted. It is not left to the queue's redrive policy because the verdict is deterministic: a
  redelivery would fail the same way, the producer would learn nothing until the dead-letter
  queue was inspected, and a queue without a redrive policy would redeliver it for ever.
* A failure that a retry can fix (SQS, S3 or the journal out of reach, the worker stopping) leaves
  the message on the queue: it comes back after a pause, to this worker or another, and a queue's
  redrive policy (recommended) bounds how often. A failure that is neither (a bug) hands the
  message back too, but after 5 deliveries it is rejected: no message circulates for ever.

With a results queue, every journaled message is owed one result document through the journal's
outbox; :mod:`.outbox` sends it once all its rows are final, from whichever worker sees it first.

Modules:

* :mod:`.options`: the worker's SQS flags and the intake's polling knobs;
* :mod:`.messages`: reading a message (its body, the manifest object it names);
* :mod:`.documents`: the result documents (of a journaled message, of a rejected one);
* :mod:`.intake`: :class:`~.intake.SqsIntake`, which polls the request queue;
* :mod:`.outbox`: :class:`~.outbox.ResultSender`, which sends the documents that are due;
* :mod:`.service`: :class:`~.service.SqsService`, both as one of the worker's intakes.
"""
