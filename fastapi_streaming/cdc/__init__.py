"""Change data capture: a database table as a topic.

Every committed insert, update and delete of a table becomes an event in Debezium's envelope
(:class:`Change`), published to the broker once per deployment and delivered to clients like
any other subscribe topic. See the change data capture guide.
"""

from .capture import CapturedChange, Checkpoint, Source, TableCapture
from .change import Change, ChangeSource, change_event_id
from .debezium import DebeziumChanges
from .declare import declare_changes
from .errors import CaptureConfigurationError, LeaseLost
from .mysql import MySQLChanges
from .postgres import PostgresChanges
from .producers import Producers

__all__ = [
    "CaptureConfigurationError",
    "CapturedChange",
    "Change",
    "ChangeSource",
    "Checkpoint",
    "DebeziumChanges",
    "LeaseLost",
    "MySQLChanges",
    "PostgresChanges",
    "Producers",
    "Source",
    "TableCapture",
    "change_event_id",
    "declare_changes",
]
