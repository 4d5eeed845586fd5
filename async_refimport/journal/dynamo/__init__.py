"""The journal in one DynamoDB table, shared by every worker of a fleet.

* :mod:`.journal`: :class:`DynamoJournal`, composed of its roles (:mod:`.queue`, :mod:`.jobs`,
  :mod:`.reading`) over :mod:`.table` (the client and its calls, :mod:`.calls`);
* :mod:`.items`: the table's layout, its keys and the codec of its items;
* :mod:`.schema`: the table's DDL (:func:`create_table`) and its check (:func:`layout_problem`).
"""

from async_refimport.journal.dynamo.items import DEFAULT_RETENTION as DEFAULT_RETENTION
from async_refimport.journal.dynamo.items import INDEX as INDEX
from async_refimport.journal.dynamo.items import SCHEME as SCHEME
from async_refimport.journal.dynamo.items import TTL_ATTRIBUTE as TTL_ATTRIBUTE
from async_refimport.journal.dynamo.items import parse_url as parse_url
from async_refimport.journal.dynamo.items import row_id_for as row_id_for
from async_refimport.journal.dynamo.journal import DynamoJournal as DynamoJournal
from async_refimport.journal.dynamo.schema import create_table as create_table
from async_refimport.journal.dynamo.schema import layout_problem as layout_problem

__all__ = [
    "DEFAULT_RETENTION",
    "INDEX",
    "SCHEME",
    "TTL_ATTRIBUTE",
    "DynamoJournal",
    "create_table",
    "layout_problem",
    "parse_url",
    "row_id_for",
]
