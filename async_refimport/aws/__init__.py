"""AWS plumbing below the seams: the one client pool (:mod:`async_refimport.aws.clients`), and the
AWS services beside HealthOmics (SQS, the sources' S3 pre-flight, the events rule)."""
